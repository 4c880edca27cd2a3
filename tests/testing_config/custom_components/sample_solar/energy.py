"""Energy platform: the entry's solar forecast, as forecast_solar gives it."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant


async def async_get_solar_forecast(
    hass: HomeAssistant, config_entry_id: str
) -> dict[str, dict[str, float | int]] | None:
    """Return the forecast of a loaded entry, None when it has none."""
    entry = hass.config_entries.async_get_entry(config_entry_id)
    if entry is None or entry.state is not ConfigEntryState.LOADED:
        return None
    wh_hours: dict[str, float] = entry.runtime_data
    return {"wh_hours": dict(wh_hours)} if wh_hours else None
