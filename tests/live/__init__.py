"""Live tests: the integration against a real FlexMeasures server."""
