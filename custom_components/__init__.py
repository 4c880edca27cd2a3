"""Custom integrations (the FlexMeasures integration lives in flexmeasures/)."""
