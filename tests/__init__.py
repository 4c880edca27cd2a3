"""Tests for the FlexMeasures integration."""
