"""The plan model: device settings, requests, plans, windows and missed targets.

Each with its stored form and the form an action responds with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
import math
import re
from typing import Any, Final

from homeassistant.config_entries import ConfigSubentry
from homeassistant.const import CONF_NAME, UnitOfEnergy
from homeassistant.util import dt as dt_util

from ..api import TimeSeries, format_duration
from ..const import (
    CONF_ASSET_ID,
    CONF_AUTO_ENTITIES,
    CONF_AUTO_INTERVAL,
    CONF_AUTO_RESCHEDULE,
    CONF_AUTO_SOC_DRIFT,
    CONF_CAPACITY,
    CONF_CHARGE_POWER,
    CONF_CONSUMPTION_PRICE_SENSOR,
    CONF_DISCHARGE_POWER,
    CONF_HORIZON,
    CONF_INFLEXIBLE_SENSORS,
    CONF_KIND,
    CONF_POWER_SENSOR,
    CONF_PRODUCTION_PRICE_SENSOR,
    CONF_REPLAN_ON_PRICES,
    CONF_ROUNDTRIP_EFFICIENCY,
    CONF_SITE_DEVICES,
    CONF_SITE_POWER_CAPACITY,
    CONF_SOC_ENTITY,
    CONF_SOC_MAX,
    CONF_SOC_MIN,
    CONF_SOC_UNIT,
)
from ..util import as_sensor_id, optional_float

DEFAULT_RESOLUTION: Final = timedelta(minutes=15)
MAX_DURATION: Final = timedelta(days=7)
# Below this a planned power counts as "idle" (kW).
POWER_EPSILON: Final = 0.001


# An energy quantity in a job result, such as "4.257 kWh".
_QUANTITY: Final = re.compile(r"\s*([-+]?[\d.]+(?:[eE][-+]?\d+)?)\s*(\w+)\s*")

ENERGY_TO_KWH: Final[dict[str | None, float]] = {
    UnitOfEnergy.WATT_HOUR: 0.001,
    UnitOfEnergy.KILO_WATT_HOUR: 1.0,
    UnitOfEnergy.MEGA_WATT_HOUR: 1000.0,
}


class DeviceKind(StrEnum):
    """What a controlled device is."""

    BATTERY = "battery"
    EV_CHARGER = "ev_charger"
    HEAT_PUMP_BUFFER = "heat_pump_buffer"
    STORAGE = "storage"


class SocUnit(StrEnum):
    """The unit a device's state of charge is given in."""

    PERCENT = "percent"
    KWH = "kwh"

    @property
    def symbol(self) -> str:
        """Return the unit as Home Assistant shows it."""
        return "%" if self is SocUnit.PERCENT else UnitOfEnergy.KILO_WATT_HOUR


class ScheduleStatus(StrEnum):
    """Where a device's schedule stands."""

    IDLE = "idle"
    COMPUTING = "computing"
    READY = "ready"
    # FlexMeasures' fallback plan: its scheduler failed and another one planned.
    FALLBACK = "fallback"
    STALE = "stale"
    FAILED = "failed"


class ScheduleRecovery(StrEnum):
    """How a job in flight at a restart was dealt with."""

    RESUMED = "resumed"
    RECOMPUTED = "recomputed"


class FailureReason(StrEnum):
    """Why the last scheduling round failed (translated as attribute states)."""

    AUTHENTICATION_FAILED = "authentication_failed"
    COMMUNICATION_ERROR = "communication_error"
    # The job failed and FlexMeasures planned with its fallback, which the
    # options say not to use.
    FALLBACK_NOT_USED = "fallback_not_used"
    JOB_FAILED = "job_failed"
    REJECTED = "rejected"
    SOC_UNAVAILABLE = "soc_unavailable"
    TIMEOUT = "timeout"
    UNLOADED = "unloaded"


@dataclass(frozen=True, kw_only=True, slots=True)
class AutoReschedule:
    """When to replan without being asked; everything off by default."""

    interval: timedelta | None = None
    soc_drift: float | None = None
    entities: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        """Return whether any automatic trigger is configured."""
        return bool(self.interval or self.soc_drift or self.entities)


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceConfig:
    """A controlled device as configured in its subentry."""

    name: str
    kind: DeviceKind
    sensor_id: int
    soc_entity_id: str
    soc_unit: SocUnit
    capacity_kwh: float | None
    soc_min: float
    soc_max: float
    charge_power_kw: float
    discharge_power_kw: float
    roundtrip_efficiency: float | None
    consumption_price_sensor: int | None
    production_price_sensor: int | None
    horizon: timedelta
    resolution: timedelta = DEFAULT_RESOLUTION
    auto: AutoReschedule = field(default_factory=AutoReschedule)

    @classmethod
    def from_subentry(
        cls, subentry: ConfigSubentry, resolution: timedelta | None = None
    ) -> DeviceConfig:
        """Read a controlled-device subentry."""
        data = subentry.data
        auto = data.get(CONF_AUTO_RESCHEDULE) or {}
        interval = float(auto.get(CONF_AUTO_INTERVAL) or 0)
        drift = float(auto.get(CONF_AUTO_SOC_DRIFT) or 0)
        efficiency = data.get(CONF_ROUNDTRIP_EFFICIENCY)
        capacity = data.get(CONF_CAPACITY)
        return cls(
            name=data.get(CONF_NAME) or subentry.title,
            kind=DeviceKind(data[CONF_KIND]),
            sensor_id=int(data[CONF_POWER_SENSOR]),
            soc_entity_id=data[CONF_SOC_ENTITY],
            soc_unit=SocUnit(data[CONF_SOC_UNIT]),
            capacity_kwh=float(capacity) if capacity else None,
            soc_min=float(data[CONF_SOC_MIN]),
            soc_max=float(data[CONF_SOC_MAX]),
            charge_power_kw=float(data[CONF_CHARGE_POWER]),
            discharge_power_kw=float(data[CONF_DISCHARGE_POWER]),
            roundtrip_efficiency=float(efficiency) / 100 if efficiency else None,
            consumption_price_sensor=as_sensor_id(
                data.get(CONF_CONSUMPTION_PRICE_SENSOR)
            ),
            production_price_sensor=as_sensor_id(
                data.get(CONF_PRODUCTION_PRICE_SENSOR)
            ),
            horizon=timedelta(hours=float(data[CONF_HORIZON])),
            resolution=resolution or DEFAULT_RESOLUTION,
            auto=AutoReschedule(
                interval=timedelta(minutes=interval) if interval > 0 else None,
                soc_drift=drift if drift > 0 else None,
                entities=tuple(auto.get(CONF_AUTO_ENTITIES) or ()),
            ),
        )

    def to_kwh(self, value: float) -> float:
        """Convert a state of charge in the device's unit to kWh."""
        if self.soc_unit is SocUnit.PERCENT:
            return value / 100 * (self.capacity_kwh or 0.0)
        return value

    def from_kwh(self, value: float) -> float:
        """Convert a state of charge in kWh to the device's unit."""
        if self.soc_unit is SocUnit.PERCENT:
            return value / (self.capacity_kwh or math.inf) * 100
        return value

    @property
    def soc_ceiling(self) -> float | None:
        """Return the physical maximum state of charge in the device's unit."""
        if self.soc_unit is SocUnit.PERCENT:
            return 100.0
        return self.capacity_kwh


def quantity(value: float, unit: str) -> str:
    """Format a FlexMeasures quantity string such as ``"3.5 kWh"``."""
    text = f"{round(value, 4):f}".rstrip("0").rstrip(".")
    return f"{'0' if text in ('', '-0') else text} {unit}"


def slot_start(moment: datetime, resolution: timedelta) -> datetime:
    """Return the start of the slot (UTC-aligned) that covers ``moment``."""
    step = resolution.total_seconds()
    return dt_util.utc_from_timestamp(math.floor(moment.timestamp() / step) * step)


@dataclass(frozen=True, kw_only=True, slots=True)
class SocTarget:
    """A state of charge (kWh) to reach at a moment."""

    at: datetime
    kwh: float


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleRequest:
    """Everything one scheduling job needs, in kWh and kW."""

    start: datetime
    duration: timedelta
    soc_at_start_kwh: float
    soc_min_kwh: float
    soc_max_kwh: float
    targets: tuple[SocTarget, ...] = ()
    charge_power_kw: float
    discharge_power_kw: float
    roundtrip_efficiency: float | None = None
    flex_model: Mapping[str, Any] = field(default_factory=dict)
    flex_context: Mapping[str, Any] = field(default_factory=dict)
    force: bool = False

    @property
    def end(self) -> datetime:
        """Return the end of the planning horizon."""
        return self.start + self.duration

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-safe form for the store."""
        return {
            "start": self.start.isoformat(),
            "duration": self.duration.total_seconds(),
            "soc_at_start": self.soc_at_start_kwh,
            "soc_min": self.soc_min_kwh,
            "soc_max": self.soc_max_kwh,
            "targets": [
                {"at": target.at.isoformat(), "kwh": target.kwh}
                for target in self.targets
            ],
            "charge_power": self.charge_power_kw,
            "discharge_power": self.discharge_power_kw,
            "roundtrip_efficiency": self.roundtrip_efficiency,
            "flex_model": dict(self.flex_model),
            "flex_context": dict(self.flex_context),
            "force": self.force,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScheduleRequest:
        """Rebuild a stored request."""
        return cls(
            start=datetime.fromisoformat(data["start"]),
            duration=timedelta(seconds=float(data["duration"])),
            soc_at_start_kwh=float(data["soc_at_start"]),
            soc_min_kwh=float(data["soc_min"]),
            soc_max_kwh=float(data["soc_max"]),
            targets=_targets_from_store(data.get("targets", ())),
            charge_power_kw=float(data["charge_power"]),
            discharge_power_kw=float(data["discharge_power"]),
            roundtrip_efficiency=optional_float(data.get("roundtrip_efficiency")),
            flex_model=dict(data.get("flex_model") or {}),
            flex_context=dict(data.get("flex_context") or {}),
            force=bool(data.get("force", False)),
        )


def _targets_from_store(items: Sequence[Mapping[str, Any]]) -> tuple[SocTarget, ...]:
    """Rebuild stored SoC targets."""
    return tuple(
        SocTarget(at=datetime.fromisoformat(item["at"]), kwh=float(item["kwh"]))
        for item in items
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class PendingJob:
    """A job queued on the server whose schedule has not been fetched yet."""

    job_id: str
    triggered_at: datetime
    request: ScheduleRequest

    @property
    def end(self) -> datetime:
        """Return the end of the plan the job computes."""
        return self.request.end

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-safe form for the store."""
        return {
            "job_id": self.job_id,
            "triggered_at": self.triggered_at.isoformat(),
            "request": self.request.as_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PendingJob:
        """Rebuild a stored job in flight."""
        return cls(
            job_id=str(data["job_id"]),
            triggered_at=datetime.fromisoformat(data["triggered_at"]),
            request=ScheduleRequest.from_dict(data["request"]),
        )


def simulate_soc(
    soc_at_start_kwh: float,
    values_kw: Sequence[float],
    resolution: timedelta,
    roundtrip_efficiency: float | None = None,
) -> list[float]:
    """Return the state of charge (kWh) at the end of each slot of a power plan.

    Charging is positive. Roundtrip losses are split evenly over charging and
    discharging, as FlexMeasures does.
    """
    one_way = math.sqrt(roundtrip_efficiency) if roundtrip_efficiency else 1.0
    hours = resolution.total_seconds() / 3600
    soc = soc_at_start_kwh
    result: list[float] = []
    for power in values_kw:
        energy = power * hours
        soc += energy * one_way if energy > 0 else energy / one_way
        result.append(soc)
    return result


class WindowKind(StrEnum):
    """Whether a window charges or discharges."""

    CHARGING = "charging"
    DISCHARGING = "discharging"


@dataclass(frozen=True, kw_only=True, slots=True)
class Window:
    """Contiguous slots with the same direction, merged."""

    kind: WindowKind
    start: datetime
    end: datetime
    energy_kwh: float
    peak_kw: float


def _direction(power: float | None) -> WindowKind | None:
    """Return the direction of a planned power, None when idle."""
    if power is None or abs(power) < POWER_EPSILON:
        return None
    return WindowKind.CHARGING if power > 0 else WindowKind.DISCHARGING


def merge_windows(
    start: datetime, resolution: timedelta, values_kw: Sequence[float | None]
) -> list[Window]:
    """Merge contiguous charging (or discharging) slots into windows."""
    hours = resolution.total_seconds() / 3600
    windows: list[Window] = []
    current: WindowKind | None = None
    first = 0
    for index in range(len(values_kw) + 1):
        kind = _direction(values_kw[index]) if index < len(values_kw) else None
        if kind is current:
            continue
        if current is not None:
            chunk = [abs(value or 0.0) for value in values_kw[first:index]]
            windows.append(
                Window(
                    kind=current,
                    start=start + resolution * first,
                    end=start + resolution * index,
                    energy_kwh=sum(chunk) * hours,
                    peak_kw=max(chunk),
                )
            )
        current, first = kind, index
    return windows


@dataclass(frozen=True, kw_only=True, slots=True)
class UnmetTarget:
    """A state-of-charge target the plan misses, as the finished job reported it.

    FlexMeasures 1.0 treats targets as soft: the plan comes as close as it can and
    the job result lists each target it misses with the deviation (kWh, either
    direction). ``target_kwh`` is the requested value, None for a target that
    only a raw flex-model override named.
    """

    at: datetime
    target_kwh: float | None
    deviation_kwh: float

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-safe form for the store."""
        return {
            "at": self.at.isoformat(),
            "target": self.target_kwh,
            "deviation": self.deviation_kwh,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UnmetTarget:
        """Rebuild a stored unmet target."""
        return cls(
            at=datetime.fromisoformat(data["at"]),
            target_kwh=optional_float(data.get("target")),
            deviation_kwh=float(data["deviation"]),
        )


def _energy_kwh(value: Any) -> float | None:
    """Return an energy quantity such as ``"4.257 kWh"`` in kWh, None if unreadable."""
    match = _QUANTITY.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    factor = ENERGY_TO_KWH.get(match[2])
    return None if factor is None else float(match[1]) * factor


def unmet_targets(
    result: Any, targets: Sequence[SocTarget], asset_id: int | None = None
) -> tuple[UnmetTarget, ...]:
    """Read the targets a finished job could not meet from its ``result``.

    The result lists, per asset of the flex-model (``"asset": id``), the
    ``soc-targets`` it misses as ``{"datetime", "violation": "<x> kWh"}``. A
    site's job plans several devices: with ``asset_id`` only that device's
    asset counts. Anything unreadable is left out: the plan itself is still good.
    """
    unresolved = result.get("unresolved") if isinstance(result, Mapping) else None
    requested = {target.at: target.kwh for target in targets}
    found: list[UnmetTarget] = []
    for entry in unresolved if isinstance(unresolved, list) else ():
        if (
            asset_id is not None
            and isinstance(entry, Mapping)
            and entry.get("asset") not in (None, asset_id)
        ):
            continue
        items = entry.get("soc-targets") if isinstance(entry, Mapping) else None
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, Mapping):
                continue
            deviation = _energy_kwh(item.get("violation"))
            try:
                at = dt_util.as_utc(datetime.fromisoformat(str(item.get("datetime"))))
            except ValueError:
                continue
            if deviation is None:
                continue
            found.append(
                UnmetTarget(
                    at=at, target_kwh=requested.get(at), deviation_kwh=abs(deviation)
                )
            )
    return tuple(sorted(found, key=lambda target: target.at))


@dataclass(frozen=True, kw_only=True, slots=True)
class Schedule:
    """A computed power plan (kW, charging positive) and the SoC it leads to."""

    job_id: str
    start: datetime
    resolution: timedelta
    values: tuple[float, ...]
    soc_at_start_kwh: float
    soc: tuple[float, ...]
    targets: tuple[SocTarget, ...]
    computed_at: datetime
    # Set when this is FlexMeasures' fallback plan: why its scheduler failed.
    fallback_reason: str | None = None
    unmet_targets: tuple[UnmetTarget, ...] = ()

    @property
    def end(self) -> datetime:
        """Return the end of the last slot."""
        return self.start + self.resolution * len(self.values)

    def status_at(self, moment: datetime) -> ScheduleStatus:
        """Return the status this plan gives its device at ``moment``."""
        if moment >= self.end:
            return ScheduleStatus.STALE
        if self.fallback_reason is not None:
            return ScheduleStatus.FALLBACK
        return ScheduleStatus.READY

    def index_at(self, moment: datetime) -> int | None:
        """Return the slot index covering ``moment``, or None outside the plan."""
        if not self.values or moment < self.start or moment >= self.end:
            return None
        return int((moment - self.start) / self.resolution)

    def power_at(self, moment: datetime) -> float | None:
        """Return the planned power at ``moment``."""
        index = self.index_at(moment)
        return None if index is None else self.values[index]

    def soc_at(self, moment: datetime) -> float | None:
        """Return the planned SoC (kWh) at ``moment``, interpolated within a slot."""
        index = self.index_at(moment)
        if index is None:
            return self.soc[-1] if self.soc and moment == self.end else None
        before = self.soc[index - 1] if index else self.soc_at_start_kwh
        fraction = (moment - self.start - self.resolution * index) / self.resolution
        return before + (self.soc[index] - before) * fraction

    def next_boundary(self, moment: datetime) -> datetime | None:
        """Return the next slot boundary after ``moment`` within the plan."""
        if moment < self.start:
            return self.start
        index = self.index_at(moment)
        return None if index is None else self.start + self.resolution * (index + 1)

    @property
    def windows(self) -> list[Window]:
        """Return the merged charging and discharging windows."""
        return merge_windows(self.start, self.resolution, self.values)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-safe form for the store."""
        return {
            "job_id": self.job_id,
            "start": self.start.isoformat(),
            "resolution": self.resolution.total_seconds(),
            "values": list(self.values),
            "soc_at_start": self.soc_at_start_kwh,
            "soc": list(self.soc),
            "targets": [
                {"at": target.at.isoformat(), "kwh": target.kwh}
                for target in self.targets
            ],
            "computed_at": self.computed_at.isoformat(),
            "fallback_reason": self.fallback_reason,
            "unmet_targets": [target.as_dict() for target in self.unmet_targets],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schedule:
        """Rebuild a stored schedule."""
        return cls(
            job_id=str(data["job_id"]),
            start=datetime.fromisoformat(data["start"]),
            resolution=timedelta(seconds=float(data["resolution"])),
            values=tuple(float(value) for value in data["values"]),
            soc_at_start_kwh=float(data["soc_at_start"]),
            soc=tuple(float(value) for value in data["soc"]),
            targets=_targets_from_store(data.get("targets", ())),
            computed_at=datetime.fromisoformat(data["computed_at"]),
            # Absent from stores written before fallback plans were told apart.
            fallback_reason=data.get("fallback_reason"),
            unmet_targets=tuple(
                UnmetTarget.from_dict(item) for item in data.get("unmet_targets", ())
            ),
        )


def schedule_from_series(
    job_id: str,
    series: TimeSeries,
    request: ScheduleRequest,
    computed_at: datetime,
    *,
    fallback_reason: str | None = None,
    unmet: tuple[UnmetTarget, ...] = (),
) -> Schedule:
    """Turn the server's power series into a schedule with simulated SoC."""
    values = tuple(value or 0.0 for value in series.values)
    resolution = series.resolution or DEFAULT_RESOLUTION
    return Schedule(
        job_id=job_id,
        start=dt_util.as_utc(series.start),
        resolution=resolution,
        values=values,
        soc_at_start_kwh=request.soc_at_start_kwh,
        soc=tuple(
            simulate_soc(
                request.soc_at_start_kwh,
                values,
                resolution,
                request.roundtrip_efficiency,
            )
        ),
        targets=request.targets,
        computed_at=computed_at,
        fallback_reason=fallback_reason,
        unmet_targets=unmet,
    )


def unmet_target_attributes(
    schedule: Schedule, config: DeviceConfig
) -> list[dict[str, Any]]:
    """Return the targets a plan misses, in the device's unit, JSON-safe."""
    return [
        {
            "datetime": target.at.isoformat(),
            "target": None
            if target.target_kwh is None
            else round(config.from_kwh(target.target_kwh), 2),
            "deviation": round(config.from_kwh(target.deviation_kwh), 2),
        }
        for target in schedule.unmet_targets
    ]


def schedule_response(schedule: Schedule, config: DeviceConfig) -> dict[str, Any]:
    """Return a schedule as a JSON-safe action response."""
    return {
        "job_id": schedule.job_id,
        "start": schedule.start.isoformat(),
        "end": schedule.end.isoformat(),
        "resolution": format_duration(schedule.resolution),
        "unit": "kW",
        "values": [round(value, 4) for value in schedule.values],
        "soc_unit": config.soc_unit.symbol,
        "soc_at_start": round(config.from_kwh(schedule.soc_at_start_kwh), 4),
        "soc": [round(config.from_kwh(value), 4) for value in schedule.soc],
        "computed_at": schedule.computed_at.isoformat(),
        "fallback_reason": schedule.fallback_reason,
        "unmet_targets": unmet_target_attributes(schedule, config),
    }


def schedule_summary(schedule: Schedule, config: DeviceConfig) -> dict[str, Any]:
    """Return the figures the schedule-updated event carries."""
    windows = schedule.windows
    charging = [w for w in windows if w.kind is WindowKind.CHARGING]
    discharging = [w for w in windows if w.kind is WindowKind.DISCHARGING]
    return {
        "charging_kwh": round(sum(w.energy_kwh for w in charging), 3),
        "discharging_kwh": round(sum(w.energy_kwh for w in discharging), 3),
        "charging_windows": len(charging),
        "discharging_windows": len(discharging),
        "first_charging_start": charging[0].start.isoformat() if charging else None,
        "soc_at_end": round(config.from_kwh(schedule.soc[-1]), 2)
        if schedule.soc
        else None,
        "soc_unit": config.soc_unit.symbol,
    }


@dataclass(frozen=True, kw_only=True)
class SiteConfig:
    """A site as configured in its subentry: devices planned together (issue 16).

    ``asset_id`` is the FlexMeasures parent asset the job is triggered on;
    ``device_subentry_ids`` are the controlled-device subentries it plans.
    """

    name: str
    asset_id: int
    device_subentry_ids: tuple[str, ...]
    site_power_capacity_kva: float | None
    consumption_price_sensor: int | None
    production_price_sensor: int | None
    inflexible_sensors: tuple[int, ...] = ()
    replan_on_prices: bool = False

    @classmethod
    def from_subentry(cls, subentry: ConfigSubentry) -> SiteConfig:
        """Read a site subentry."""
        data = subentry.data
        capacity = optional_float(data.get(CONF_SITE_POWER_CAPACITY))
        return cls(
            name=data.get(CONF_NAME) or subentry.title,
            asset_id=int(data[CONF_ASSET_ID]),
            device_subentry_ids=tuple(data.get(CONF_SITE_DEVICES) or ()),
            site_power_capacity_kva=capacity if capacity else None,
            consumption_price_sensor=as_sensor_id(
                data.get(CONF_CONSUMPTION_PRICE_SENSOR)
            ),
            production_price_sensor=as_sensor_id(
                data.get(CONF_PRODUCTION_PRICE_SENSOR)
            ),
            inflexible_sensors=tuple(
                int(sensor_id) for sensor_id in data.get(CONF_INFLEXIBLE_SENSORS) or ()
            ),
            replan_on_prices=bool(data.get(CONF_REPLAN_ON_PRICES, False)),
        )

    @property
    def price_sensors(self) -> frozenset[int]:
        """Return the site's price sensors (new prices there may mean a replan)."""
        return frozenset(
            sensor_id
            for sensor_id in (
                self.consumption_price_sensor,
                self.production_price_sensor,
            )
            if sensor_id is not None
        )

    def flex_context(self) -> dict[str, Any]:
        """Return the flex-context the devices share: prices, grid, inflexibles."""
        context: dict[str, Any] = {}
        if self.consumption_price_sensor is not None:
            context["consumption-price"] = {"sensor": self.consumption_price_sensor}
        if self.production_price_sensor is not None:
            context["production-price"] = {"sensor": self.production_price_sensor}
        if self.site_power_capacity_kva is not None:
            context["site-power-capacity"] = quantity(
                self.site_power_capacity_kva, "kVA"
            )
        if self.inflexible_sensors:
            context["inflexible-device-sensors"] = list(self.inflexible_sensors)
        return context


@dataclass(frozen=True, kw_only=True, slots=True)
class SitePendingJob:
    """A site's asset-level job queued on the server, with each device's request."""

    job_id: str
    triggered_at: datetime
    requests: Mapping[str, ScheduleRequest]

    @property
    def end(self) -> datetime:
        """Return the end of the latest device plan the job computes."""
        return max(request.end for request in self.requests.values())

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-safe form for the store."""
        return {
            "job_id": self.job_id,
            "triggered_at": self.triggered_at.isoformat(),
            "requests": {
                subentry_id: request.as_dict()
                for subentry_id, request in self.requests.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SitePendingJob:
        """Rebuild a stored site job in flight."""
        return cls(
            job_id=str(data["job_id"]),
            triggered_at=datetime.fromisoformat(data["triggered_at"]),
            requests={
                str(subentry_id): ScheduleRequest.from_dict(request)
                for subentry_id, request in dict(data["requests"]).items()
            },
        )
