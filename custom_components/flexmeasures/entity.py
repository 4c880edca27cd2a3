"""Base entity and asset devices for FlexMeasures."""

from __future__ import annotations

import re
from typing import Any

from homeassistant.const import CONF_URL
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.update_coordinator import (
    CoordinatorEntity,
    DataUpdateCoordinator,
)

from .api import Asset
from .const import DOMAIN
from .coordinator import Inventory
from .data import FlexMeasuresConfigEntry


def asset_identifier(entry: FlexMeasuresConfigEntry, asset_id: int) -> tuple[str, str]:
    """Return the device identifier of an asset."""
    return (DOMAIN, f"{entry.unique_id}_asset_{asset_id}")


def asset_id_of(entry: FlexMeasuresConfigEntry, device: dr.DeviceEntry) -> int | None:
    """Return the id of the asset a device stands for, or None for other devices."""
    pattern = re.compile(rf"{re.escape(f'{entry.unique_id}_asset_')}(\d+)")
    for domain, identifier in device.identifiers:
        if domain == DOMAIN and (match := pattern.fullmatch(identifier)):
            return int(match[1])
    return None


@callback
def async_rekey_registries(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry, new_unique_id: str
) -> None:
    """Move the entry's device and entity ids to a new entry unique id (a new URL).

    Asset devices, FlexMeasures sensor entities and the entry's own device and
    sensors carry the entry's unique id, which contains the server URL: re-keying
    them keeps entity ids, names, areas and history when the server moves.
    """

    def rekey(identifier: str) -> str:
        if identifier == entry.unique_id:
            return new_unique_id
        if identifier.startswith(old_prefix):
            return f"{new_unique_id}_{identifier.removeprefix(old_prefix)}"
        return identifier

    old_prefix = f"{entry.unique_id}_"
    entity_registry = er.async_get(hass)
    for entity in er.async_entries_for_config_entry(entity_registry, entry.entry_id):
        if (unique_id := rekey(entity.unique_id)) != entity.unique_id:
            entity_registry.async_update_entity(
                entity.entity_id, new_unique_id=unique_id
            )
    device_registry = dr.async_get(hass)
    for device in dr.async_entries_for_config_entry(device_registry, entry.entry_id):
        identifiers = {
            (domain, rekey(identifier) if domain == DOMAIN else identifier)
            for domain, identifier in device.identifiers
        }
        if identifiers != device.identifiers:
            device_registry.async_update_device(device.id, new_identifiers=identifiers)


def asset_device_info(entry: FlexMeasuresConfigEntry, asset: Asset) -> DeviceInfo:
    """Describe the device of an asset, with its type as model and its page."""
    return DeviceInfo(
        identifiers={asset_identifier(entry, asset.id)},
        name=asset.name,
        manufacturer="FlexMeasures",
        model=asset.asset_type,
        configuration_url=f"{entry.data[CONF_URL]}/assets/{asset.id}",
    )


def _depth(inventory: Inventory, asset: Asset) -> int:
    """Return how many visible ancestors an asset has (cycles end the walk)."""
    seen = {asset.id}
    parent = asset.parent_id
    while parent is not None and parent in inventory.assets and parent not in seen:
        seen.add(parent)
        parent = inventory.assets[parent].parent_id
    return len(seen) - 1


@callback
def async_sync_devices(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry, inventory: Inventory
) -> None:
    """Create or update a device per asset under its parent; drop deleted assets."""
    registry = dr.async_get(hass)
    device_ids: dict[int, str] = {}
    for asset in sorted(
        inventory.assets.values(), key=lambda asset: _depth(inventory, asset)
    ):
        device = registry.async_get_or_create(
            config_entry_id=entry.entry_id, **asset_device_info(entry, asset)
        )
        device_ids[asset.id] = device.id
        # Linked by device id: DeviceInfo's via_device became via_device_id in 2026.
        parent_device_id = (
            device_ids.get(asset.parent_id) if asset.parent_id is not None else None
        )
        if parent_device_id == device.id:
            parent_device_id = None
        if device.via_device_id != parent_device_id:
            registry.async_update_device(device.id, via_device_id=parent_device_id)
    for device in dr.async_entries_for_config_entry(registry, entry.entry_id):
        asset_id = asset_id_of(entry, device)
        if asset_id is not None and asset_id not in inventory.assets:
            registry.async_update_device(
                device.id, remove_config_entry_id=entry.entry_id
            )


class FlexMeasuresEntity[CoordinatorT: DataUpdateCoordinator[Any]](
    CoordinatorEntity[CoordinatorT]
):
    """An entity on the device of a FlexMeasures asset."""

    _attr_has_entity_name = True

    def __init__(
        self,
        coordinator: CoordinatorT,
        *,
        entry: FlexMeasuresConfigEntry,
        asset_id: int,
    ) -> None:
        """Attach the entity to its asset's device."""
        super().__init__(coordinator)
        self._attr_device_info = DeviceInfo(
            identifiers={asset_identifier(entry, asset_id)}
        )
