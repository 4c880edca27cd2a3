"""Sensors for FlexMeasures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import PERCENTAGE, EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DOMAIN
from .data import FlexMeasuresConfigEntry
from .uploader import MeasurementUploader

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: FlexMeasuresConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up FlexMeasures sensors based on a config entry."""
    async_add_entities(
        FlexMeasuresUploaderSensor(entry, description)
        for description in UPLOADER_SENSORS
    )


# Measurement uploads: the backlog and the last successful upload, per entry.


@dataclass(frozen=True, kw_only=True)
class FlexMeasuresUploaderSensorEntityDescription(SensorEntityDescription):
    """Describes a sensor that reports on the measurement uploads."""

    value_fn: Callable[[MeasurementUploader], float | int | datetime | None]


UPLOADER_SENSORS: tuple[FlexMeasuresUploaderSensorEntityDescription, ...] = (
    FlexMeasuresUploaderSensorEntityDescription(
        key="pending_measurements",
        translation_key="pending_measurements",
        entity_category=EntityCategory.DIAGNOSTIC,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda uploader: uploader.pending_count,
    ),
    FlexMeasuresUploaderSensorEntityDescription(
        key="last_upload",
        translation_key="last_upload",
        entity_category=EntityCategory.DIAGNOSTIC,
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=lambda uploader: uploader.last_upload,
    ),
    FlexMeasuresUploaderSensorEntityDescription(
        key="history_upload_progress",
        translation_key="history_upload_progress",
        entity_category=EntityCategory.DIAGNOSTIC,
        native_unit_of_measurement=PERCENTAGE,
        value_fn=lambda uploader: uploader.history_progress,
    ),
)


class FlexMeasuresUploaderSensor(SensorEntity):
    """A diagnostic sensor that follows the entry's measurement uploader."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    entity_description: FlexMeasuresUploaderSensorEntityDescription

    def __init__(
        self,
        entry: FlexMeasuresConfigEntry,
        description: FlexMeasuresUploaderSensorEntityDescription,
    ) -> None:
        """Initialize the sensor."""
        self.entity_description = description
        self._uploader = entry.runtime_data.uploader
        self._attr_unique_id = f"{entry.unique_id}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, str(entry.unique_id))},
            name=entry.runtime_data.server.account_name,
            manufacturer="FlexMeasures",
            entry_type=DeviceEntryType.SERVICE,
            configuration_url=entry.runtime_data.server.url,
        )

    async def async_added_to_hass(self) -> None:
        """Follow the uploader."""
        await super().async_added_to_hass()
        self.async_on_remove(
            self._uploader.async_add_listener(self.async_write_ha_state)
        )

    @property
    def native_value(self) -> float | int | datetime | None:
        """Return the value from the uploader."""
        return self.entity_description.value_fn(self._uploader)
