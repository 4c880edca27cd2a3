"""Forecast links: series Home Assistant holds, posted to FlexMeasures as forecasts.

- ``model``: a series as its source holds it, before conversion.
"""
