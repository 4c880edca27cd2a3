"""Base entity and asset devices for FlexMeasures."""

from __future__ import annotations

from typing import Any

from homeassistant.const import CONF_URL
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.update_coordinator import (
    CoordinatorEntity,
    DataUpdateCoordinator,
)

from .api import Asset
from .coordinator import Inventory
from .data import FlexMeasuresConfigEntry
from .identity import asset_id_of, asset_identifier


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
