"""Base entity for the entities of a controlled device (one per subentry)."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription

from .scheduling import DeviceKind, DeviceScheduler

MODELS: dict[DeviceKind, str] = {
    DeviceKind.BATTERY: "Battery",
    DeviceKind.EV_CHARGER: "EV charger",
    DeviceKind.HEAT_PUMP_BUFFER: "Heat pump buffer",
    DeviceKind.STORAGE: "Storage",
}


class FlexMeasuresControlledDeviceEntity(Entity):
    """An entity that shows a part of a controlled device's schedule."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(
        self, *, scheduler: DeviceScheduler, description: EntityDescription
    ) -> None:
        """Initialize the entity on the controlled device's device."""
        self.scheduler = scheduler
        self.entity_description = description
        self._attr_unique_id = f"{scheduler.subentry_id}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={scheduler.device_identifier},
            name=scheduler.name,
            manufacturer="FlexMeasures",
            model=MODELS[scheduler.config.kind],
            configuration_url=(
                f"{scheduler.api.url}/sensors/{scheduler.config.sensor_id}"
            ),
        )

    async def async_added_to_hass(self) -> None:
        """Follow the scheduler."""
        await super().async_added_to_hass()
        self.async_on_remove(
            self.scheduler.async_add_listener(self.async_write_ha_state)
        )
