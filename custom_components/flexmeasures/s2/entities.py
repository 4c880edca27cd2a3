"""S2 entities of a controlled device; the sensor and binary_sensor platforms add them.

They live in the s2 package rather than in ``sensor.py``/``binary_sensor.py`` so that
S2 stays one self-contained feature: each platform calls one function from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from homeassistant.components.binary_sensor import (
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
)
from homeassistant.const import EntityCategory, Platform
from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

try:  # where newer releases define it (the package stops re-exporting it to mypy)
    from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
except ImportError:  # Home Assistant releases without binary_sensor/const.py
    from homeassistant.components.binary_sensor import (  # type: ignore[attr-defined]
        BinarySensorDeviceClass,
    )

from ..const import S2_CONTROL_TYPES
from ..data import FlexMeasuresConfigEntry
from ..identity import controlled_device_identifier, controlled_device_unique_id
from ..signals import signal_s2_updated
from .config import S2DeviceConfig, s2_path
from .hub import S2Hub
from .model import S2DeviceStatus


@dataclass(frozen=True, kw_only=True)
class S2BinarySensorEntityDescription(BinarySensorEntityDescription):
    """Describes an S2 binary sensor."""

    is_on_fn: Callable[[S2DeviceStatus], bool]


@dataclass(frozen=True, kw_only=True)
class S2SensorEntityDescription(SensorEntityDescription):
    """Describes an S2 sensor."""

    value_fn: Callable[[S2DeviceStatus], str | datetime | None]


BINARY_SENSORS: tuple[S2BinarySensorEntityDescription, ...] = (
    S2BinarySensorEntityDescription(
        key="s2_connected",
        translation_key="s2_connected",
        device_class=BinarySensorDeviceClass.CONNECTIVITY,
        entity_category=EntityCategory.DIAGNOSTIC,
        is_on_fn=lambda status: status.connected,
    ),
)

SENSORS: tuple[S2SensorEntityDescription, ...] = (
    S2SensorEntityDescription(
        key="s2_control_type",
        translation_key="s2_control_type",
        device_class=SensorDeviceClass.ENUM,
        options=list(S2_CONTROL_TYPES),
        value_fn=lambda status: status.control_type,
    ),
    S2SensorEntityDescription(
        key="s2_last_instruction",
        translation_key="s2_last_instruction",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda status: status.last_instruction,
    ),
)


class S2Entity(Entity):
    """An entity showing the S2 status of a controlled device, pushed by the hub."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(
        self, hub: S2Hub, device: S2DeviceConfig, description: EntityDescription
    ) -> None:
        """Initialize the entity on the controlled device."""
        self.entity_description = description
        self._hub = hub
        self._subentry_id = device.subentry_id
        self._attr_unique_id = controlled_device_unique_id(
            device.subentry_id, description.key
        )
        self._attr_device_info = DeviceInfo(
            identifiers={controlled_device_identifier(device.subentry_id)},
            name=device.name,
        )

    @property
    def status(self) -> S2DeviceStatus:
        """Return the device's S2 status."""
        return self._hub.status[self._subentry_id]

    async def async_added_to_hass(self) -> None:
        """Follow the hub's status updates."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass,
                signal_s2_updated(self._hub.entry.entry_id, self._subentry_id),
                self.async_write_ha_state,
            )
        )


class S2BinarySensor(S2Entity, BinarySensorEntity):
    """Whether a resource manager is connected."""

    entity_description: S2BinarySensorEntityDescription

    @property
    def is_on(self) -> bool:
        """Return True while a resource manager is connected."""
        return self.entity_description.is_on_fn(self.status)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the websocket path a resource manager connects to."""
        return {"path": s2_path(self._hub.entry.entry_id, self._subentry_id)}


class S2Sensor(S2Entity, SensorEntity):
    """The active control type or the time of the last instruction."""

    entity_description: S2SensorEntityDescription

    @property
    def native_value(self) -> str | datetime | None:
        """Return the value from the device's S2 status."""
        return self.entity_description.value_fn(self.status)


@callback
def async_add_s2_entities(
    entry: FlexMeasuresConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    platform: Platform,
) -> None:
    """Add a platform's S2 entities of every S2-enabled controlled device."""
    hub = entry.runtime_data.s2
    for device in hub.devices.values():
        entities: list[Entity]
        if platform is Platform.SENSOR:
            entities = [S2Sensor(hub, device, desc) for desc in SENSORS]
        else:
            entities = [S2BinarySensor(hub, device, desc) for desc in BINARY_SENSORS]
        async_add_entities(entities, config_subentry_id=device.subentry_id)
