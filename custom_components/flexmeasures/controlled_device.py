"""Base entity for the entities of a controlled device (one per subentry)."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import DOMAIN, SUBENTRY_CONTROLLED_DEVICE
from .data import FlexMeasuresConfigEntry
from .identity import controlled_device_subentry_id, controlled_device_unique_id
from .scheduling import DeviceKind, DeviceScheduler

MODELS: dict[DeviceKind, str] = {
    DeviceKind.BATTERY: "Battery",
    DeviceKind.EV_CHARGER: "EV charger",
    DeviceKind.HEAT_PUMP_BUFFER: "Heat pump buffer",
    DeviceKind.STORAGE: "Storage",
}


class FlexMeasuresControlledDeviceEntity(CoordinatorEntity[DeviceScheduler]):
    """An entity that shows a part of a controlled device's plan.

    It follows the device's planner like any coordinator entity. It stays
    available through an outage: the last plan is still what the device should
    do, and the schedule status entity says why it is not newer.
    """

    _attr_has_entity_name = True

    def __init__(
        self, *, scheduler: DeviceScheduler, description: EntityDescription
    ) -> None:
        """Initialize the entity on the controlled device's device."""
        super().__init__(scheduler)
        self.entity_description = description
        self._attr_unique_id = controlled_device_unique_id(
            scheduler.subentry_id, description.key
        )
        self._attr_device_info = DeviceInfo(
            identifiers={scheduler.device_identifier},
            name=scheduler.name,
            manufacturer="FlexMeasures",
            model=MODELS[scheduler.config.kind],
            configuration_url=(
                f"{scheduler.api.url}/sensors/{scheduler.config.sensor_id}"
            ),
        )


@callback
def async_get_controlled_device_entry(
    hass: HomeAssistant, device_id: str
) -> tuple[FlexMeasuresConfigEntry, str]:
    """Return the loaded entry and subentry id of a controlled device.

    Actions that name a device call this; it raises a translated
    ``ServiceValidationError`` for an unknown device, a device that is no
    controlled device, and a device whose entry is not loaded.
    """
    device = dr.async_get(hass).async_get(device_id)
    if device is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="device_not_found",
            translation_placeholders={"device_id": device_id},
        )
    subentry_id = controlled_device_subentry_id(device)
    entry = async_get_loaded_entry_of(hass, subentry_id, SUBENTRY_CONTROLLED_DEVICE)
    if entry is not None and subentry_id is not None:
        return entry, subentry_id
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="not_a_controlled_device",
        translation_placeholders={"device": device.name_by_user or device.name or ""},
    )


@callback
def async_get_loaded_entry_of(
    hass: HomeAssistant, subentry_id: str | None, subentry_type: str
) -> FlexMeasuresConfigEntry | None:
    """Return the entry holding a subentry of this type, or None if none does.

    Raises a translated ``ServiceValidationError`` if that entry is not loaded.
    """
    entries: list[FlexMeasuresConfigEntry] = hass.config_entries.async_entries(DOMAIN)
    for entry in entries:
        subentry = entry.subentries.get(subentry_id) if subentry_id else None
        if subentry is None or subentry.subentry_type != subentry_type:
            continue
        if entry.state is not ConfigEntryState.LOADED:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="entry_not_loaded",
                translation_placeholders={"entry": entry.title},
            )
        return entry
    return None
