"""The consumption prices the dashboard card shows over a device's or site's plan."""

from __future__ import annotations

from datetime import datetime, timedelta
import math
from typing import Final, Protocol

from ..api import FlexMeasuresApi, FlexMeasuresError, TimeSeries
from ..const import LOGGER
from ..data import FlexMeasuresConfigEntry
from .model import slot_start

# A price sensor the inventory does not know is read per hour in EUR/MWh.
DEFAULT_PRICE_RESOLUTION: Final = timedelta(hours=1)
DEFAULT_PRICE_UNIT: Final = "EUR/MWh"


class PricedConfig(Protocol):
    """What prices are read for: a device's or a site's configuration."""

    @property
    def name(self) -> str:
        """Return the name the debug log uses."""

    @property
    def consumption_price_sensor(self) -> int | None:
        """Return the consumption price sensor, if any."""


class PricedPlan(Protocol):
    """The plan prices are read over: a device's schedule or a site's slot grid."""

    @property
    def job_id(self) -> str:
        """Return what the prices are cached by."""

    @property
    def start(self) -> datetime:
        """Return the start of the first slot."""

    @property
    def end(self) -> datetime:
        """Return the end of the last slot."""


class PlanPrices:
    """Fetches the consumption prices over a device's or site's plan, once per job."""

    def __init__(
        self,
        entry: FlexMeasuresConfigEntry,
        config: PricedConfig,
        api: FlexMeasuresApi,
    ) -> None:
        """Initialize with nothing fetched."""
        self.entry = entry
        self.config = config
        self.api = api
        # The prices last fetched, by the job they belong to.
        self._cached: tuple[str, TimeSeries] | None = None

    async def async_get(self, schedule: PricedPlan | None) -> TimeSeries | None:
        """Return the consumption prices over the plan's window, or None.

        A failure is logged at debug level and answers None, so the card shows
        the plan without prices; the next call retries.
        """
        sensor_id = self.config.consumption_price_sensor
        if schedule is None or sensor_id is None:
            return None
        if self._cached is not None and self._cached[0] == schedule.job_id:
            return self._cached[1]
        sensor = self.entry.runtime_data.inventory.data.sensors.get(sensor_id)
        resolution = DEFAULT_PRICE_RESOLUTION
        if sensor is not None and sensor.resolution > timedelta(0):
            resolution = sensor.resolution
        start = slot_start(schedule.start, resolution)
        slots = math.ceil((schedule.end - start) / resolution)
        try:
            prices = await self.api.async_get_sensor_data(
                sensor_id,
                start=start,
                duration=resolution * slots,
                resolution=resolution,
                unit=sensor.unit if sensor is not None else DEFAULT_PRICE_UNIT,
            )
        except FlexMeasuresError as err:
            LOGGER.debug("No prices for the schedule of %s: %s", self.config.name, err)
            return None
        self._cached = (schedule.job_id, prices)
        return prices
