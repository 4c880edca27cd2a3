"""Sensors of the FlexMeasures integration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfPower
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType
from homeassistant.util import dt as dt_util

from .controlled_device import FlexMeasuresControlledDeviceEntity
from .data import FlexMeasuresConfigEntry
from .scheduling import DeviceScheduler, ScheduleStatus, SocUnit, Window, WindowKind

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: FlexMeasuresConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up FlexMeasures sensors based on a config entry."""
    _async_setup_schedule_sensors(entry, async_add_entities)


# --- Scheduling: sensors of a controlled device ------------------------------

# Slots listed in the (unrecorded) schedule attributes: 4 days of 15 minutes.
MAX_ATTRIBUTE_SLOTS: Final = 384


def _next_window(
    scheduler: DeviceScheduler, now: datetime, kind: WindowKind
) -> Window | None:
    """Return the ongoing or next window of ``kind``."""
    if scheduler.schedule is None:
        return None
    return next(
        (
            window
            for window in scheduler.schedule.windows
            if window.kind is kind and window.end > now
        ),
        None,
    )


def _planned_power(scheduler: DeviceScheduler, now: datetime) -> float | None:
    """Return the power planned for now."""
    schedule = scheduler.schedule
    return None if schedule is None else schedule.power_at(now)


def _power_attributes(scheduler: DeviceScheduler, now: datetime) -> dict[str, Any]:
    """Return the power plan from the current slot on, bounded."""
    schedule = scheduler.schedule
    if schedule is None:
        return {}
    first = schedule.index_at(now) or 0
    if now >= schedule.end:
        first = len(schedule.values)
    return {
        "schedule": [
            {
                "start": (schedule.start + schedule.resolution * index).isoformat(),
                "value": round(schedule.values[index], 3),
            }
            for index in range(
                first, min(len(schedule.values), first + MAX_ATTRIBUTE_SLOTS)
            )
        ]
    }


def _window_start(scheduler: DeviceScheduler, now: datetime) -> datetime | None:
    """Return the start of the ongoing or next charging window."""
    window = _next_window(scheduler, now, WindowKind.CHARGING)
    return window.start if window else None


def _window_end(scheduler: DeviceScheduler, now: datetime) -> datetime | None:
    """Return the end of the ongoing or next charging window."""
    window = _next_window(scheduler, now, WindowKind.CHARGING)
    return window.end if window else None


def _soc_at_end(scheduler: DeviceScheduler, now: datetime) -> float | None:
    """Return the SoC planned at the end of the horizon, in the device's unit."""
    schedule = scheduler.schedule
    if schedule is None or not schedule.soc:
        return None
    return round(scheduler.config.from_kwh(schedule.soc[-1]), 2)


def _soc_attributes(scheduler: DeviceScheduler, now: datetime) -> dict[str, Any]:
    """Return the SoC plan (at the end of each slot) from now on, bounded."""
    schedule = scheduler.schedule
    if schedule is None:
        return {}
    first = schedule.index_at(now) or 0
    if now >= schedule.end:
        first = len(schedule.soc)
    return {
        "soc_schedule": [
            {
                "start": (
                    schedule.start + schedule.resolution * (index + 1)
                ).isoformat(),
                "value": round(scheduler.config.from_kwh(schedule.soc[index]), 2),
            }
            for index in range(
                first, min(len(schedule.soc), first + MAX_ATTRIBUTE_SLOTS)
            )
        ]
    }


def _soc_at_next_target(scheduler: DeviceScheduler, now: datetime) -> float | None:
    """Return the SoC planned at the next target, in the device's unit."""
    schedule = scheduler.schedule
    if schedule is None:
        return None
    for target in schedule.targets:
        if target.at > now:
            planned = schedule.soc_at(target.at)
            return (
                None
                if planned is None
                else round(scheduler.config.from_kwh(planned), 2)
            )
    return None


def _target_attributes(scheduler: DeviceScheduler, now: datetime) -> dict[str, Any]:
    """Return the next target's moment and value."""
    schedule = scheduler.schedule
    if schedule is None:
        return {}
    for target in schedule.targets:
        if target.at > now:
            return {
                "target_time": target.at.isoformat(),
                "target_value": round(scheduler.config.from_kwh(target.kwh), 2),
            }
    return {}


def _status_attributes(scheduler: DeviceScheduler, now: datetime) -> dict[str, Any]:
    """Return why the last round failed and what the plan covers."""
    schedule = scheduler.schedule
    return {
        "failure_reason": scheduler.failure_reason.value
        if scheduler.failure_reason
        else None,
        "failure_message": scheduler.failure_message,
        "job_id": schedule.job_id if schedule else None,
        "schedule_start": schedule.start.isoformat() if schedule else None,
        "schedule_end": schedule.end.isoformat() if schedule else None,
    }


@dataclass(frozen=True, kw_only=True)
class FlexMeasuresScheduleSensorEntityDescription(SensorEntityDescription):
    """Describes a sensor that reads a controlled device's schedule."""

    value_fn: Callable[[DeviceScheduler, datetime], StateType | datetime]
    attributes_fn: Callable[[DeviceScheduler, datetime], dict[str, Any]] = (
        lambda _scheduler, _now: {}
    )
    # Unit and device class follow the device's SoC unit (% or kWh).
    soc_valued: bool = False


SCHEDULE_SENSORS: tuple[FlexMeasuresScheduleSensorEntityDescription, ...] = (
    FlexMeasuresScheduleSensorEntityDescription(
        key="planned_power",
        translation_key="planned_power",
        device_class=SensorDeviceClass.POWER,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfPower.KILO_WATT,
        suggested_display_precision=2,
        value_fn=_planned_power,
        attributes_fn=_power_attributes,
    ),
    FlexMeasuresScheduleSensorEntityDescription(
        key="next_charging_start",
        translation_key="next_charging_start",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=_window_start,
    ),
    FlexMeasuresScheduleSensorEntityDescription(
        key="next_charging_end",
        translation_key="next_charging_end",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=_window_end,
    ),
    FlexMeasuresScheduleSensorEntityDescription(
        key="planned_soc_end",
        translation_key="planned_soc_end",
        soc_valued=True,
        value_fn=_soc_at_end,
        attributes_fn=_soc_attributes,
    ),
    FlexMeasuresScheduleSensorEntityDescription(
        key="planned_soc_next_target",
        translation_key="planned_soc_next_target",
        soc_valued=True,
        value_fn=_soc_at_next_target,
        attributes_fn=_target_attributes,
    ),
    FlexMeasuresScheduleSensorEntityDescription(
        key="schedule_status",
        translation_key="schedule_status",
        device_class=SensorDeviceClass.ENUM,
        options=[status.value for status in ScheduleStatus],
        value_fn=lambda scheduler, _now: scheduler.status.value,
        attributes_fn=_status_attributes,
    ),
    FlexMeasuresScheduleSensorEntityDescription(
        key="schedule_updated",
        translation_key="schedule_updated",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda scheduler, _now: scheduler.last_updated,
    ),
)


def _async_setup_schedule_sensors(
    entry: FlexMeasuresConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the schedule sensors of every controlled device."""
    for subentry_id, scheduler in entry.runtime_data.schedulers.items():
        async_add_entities(
            (
                FlexMeasuresScheduleSensor(scheduler=scheduler, description=description)
                for description in SCHEDULE_SENSORS
            ),
            config_subentry_id=subentry_id,
        )


class FlexMeasuresScheduleSensor(FlexMeasuresControlledDeviceEntity, SensorEntity):
    """A sensor that shows a part of a controlled device's schedule."""

    entity_description: FlexMeasuresScheduleSensorEntityDescription
    # Series are for cards and templates, not for the database.
    _unrecorded_attributes = frozenset({"schedule", "soc_schedule"})

    def __init__(
        self,
        *,
        scheduler: DeviceScheduler,
        description: FlexMeasuresScheduleSensorEntityDescription,
    ) -> None:
        """Initialize; SoC sensors take the device's SoC unit."""
        super().__init__(scheduler=scheduler, description=description)
        if description.soc_valued:
            percent = scheduler.config.soc_unit is SocUnit.PERCENT
            self._attr_native_unit_of_measurement = scheduler.config.soc_unit.symbol
            self._attr_device_class = (
                SensorDeviceClass.BATTERY
                if percent
                else SensorDeviceClass.ENERGY_STORAGE
            )
            self._attr_suggested_display_precision = 0 if percent else 1

    @property
    def native_value(self) -> StateType | datetime:
        """Return the value planned for now."""
        return self.entity_description.value_fn(self.scheduler, dt_util.utcnow())

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Return the series or details of this value."""
        return (
            self.entity_description.attributes_fn(self.scheduler, dt_util.utcnow())
            or None
        )
