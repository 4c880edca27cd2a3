"""The schedulers of an entry's controlled devices and sites: set up, and removed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from homeassistant.core import HomeAssistant

from ..const import CONF_POWER_SENSOR, LOGGER, SUBENTRY_CONTROLLED_DEVICE, SUBENTRY_SITE
from ..data import FlexMeasuresConfigEntry
from .model import DeviceConfig, SiteConfig
from .scheduler import DeviceScheduler
from .site import SiteScheduler
from .store import ScheduleStore, SiteStore
from .targets import async_delete_unmet_targets_issue

# The subentries whose change rebuilds the schedulers (and their entities).
_PLANNED: Final = frozenset({SUBENTRY_CONTROLLED_DEVICE, SUBENTRY_SITE})


def _planned_subentries(
    entry: FlexMeasuresConfigEntry,
) -> dict[str, tuple[str, str, Mapping[str, Any]]]:
    """Return the controlled-device and site subentries as comparable values."""
    return {
        subentry_id: (subentry.subentry_type, subentry.title, dict(subentry.data))
        for subentry_id, subentry in entry.subentries.items()
        if subentry.subentry_type in _PLANNED
    }


async def async_setup_schedulers(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry
) -> None:
    """Create, restore and start a scheduler per controlled device and site."""
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

    # Sites after their devices: a site's job in flight marks them computing.
    for subentry_id, subentry in entry.subentries.items():
        if subentry.subentry_type != SUBENTRY_SITE:
            continue
        site_config = SiteConfig.from_subentry(subentry)
        devices = [
            data.schedulers[device_id]
            for device_id in site_config.device_subentry_ids
            if device_id in data.schedulers
        ]
        if len(devices) < len(site_config.device_subentry_ids):
            LOGGER.warning(
                "Site %s names controlled devices that no longer exist; reconfigure it",
                site_config.name,
            )
        if not devices:
            continue
        site = SiteScheduler(hass, entry, subentry_id, site_config, data.api, devices)
        await site.async_load()
        data.sites[subentry_id] = site

    for scheduler in data.schedulers.values():
        scheduler.async_start()
        entry.async_on_unload(scheduler.async_stop)
        entry.async_on_unload(scheduler.async_flush)
    for site in data.sites.values():
        site.async_start()
        entry.async_on_unload(site.async_stop)
        entry.async_on_unload(site.async_flush)

    # A controlled device or site added, changed or removed: reload to rebuild.
    known = _planned_subentries(entry)

    async def _async_subentries_changed(
        hass: HomeAssistant, entry: FlexMeasuresConfigEntry
    ) -> None:
        """Reload when the controlled devices or sites changed."""
        current = _planned_subentries(entry)
        if current == known:
            return
        for subentry_id in known.keys() - current.keys():
            if (scheduler := data.schedulers.get(subentry_id)) is not None:
                await scheduler.async_remove_store()
            elif (site := data.sites.get(subentry_id)) is not None:
                await site.async_remove_store()
        hass.config_entries.async_schedule_reload(entry.entry_id)

    entry.async_on_unload(entry.add_update_listener(_async_subentries_changed))


async def async_remove_schedules(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry
) -> None:
    """Delete the stored schedules, site jobs and issues of a removed entry."""
    for subentry_id, (subentry_type, _, _) in _planned_subentries(entry).items():
        if subentry_type == SUBENTRY_SITE:
            await SiteStore(hass, subentry_id).async_remove()
            continue
        async_delete_unmet_targets_issue(hass, subentry_id)
        await ScheduleStore(hass, subentry_id).async_remove()
