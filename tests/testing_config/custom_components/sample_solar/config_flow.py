"""Config flow: entries are made by the tests, never by a user."""

from __future__ import annotations

from homeassistant.config_entries import ConfigFlow


class SampleSolarConfigFlow(ConfigFlow, domain="sample_solar"):
    """The flow Home Assistant needs to own sample_solar's entries."""

    VERSION = 1
