"""FlexMeasures sensors as Home Assistant sensor entities."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
import re
from typing import Any, Final

from homeassistant.components.sensor import (
    DOMAIN as SENSOR_DOMAIN,
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    PERCENTAGE,
    EntityCategory,
    Platform,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfPower,
    UnitOfTemperature,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.generated.currencies import ACTIVE_CURRENCIES
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import (
    AddConfigEntryEntitiesCallback,
    AddEntitiesCallback,
)
from homeassistant.helpers.typing import StateType
from homeassistant.util import dt as dt_util

from .api import Asset, Sensor
from .controlled_device import FlexMeasuresControlledDeviceEntity
from .coordinator import FlexMeasuresSensorValuesCoordinator, SensorReading
from .data import FlexMeasuresConfigEntry
from .entity import FlexMeasuresEntity
from .identity import (
    entry_device_identifier,
    entry_entity_unique_id,
    forecast_link_identifier,
    forecast_link_unique_id,
    sensor_id_of,
    sensor_unique_id,
)
from .s2 import async_add_s2_entities
from .scheduling import (
    DeviceScheduler,
    ScheduleStatus,
    SocUnit,
    Window,
    WindowKind,
    unmet_target_attributes,
)
from .signals import signal_forecast_link_updated, signal_uploader_updated
from .site_entities import async_add_site_sensors
from .uploader import MeasurementUploader

PARALLEL_UPDATES = 0

POWER_PRECISION: Final[dict[str, int]] = {
    UnitOfPower.WATT: 0,
    UnitOfPower.KILO_WATT: 2,
    UnitOfPower.MEGA_WATT: 3,
    UnitOfPower.GIGA_WATT: 3,
}
ENERGY_PRECISION: Final[dict[str, int]] = {
    UnitOfEnergy.WATT_HOUR: 0,
    UnitOfEnergy.KILO_WATT_HOUR: 2,
    UnitOfEnergy.MEGA_WATT_HOUR: 3,
    UnitOfEnergy.GIGA_WATT_HOUR: 3,
}
TEMPERATURE_UNITS: Final = {
    UnitOfTemperature.CELSIUS,
    UnitOfTemperature.FAHRENHEIT,
    UnitOfTemperature.KELVIN,
}
# Decimals of a price per Wh / kWh / MWh / GWh that still show cents.
PRICE_PRECISION: Final = {"Wh": 6, "kWh": 4, "MWh": 2, "GWh": 0}
PRICE_UNIT: Final = re.compile(r"(?P<currency>[A-Z]{3})/(?P<energy>[kMG]?Wh)")


def _price_precision(unit: str) -> int | None:
    """Return the display precision of a currency-per-energy unit, else None."""
    match = PRICE_UNIT.fullmatch(unit)
    if match is None or match["currency"] not in ACTIVE_CURRENCIES:
        return None
    return PRICE_PRECISION[match["energy"]]


def _is_instantaneous(sensor: Sensor) -> bool:
    """Return whether the sensor records states, not amounts per slot."""
    return sensor.resolution == timedelta(0)


@dataclass(frozen=True, kw_only=True)
class FlexMeasuresSensorEntityDescription(SensorEntityDescription):
    """Describes how a kind of FlexMeasures sensor maps to Home Assistant."""

    has_fn: Callable[[Sensor], bool]
    precision_fn: Callable[[str], int | None] = lambda _: None
    # The value is an amount over its slot: statistics restart at each slot.
    per_slot: bool = False


DESCRIPTIONS: Final[tuple[FlexMeasuresSensorEntityDescription, ...]] = (
    FlexMeasuresSensorEntityDescription(
        key="power",
        translation_key="power",
        device_class=SensorDeviceClass.POWER,
        state_class=SensorStateClass.MEASUREMENT,
        has_fn=lambda sensor: sensor.unit in POWER_PRECISION,
        precision_fn=POWER_PRECISION.get,
    ),
    FlexMeasuresSensorEntityDescription(
        key="energy",
        translation_key="energy",
        device_class=SensorDeviceClass.ENERGY,
        state_class=SensorStateClass.TOTAL,
        has_fn=lambda sensor: (
            sensor.unit in ENERGY_PRECISION and not _is_instantaneous(sensor)
        ),
        precision_fn=ENERGY_PRECISION.get,
        per_slot=True,
    ),
    FlexMeasuresSensorEntityDescription(
        key="stored_energy",
        translation_key="stored_energy",
        device_class=SensorDeviceClass.ENERGY_STORAGE,
        state_class=SensorStateClass.MEASUREMENT,
        has_fn=lambda sensor: (
            sensor.unit in ENERGY_PRECISION and _is_instantaneous(sensor)
        ),
        precision_fn=ENERGY_PRECISION.get,
    ),
    FlexMeasuresSensorEntityDescription(
        key="price",
        translation_key="price",
        state_class=SensorStateClass.MEASUREMENT,
        has_fn=lambda sensor: _price_precision(sensor.unit) is not None,
        precision_fn=_price_precision,
    ),
    FlexMeasuresSensorEntityDescription(
        key="cost",
        translation_key="cost",
        device_class=SensorDeviceClass.MONETARY,
        state_class=SensorStateClass.TOTAL,
        has_fn=lambda sensor: (
            sensor.unit in ACTIVE_CURRENCIES and not _is_instantaneous(sensor)
        ),
        precision_fn=lambda _: 2,
        per_slot=True,
    ),
    FlexMeasuresSensorEntityDescription(
        key="percentage",
        translation_key="percentage",
        state_class=SensorStateClass.MEASUREMENT,
        has_fn=lambda sensor: sensor.unit == PERCENTAGE,
        precision_fn=lambda _: 1,
    ),
    FlexMeasuresSensorEntityDescription(
        key="temperature",
        translation_key="temperature",
        device_class=SensorDeviceClass.TEMPERATURE,
        state_class=SensorStateClass.MEASUREMENT,
        has_fn=lambda sensor: sensor.unit in TEMPERATURE_UNITS,
        precision_fn=lambda _: 1,
    ),
    FlexMeasuresSensorEntityDescription(
        key="current",
        translation_key="current",
        device_class=SensorDeviceClass.CURRENT,
        state_class=SensorStateClass.MEASUREMENT,
        has_fn=lambda sensor: sensor.unit == UnitOfElectricCurrent.AMPERE,
        precision_fn=lambda _: 1,
    ),
    FlexMeasuresSensorEntityDescription(
        key="voltage",
        translation_key="voltage",
        device_class=SensorDeviceClass.VOLTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        has_fn=lambda sensor: sensor.unit == UnitOfElectricPotential.VOLT,
        precision_fn=lambda _: 0,
    ),
)

# Anything else: a number in the unit the server gives, no device class.
MEASUREMENT_DESCRIPTION: Final = FlexMeasuresSensorEntityDescription(
    key="measurement",
    translation_key="measurement",
    state_class=SensorStateClass.MEASUREMENT,
    has_fn=lambda _: True,
)


def description_for(sensor: Sensor) -> FlexMeasuresSensorEntityDescription:
    """Return the description that fits the sensor's unit and resolution."""
    return next(
        (row for row in DESCRIPTIONS if row.has_fn(sensor)), MEASUREMENT_DESCRIPTION
    )


@callback
def _async_remove_stale_entities(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry, exposed: set[int]
) -> None:
    """Remove the entities of sensors that were deleted or deselected."""
    registry = er.async_get(hass)
    for entity in er.async_entries_for_config_entry(registry, entry.entry_id):
        if (
            entity.domain == SENSOR_DOMAIN
            and (sensor_id := sensor_id_of(entry, entity.unique_id)) is not None
            and sensor_id not in exposed
        ):
            registry.async_remove(entity.entity_id)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: FlexMeasuresConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up an entity per exposed FlexMeasures sensor, and keep the set current."""
    _async_add_uploader_sensors(entry, async_add_entities)
    coordinator = entry.runtime_data.sensor_values
    known: set[int] = set()

    @callback
    def _async_update_entities() -> None:
        """Add entities for new sensors and drop those of removed ones."""
        if not coordinator.inventory.last_update_success:
            return
        assets = coordinator.inventory.data.assets
        exposed = {sensor.id: sensor for sensor in coordinator.exposed}
        _async_remove_stale_entities(hass, entry, set(exposed))
        known.intersection_update(exposed)
        new = [
            sensor for sensor_id, sensor in exposed.items() if sensor_id not in known
        ]
        if not new:
            return
        known.update(sensor.id for sensor in new)
        async_add_entities(
            FlexMeasuresSensorEntity(
                coordinator,
                entry=entry,
                sensor=sensor,
                asset=assets[sensor.asset_id],
            )
            for sensor in new
        )
        if any(sensor.id not in coordinator.data for sensor in new):
            entry.async_create_task(hass, coordinator.async_request_refresh())

    _async_update_entities()
    entry.async_on_unload(
        coordinator.inventory.async_add_listener(_async_update_entities)
    )

    # Scheduling: the schedule sensors of every controlled device.
    _async_setup_schedule_sensors(entry, async_add_entities)

    # Forecast links: what each last posted.
    _async_add_forecast_link_sensors(entry, async_add_entities)
    # Sites: the status and summed plan of devices planned together.
    async_add_site_sensors(entry, async_add_entities)

    # S2: control type and last instruction of each controlled device.
    async_add_s2_entities(entry, async_add_entities, Platform.SENSOR)


class FlexMeasuresSensorEntity(
    FlexMeasuresEntity[FlexMeasuresSensorValuesCoordinator], SensorEntity
):
    """The most recent value of a FlexMeasures sensor."""

    entity_description: FlexMeasuresSensorEntityDescription

    def __init__(
        self,
        coordinator: FlexMeasuresSensorValuesCoordinator,
        *,
        entry: FlexMeasuresConfigEntry,
        sensor: Sensor,
        asset: Asset,
    ) -> None:
        """Initialize the entity from the FlexMeasures sensor."""
        super().__init__(coordinator, entry=entry, asset_id=asset.id)
        self.entity_description = description = description_for(sensor)
        self.sensor_id = sensor.id
        self._attr_unique_id = sensor_unique_id(entry, sensor.id)
        self._attr_native_unit_of_measurement = sensor.unit or None
        self._attr_suggested_display_precision = description.precision_fn(sensor.unit)
        # Users know their sensors by the FlexMeasures name; a blank name or one
        # that merely repeats the asset gets the translated name of its kind.
        if sensor.name.strip().casefold() not in ("", asset.name.strip().casefold()):
            self._attr_name = sensor.name

    @property
    def _reading(self) -> SensorReading | None:
        """Return this sensor's reading from the last refresh."""
        return self.coordinator.data.get(self.sensor_id)

    @property
    def available(self) -> bool:
        """Return whether the last refresh could read this sensor."""
        return super().available and self._reading is not None

    @property
    def native_value(self) -> float | None:
        """Return the most recent value; None (unknown) while there is no data."""
        reading = self._reading
        return reading.value if reading else None

    @property
    def last_reset(self) -> datetime | None:
        """Return the start of the slot an amount-per-slot value covers."""
        reading = self._reading
        if not self.entity_description.per_slot or reading is None:
            return None
        return reading.event_start

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """Return when the value's slot started."""
        reading = self._reading
        if reading is None or reading.event_start is None:
            return None
        return {"event_start": reading.event_start}


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
        # A fallback plan: why FlexMeasures' own scheduler failed.
        "fallback_reason": schedule.fallback_reason if schedule else None,
        "unmet_targets": unmet_target_attributes(schedule, scheduler.config)
        if schedule
        else [],
        "job_id": schedule.job_id if schedule else None,
        "schedule_start": schedule.start.isoformat() if schedule else None,
        "schedule_end": schedule.end.isoformat() if schedule else None,
        # Restart: whether a job in flight was picked up or computed anew.
        "recovery": scheduler.recovery.value if scheduler.recovery else None,
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
    # Series and lists are for cards and templates, not for the database.
    _unrecorded_attributes = frozenset({"schedule", "soc_schedule", "unmet_targets"})

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
        return self.entity_description.value_fn(self.coordinator, dt_util.utcnow())

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        """Return the series or details of this value."""
        return (
            self.entity_description.attributes_fn(self.coordinator, dt_util.utcnow())
            or None
        )


# --- Measurement uploads: the backlog and the last upload, per entry (issue 5) -----


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
        # Idle except while an upload_history action runs.
        entity_registry_enabled_default=False,
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
        self._attr_unique_id = entry_entity_unique_id(entry, description.key)
        self._attr_device_info = DeviceInfo(
            identifiers={entry_device_identifier(entry)},
            name=entry.runtime_data.server.account_name,
            manufacturer="FlexMeasures",
            entry_type=DeviceEntryType.SERVICE,
            configuration_url=entry.runtime_data.server.url,
        )

    async def async_added_to_hass(self) -> None:
        """Follow the uploader."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass,
                signal_uploader_updated(self._uploader.entry.entry_id),
                self.async_write_ha_state,
            )
        )

    @property
    def native_value(self) -> float | int | datetime | None:
        """Return the value from the uploader."""
        return self.entity_description.value_fn(self._uploader)


@callback
def _async_add_uploader_sensors(
    entry: FlexMeasuresConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    """Add the diagnostic sensors of the measurement uploader."""
    async_add_entities(
        FlexMeasuresUploaderSensor(entry, description)
        for description in UPLOADER_SENSORS
    )


# --- Forecast links: the last series each posted (issue 16) ------------------------


FORECAST_LINK_SENSOR: Final = SensorEntityDescription(
    key="last_forecast_posted",
    translation_key="last_forecast_posted",
    device_class=SensorDeviceClass.TIMESTAMP,
    entity_category=EntityCategory.DIAGNOSTIC,
)


class FlexMeasuresForecastLinkSensor(SensorEntity):
    """When a forecast link last posted, with how many slots and how far ahead."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    # Attributes a card or template reads; not worth a row per change.
    _unrecorded_attributes = frozenset({"pending", "source_error"})

    def __init__(self, entry: FlexMeasuresConfigEntry, subentry_id: str) -> None:
        """Initialize the sensor on the link's own device."""
        self.entity_description = FORECAST_LINK_SENSOR
        self._links = entry.runtime_data.forecasts
        self._subentry_id = subentry_id
        # A link lives as long as the entry is loaded: a changed link reloads it.
        self._link = link = self._links.links[subentry_id]
        self._attr_unique_id = forecast_link_unique_id(
            subentry_id, FORECAST_LINK_SENSOR.key
        )
        self._attr_device_info = DeviceInfo(
            identifiers={forecast_link_identifier(subentry_id)},
            name=link.config.title,
            manufacturer="FlexMeasures",
            model="Forecast link",
            entry_type=DeviceEntryType.SERVICE,
            configuration_url=(
                f"{entry.runtime_data.server.url}/sensors/{link.config.sensor_id}"
            ),
        )

    async def async_added_to_hass(self) -> None:
        """Follow the link."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass,
                signal_forecast_link_updated(
                    self._links.entry.entry_id, self._subentry_id
                ),
                self.async_write_ha_state,
            )
        )

    @property
    def native_value(self) -> datetime | None:
        """Return when the server last stored a series of this link."""
        return self._link.last_posted

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Return the size of the last series and the horizon the server holds."""
        link = self._link
        return {
            "slots_posted": link.slots_posted,
            "horizon_end": link.horizon.isoformat() if link.horizon else None,
            "pending": len(link.pending),
            "source_error": link.source_error,
        }


@callback
def _async_add_forecast_link_sensors(
    entry: FlexMeasuresConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sensor of every forecast link."""
    for subentry_id in entry.runtime_data.forecasts.links:
        async_add_entities(
            [FlexMeasuresForecastLinkSensor(entry, subentry_id)],
            config_subentry_id=subentry_id,
        )
