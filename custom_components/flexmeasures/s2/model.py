"""What S2 works with: sensor targets, storage, plan slots, device status."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..scheduling import Schedule

type TaskFactory = Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]]
# Runs a blocking function off the event loop (Home Assistant's executor).
type Executor = Callable[[Callable[[], Any]], Awaitable[Any]]


@dataclass(frozen=True, kw_only=True, slots=True)
class S2SensorTarget:
    """A FlexMeasures sensor that receives what a resource manager reports."""

    id: int
    unit: str
    resolution: timedelta


@dataclass(frozen=True, kw_only=True, slots=True)
class S2CemSettings:
    """Where a CEM posts what it learns, and which power sensor gets scheduled."""

    power: S2SensorTarget | None = None
    fill_level: S2SensorTarget | None = None
    usage_forecast: S2SensorTarget | None = None
    actuator_status: S2SensorTarget | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class S2Storage:
    """What a resource manager told about its storage, for the device's planner.

    Fill levels are in the storage's unit (read as kWh), power in kW, charging
    positive; ``None`` where the resource manager did not say.
    """

    fill_level: float
    fill_level_min: float
    fill_level_max: float
    charge_power_kw: float | None
    discharge_power_kw: float | None


type StorageListener = Callable[[S2Storage], Awaitable[None]]


@dataclass(frozen=True, kw_only=True, slots=True)
class S2PlanSlot:
    """One slot of the device's plan, its power (kW) and starting fill level (kWh).

    Power is positive while charging, as in the plan and in S2 power ranges.
    """

    start: datetime
    end: datetime
    power_kw: float
    fill_level: float


@dataclass(frozen=True, kw_only=True, slots=True)
class S2ResourceManagerInfo:
    """What a resource manager told about itself (its serial number left out)."""

    resource_id: str
    name: str | None
    manufacturer: str | None
    model: str | None
    firmware_version: str | None
    control_types: tuple[str, ...]


@dataclass(kw_only=True)
class S2DeviceStatus:
    """What the entities of one controlled device show."""

    connected: bool = False
    control_type: str | None = None
    last_instruction: datetime | None = None
    connections: int = 0
    rejected_messages: int = 0


class S2CemHandler(Protocol):
    """What the library's CEM hands over of a conversation (see ``api.S2Cem``).

    The messages are s2-python models; each call runs in the CEM's own task.
    """

    async def async_storage_status(self, status: Any) -> None:
        """Take a storage status (FRBC.StorageStatus)."""

    async def async_actuator_status(self, status: Any) -> None:
        """Take an actuator status (FRBC.ActuatorStatus)."""

    async def async_usage_forecast(self, usage_forecast: Any) -> None:
        """Take a usage forecast (FRBC.UsageForecast)."""

    async def async_system_description(self, description: Any) -> None:
        """Take a system description (FRBC.SystemDescription), once acknowledged."""

    async def async_power_measurement(self, measurement: Any) -> None:
        """Take a power measurement (PowerMeasurement) before it is acknowledged."""


def plan_slots(schedule: Schedule) -> list[S2PlanSlot]:
    """Return a plan's slots: start, power (kW) and the SoC (kWh) it starts from."""
    return [
        S2PlanSlot(
            start=schedule.start + schedule.resolution * index,
            end=schedule.start + schedule.resolution * (index + 1),
            power_kw=power,
            fill_level=fill_level,
        )
        for index, (power, fill_level) in enumerate(
            zip(
                schedule.values,
                (schedule.soc_at_start_kwh, *schedule.soc),
                strict=False,
            )
        )
    ]
