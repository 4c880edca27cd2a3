"""Data update coordinators for FlexMeasures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util

from .api import (
    Asset,
    FlexMeasuresApi,
    FlexMeasuresError,
    FlexMeasuresHttpStatusError,
    FlexMeasuresRejectedError,
    FlexMeasuresResponseError,
    Sensor,
    TimeSeries,
)
from .const import (
    CONF_EXCLUDED_SENSORS,
    CONF_SCAN_INTERVAL,
    DEFAULT_SCAN_INTERVAL,
    DOMAIN,
    INSTANTANEOUS_RESOLUTION,
    LOGGER,
    MAX_CONCURRENT_REQUESTS,
    SLOT_OFFSET,
    VALUE_LOOKBACK,
)
from .data import FlexMeasuresConfigEntry, translated_error

INVENTORY_INTERVAL: Final = timedelta(minutes=30)


async def async_call_for_coordinator[T](func: Callable[[], Awaitable[T]]) -> T:
    """Await an API call, mapping its errors to what a coordinator must raise."""
    try:
        return await func()
    except FlexMeasuresError as err:
        raise translated_error(err, UpdateFailed) from err


@dataclass(frozen=True, kw_only=True, slots=True)
class Inventory:
    """The assets and sensors the account can see, by id."""

    assets: dict[int, Asset]
    sensors: dict[int, Sensor]


class FlexMeasuresInventoryCoordinator(DataUpdateCoordinator[Inventory]):
    """Keeps the list of assets and sensors current (slow cadence)."""

    config_entry: FlexMeasuresConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: FlexMeasuresConfigEntry,
        api: FlexMeasuresApi,
    ) -> None:
        """Initialize the coordinator."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} inventory",
            update_interval=INVENTORY_INTERVAL,
        )
        self.api = api

    async def _async_update_data(self) -> Inventory:
        """Fetch assets and sensors."""
        assets = await async_call_for_coordinator(self.api.async_get_assets)
        sensors = await async_call_for_coordinator(self.api.async_get_sensors)
        return Inventory(
            assets={asset.id: asset for asset in assets},
            sensors={sensor.id: sensor for sensor in sensors},
        )


# --- Sensor values (issue 4) ---------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class SensorReading:
    """A sensor's most recent value and the start of the slot it belongs to."""

    value: float | None
    event_start: datetime | None


NO_DATA: Final = SensorReading(value=None, event_start=None)


def exposed_sensors(inventory: Inventory, options: Mapping[str, Any]) -> list[Sensor]:
    """Return the sensors that become entities: all on known assets, minus excluded."""
    excluded = {int(sensor_id) for sensor_id in options.get(CONF_EXCLUDED_SENSORS, [])}
    return [
        sensor
        for sensor in inventory.sensors.values()
        if sensor.id not in excluded and sensor.asset_id in inventory.assets
    ]


def scan_interval(options: Mapping[str, Any]) -> timedelta:
    """Return the polling interval the options ask for."""
    minutes = options.get(CONF_SCAN_INTERVAL)
    return timedelta(minutes=minutes) if minutes else DEFAULT_SCAN_INTERVAL


def delay_to_next_refresh(now: datetime, period: timedelta) -> timedelta:
    """Return the wait until the next slot boundary (multiples of period) + offset."""
    seconds = period.total_seconds()
    since_boundary = (now - SLOT_OFFSET).timestamp() % seconds
    return timedelta(seconds=seconds - since_boundary)


def value_window(
    sensor: Sensor, now: datetime
) -> tuple[datetime, timedelta, timedelta]:
    """Return start, duration and resolution of the recent window to query."""
    resolution = sensor.resolution or INSTANTANEOUS_RESOLUTION
    step = resolution.total_seconds()
    slot_start = now.timestamp() // step * step
    end = dt_util.utc_from_timestamp(slot_start + step)
    slots = max(2, -(-VALUE_LOOKBACK // resolution))
    duration = resolution * slots
    return end - duration, duration, resolution


def latest_reading(series: TimeSeries, now: datetime) -> SensorReading:
    """Return the latest non-null value of a slot that has started by ``now``."""
    for index in range(len(series.values) - 1, -1, -1):
        value = series.values[index]
        event_start = series.start + index * series.resolution
        if value is not None and event_start <= now:
            return SensorReading(value=value, event_start=event_start)
    return NO_DATA


async def async_fetch_readings(
    api: FlexMeasuresApi,
    sensors: Iterable[Sensor],
    now: datetime,
    *,
    limit: int = MAX_CONCURRENT_REQUESTS,
) -> dict[int, SensorReading | FlexMeasuresError]:
    """Fetch each sensor's latest value, at most ``limit`` requests at a time.

    A sensor the server refuses (4xx) or answers oddly for gets its error as
    result; a connection, server (5xx) or authentication error aborts the whole
    refresh at once, so an unreachable server costs one timeout, not one per sensor.
    """
    semaphore = asyncio.Semaphore(limit)

    async def fetch(sensor: Sensor) -> SensorReading | FlexMeasuresError:
        start, duration, resolution = value_window(sensor, now)
        async with semaphore:
            try:
                series = await api.async_get_sensor_data(
                    sensor.id,
                    start=start,
                    duration=duration,
                    resolution=resolution,
                    unit=sensor.unit,
                )
            except (FlexMeasuresRejectedError, FlexMeasuresResponseError) as err:
                return err
            except FlexMeasuresHttpStatusError as err:
                # 4xx: the server is there but will not serve this sensor (404).
                if 400 <= err.status < 500:
                    return err
                raise
        return latest_reading(series, now)

    ids = [sensor.id for sensor in sensors]
    tasks = [asyncio.create_task(fetch(sensor)) for sensor in sensors]
    try:
        results = await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return dict(zip(ids, results, strict=True))


class FlexMeasuresSensorValuesCoordinator(
    DataUpdateCoordinator[dict[int, SensorReading]]
):
    """Polls the latest value of every exposed sensor, just after slot boundaries.

    ``data`` holds a reading per sensor that could be read; a sensor the server
    refused this time is missing, so its entity is unavailable.
    """

    config_entry: FlexMeasuresConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: FlexMeasuresConfigEntry,
        api: FlexMeasuresApi,
        inventory: FlexMeasuresInventoryCoordinator,
    ) -> None:
        """Initialize the coordinator."""
        self.period = scan_interval(entry.options)
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} sensor values",
            update_interval=self.period,
        )
        self.api = api
        self.inventory = inventory
        self._failing: set[int] = set()

    @property
    def exposed(self) -> list[Sensor]:
        """Return the sensors whose values this coordinator polls."""
        return exposed_sensors(self.inventory.data, self.config_entry.options)

    async def _async_update_data(self) -> dict[int, SensorReading]:
        """Fetch the latest value of each exposed sensor."""
        now = dt_util.utcnow()
        self.update_interval = delay_to_next_refresh(now, self.period)
        sensors = {sensor.id: sensor for sensor in self.exposed}
        results = await async_call_for_coordinator(
            lambda: async_fetch_readings(self.api, sensors.values(), now)
        )
        readings: dict[int, SensorReading] = {}
        failing: set[int] = set()
        for sensor_id, result in results.items():
            if isinstance(result, SensorReading):
                readings[sensor_id] = result
                if sensor_id in self._failing:
                    LOGGER.info("FlexMeasures sensor %s can be read again", sensor_id)
                continue
            failing.add(sensor_id)
            if sensor_id not in self._failing:
                LOGGER.warning(
                    "FlexMeasures sensor %s (%s) cannot be read: %s",
                    sensor_id,
                    sensors[sensor_id].name,
                    result,
                )
        self._failing = failing
        return readings
