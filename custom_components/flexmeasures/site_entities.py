"""The device of a site and its sensors: its status and its devices' summed plan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfPower
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType
from homeassistant.helpers.update_coordinator import CoordinatorEntity
from homeassistant.util import dt as dt_util

from .data import FlexMeasuresConfigEntry
from .identity import site_unique_id
from .scheduling import ScheduleStatus, SiteScheduler


def _status_attributes(site: SiteScheduler, _now: datetime) -> dict[str, Any]:
    """Return why the site's last round failed and how a restart was dealt with."""
    return {
        "failure_reason": site.failure_reason.value if site.failure_reason else None,
        "failure_message": site.failure_message,
        "recovery": site.recovery.value if site.recovery else None,
        "last_updated": site.last_updated.isoformat() if site.last_updated else None,
    }


@dataclass(frozen=True, kw_only=True)
class FlexMeasuresSiteSensorEntityDescription(SensorEntityDescription):
    """Describes a sensor of a site."""

    value_fn: Callable[[SiteScheduler, datetime], StateType]
    attributes_fn: Callable[[SiteScheduler, datetime], dict[str, Any]] = (
        lambda _site, _now: {}
    )
    has_fn: Callable[[SiteScheduler], bool] = lambda _site: True


SITE_SENSORS: tuple[FlexMeasuresSiteSensorEntityDescription, ...] = (
    FlexMeasuresSiteSensorEntityDescription(
        key="site_status",
        translation_key="site_status",
        device_class=SensorDeviceClass.ENUM,
        options=[status.value for status in ScheduleStatus],
        value_fn=lambda site, _now: site.status.value,
        attributes_fn=_status_attributes,
    ),
    FlexMeasuresSiteSensorEntityDescription(
        key="site_planned_power",
        translation_key="site_planned_power",
        device_class=SensorDeviceClass.POWER,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfPower.KILO_WATT,
        suggested_display_precision=2,
        value_fn=lambda site, now: site.planned_power_at(now),
    ),
    FlexMeasuresSiteSensorEntityDescription(
        key="site_planned_peak_power",
        translation_key="site_planned_peak_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.KILO_WATT,
        suggested_display_precision=2,
        value_fn=lambda site, now: site.planned_peak(now),
    ),
    FlexMeasuresSiteSensorEntityDescription(
        key="site_power_capacity",
        translation_key="site_power_capacity",
        native_unit_of_measurement="kVA",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda site, _now: site.config.site_power_capacity_kva,
        has_fn=lambda site: site.config.site_power_capacity_kva is not None,
    ),
)


def async_add_site_sensors(
    entry: FlexMeasuresConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sensors of every site."""
    for subentry_id, site in entry.runtime_data.sites.items():
        async_add_entities(
            (
                FlexMeasuresSiteSensor(site=site, description=description)
                for description in SITE_SENSORS
                if description.has_fn(site)
            ),
            config_subentry_id=subentry_id,
        )


class FlexMeasuresSiteSensor(CoordinatorEntity[SiteScheduler], SensorEntity):
    """A sensor of a site: its status, or its devices' plans summed."""

    _attr_has_entity_name = True
    entity_description: FlexMeasuresSiteSensorEntityDescription

    def __init__(
        self,
        *,
        site: SiteScheduler,
        description: FlexMeasuresSiteSensorEntityDescription,
    ) -> None:
        """Initialize the sensor on the site's device."""
        super().__init__(site)
        self.entity_description = description
        self._attr_unique_id = site_unique_id(site.subentry_id, description.key)
        self._attr_device_info = DeviceInfo(
            identifiers={site.device_identifier},
            name=site.name,
            manufacturer="FlexMeasures",
            model="Site",
            configuration_url=f"{site.api.url}/assets/{site.config.asset_id}",
        )

    @property
    def native_value(self) -> StateType:
        """Return the value for now."""
        return self.entity_description.value_fn(self.coordinator, dt_util.utcnow())

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Return the details of this value."""
        return (
            self.entity_description.attributes_fn(self.coordinator, dt_util.utcnow())
            or None
        )
