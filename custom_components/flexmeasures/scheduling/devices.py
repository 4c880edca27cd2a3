"""The schedulers of an entry's controlled devices: set up, and removed with it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.core import HomeAssistant

from ..const import CONF_POWER_SENSOR, SUBENTRY_CONTROLLED_DEVICE
from ..data import FlexMeasuresConfigEntry
from .model import DeviceConfig
from .scheduler import DeviceScheduler
from .store import ScheduleStore
from .targets import async_delete_unmet_targets_issue


def _controlled_devices(
    entry: FlexMeasuresConfigEntry,
) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """Return the controlled-device subentries as comparable (title, data)."""
    return {
        subentry_id: (subentry.title, dict(subentry.data))
        for subentry_id, subentry in entry.subentries.items()
        if subentry.subentry_type == SUBENTRY_CONTROLLED_DEVICE
    }


async def async_setup_schedulers(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry
) -> None:
    """Create, restore and start a scheduler per controlled device."""
    data = entry.runtime_data
    sensors = data.inventory.data.sensors
    for subentry_id, subentry in entry.subentries.items():
        if subentry.subentry_type != SUBENTRY_CONTROLLED_DEVICE:
            continue
        sensor = sensors.get(int(subentry.data[CONF_POWER_SENSOR]))
        config = DeviceConfig.from_subentry(
            subentry, sensor.resolution if sensor else None
        )
        scheduler = DeviceScheduler(hass, entry, subentry_id, config, data.api)
        await scheduler.async_load()
        data.schedulers[subentry_id] = scheduler

    for scheduler in data.schedulers.values():
        scheduler.async_start()
        entry.async_on_unload(scheduler.async_stop)
        entry.async_on_unload(scheduler.async_flush)

    # A controlled device added, changed or removed: reload to rebuild entities.
    known = _controlled_devices(entry)

    async def _async_subentries_changed(
        hass: HomeAssistant, entry: FlexMeasuresConfigEntry
    ) -> None:
        """Reload when the controlled devices changed."""
        current = _controlled_devices(entry)
        if current == known:
            return
        for subentry_id in known.keys() - current.keys():
            await data.schedulers[subentry_id].async_remove_store()
        hass.config_entries.async_schedule_reload(entry.entry_id)

    entry.async_on_unload(entry.add_update_listener(_async_subentries_changed))


async def async_remove_schedules(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry
) -> None:
    """Delete the stored schedules and issues of a removed entry."""
    for subentry_id in _controlled_devices(entry):
        async_delete_unmet_targets_issue(hass, subentry_id)
        await ScheduleStore(hass, subentry_id).async_remove()
