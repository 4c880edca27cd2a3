"""A solar forecast integration for tests, shaped like forecast_solar.

Its entry holds the forecast (``wh_hours``) that forecast_solar would fetch;
its energy platform gives it to Home Assistant as forecast_solar's does.
"""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant

type SampleSolarConfigEntry = ConfigEntry[dict[str, float]]


async def async_setup_entry(hass: HomeAssistant, entry: SampleSolarConfigEntry) -> bool:
    """Set up the entry: its forecast is what the data says."""
    entry.runtime_data = dict(entry.data["wh_hours"])
    return True


async def async_unload_entry(
    hass: HomeAssistant, entry: SampleSolarConfigEntry
) -> bool:
    """Unload the entry."""
    return True
