"""Diagnostics support for FlexMeasures."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_EMAIL, CONF_PASSWORD, CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.helpers.device_registry import DeviceEntry

from .data import FlexMeasuresConfigEntry
from .identity import asset_id_of, controlled_device_subentry_id, site_subentry_id
from .s2 import async_get_s2_diagnostics

TO_REDACT: Final = {CONF_PASSWORD, CONF_EMAIL, CONF_TOKEN, "access_token", "user_name"}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry
) -> dict[str, Any]:
    """Return diagnostics for a config entry."""
    data = entry.runtime_data
    inventory = data.inventory.data
    readings = data.sensor_values.data
    return {
        "entry": {
            "data": async_redact_data(dict(entry.data), TO_REDACT),
            "options": async_redact_data(dict(entry.options), TO_REDACT),
        },
        "server": {
            "url": data.server.url,
            "version": data.server.version,
            "account_id": data.server.account_id,
            "account_name": data.server.account_name,
        },
        "inventory": {
            "assets": len(inventory.assets),
            "sensors": len(inventory.sensors),
            "last_update_success": data.inventory.last_update_success,
        },
        "sensor_values": {
            "exposed": len(data.sensor_values.exposed),
            "read": len(readings),
            "with_data": sum(1 for item in readings.values() if item.value is not None),
            "interval_minutes": data.sensor_values.period.total_seconds() / 60,
            "last_update_success": data.sensor_values.last_update_success,
        },
        "measurement_uploads": {
            "links": len(data.uploader.links),
            "pending": data.uploader.pending_count,
            "server_down": data.uploader.server_down,
            "last_upload": _iso(data.uploader.last_upload),
            "history_progress": data.uploader.history_progress,
        },
        "forecast_links": data.forecasts.diagnostics(),
        "controlled_devices": {
            subentry_id: {
                "name": scheduler.name,
                "kind": scheduler.config.kind.value,
                "sensor_id": scheduler.config.sensor_id,
                "status": scheduler.status.value,
                "failure_reason": scheduler.failure_reason,
                "last_updated": _iso(scheduler.last_updated),
                "schedule_end": _iso(scheduler.schedule.end)
                if scheduler.schedule
                else None,
            }
            for subentry_id, scheduler in data.schedulers.items()
        },
        "sites": {
            subentry_id: {
                "name": site.name,
                "asset_id": site.config.asset_id,
                "devices": [device.subentry_id for device in site.devices],
                "site_power_capacity_kva": site.config.site_power_capacity_kva,
                "price_sensors": sorted(site.config.price_sensors),
                "inflexible_sensors": list(site.config.inflexible_sensors),
                "replan_on_prices": site.config.replan_on_prices,
                "status": site.status.value,
                "failure_reason": site.failure_reason,
                "job_in_flight": site.pending_job is not None,
                "last_updated": _iso(site.last_updated),
            }
            for subentry_id, site in data.sites.items()
        },
        "s2": async_get_s2_diagnostics(entry),
    }


async def async_get_device_diagnostics(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry, device: DeviceEntry
) -> dict[str, Any]:
    """Return diagnostics for one device: an asset, a controlled device or a site."""
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    subentry_id = controlled_device_subentry_id(device)
    asset = entry.runtime_data.inventory.data.assets.get(
        asset_id_of(entry, device) or 0
    )
    return {
        "server": diagnostics["server"],
        "asset": None
        if asset is None
        else {
            "id": asset.id,
            "asset_type": asset.asset_type,
            "sensors": sum(
                1
                for sensor in entry.runtime_data.inventory.data.sensors.values()
                if sensor.asset_id == asset.id
            ),
        },
        "controlled_device": diagnostics["controlled_devices"].get(subentry_id),
        "site": diagnostics["sites"].get(site_subentry_id(device)),
        "s2": diagnostics["s2"]["devices"].get(subentry_id),
    }


def _iso(moment: datetime | None) -> str | None:
    """Return a moment as ISO 8601 text, or None."""
    return moment.isoformat() if moment else None
