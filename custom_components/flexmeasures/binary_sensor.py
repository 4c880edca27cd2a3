"""Binary sensors for FlexMeasures."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .data import FlexMeasuresConfigEntry
from .s2_entities import async_setup_s2_binary_sensors

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: FlexMeasuresConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up FlexMeasures binary sensors based on a config entry."""
    # S2 (issue 8): connectivity of each controlled device's resource manager.
    await async_setup_s2_binary_sensors(hass, entry, async_add_entities)
