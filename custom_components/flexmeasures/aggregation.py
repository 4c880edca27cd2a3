"""Turn a stream of Home Assistant states into FlexMeasures slot values.

Pure code, free of Home Assistant plumbing, so it can be property-tested: times are
epoch seconds (floats), a value of ``None`` is a gap (unknown, unavailable or not a
number), and a slot is identified by the epoch second it starts at.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from enum import StrEnum
import math
from typing import Any, Final

from homeassistant.util.unit_conversion import (
    BaseUnitConverter,
    DistanceConverter,
    ElectricCurrentConverter,
    ElectricPotentialConverter,
    EnergyConverter,
    MassConverter,
    PowerConverter,
    PressureConverter,
    SpeedConverter,
    TemperatureConverter,
    UnitlessRatioConverter,
    VolumeConverter,
    VolumeFlowRateConverter,
)

# A reading below 90% of the previous one is a meter reset; a smaller dip is noise.
# This is the rule Home Assistant's long-term statistics use for total_increasing.
METER_RESET_RATIO: Final = 0.9

# Units FlexMeasures commonly writes differently from Home Assistant.
FLEXMEASURES_UNIT_ALIASES: Final[Mapping[str, str]] = {
    "degC": "°C",
    "C": "°C",
    "degF": "°F",
    "m3": "m³",
    "m3/h": "m³/h",
}

CONVERTERS: Final[tuple[type[BaseUnitConverter], ...]] = (
    PowerConverter,
    EnergyConverter,
    TemperatureConverter,
    UnitlessRatioConverter,
    VolumeConverter,
    VolumeFlowRateConverter,
    ElectricCurrentConverter,
    ElectricPotentialConverter,
    PressureConverter,
    SpeedConverter,
    DistanceConverter,
    MassConverter,
)

type Slot = tuple[int, float]


class Aggregation(StrEnum):
    """How state changes within a slot become the slot's value."""

    MEAN = "mean"
    DIFFERENCE = "difference"
    LAST = "last"


class IncompatibleUnitsError(ValueError):
    """The two units measure different quantities."""


def normalize_unit(unit: str | None) -> str:
    """Return a unit the way Home Assistant spells it (empty for none)."""
    text = (unit or "").strip()
    return FLEXMEASURES_UNIT_ALIASES.get(text, text)


def unit_converter(
    from_unit: str | None, to_unit: str | None
) -> Callable[[float], float]:
    """Return a function converting values from one unit to the other."""
    source, target = normalize_unit(from_unit), normalize_unit(to_unit)
    if source == target:
        return _identity
    if source and target:
        for converter in CONVERTERS:
            if source in converter.VALID_UNITS and target in converter.VALID_UNITS:
                return converter.converter_factory(source, target)
    raise IncompatibleUnitsError(f"Cannot convert {from_unit!r} to {to_unit!r}")


def units_compatible(from_unit: str | None, to_unit: str | None) -> bool:
    """Return whether values in one unit can be converted to the other."""
    try:
        unit_converter(from_unit, to_unit)
    except IncompatibleUnitsError:
        return False
    return True


def _identity(value: float) -> float:
    """Return the value unchanged."""
    return value


def parse_number(state: str) -> float | None:
    """Return the state as a finite number, or None for a gap."""
    try:
        value = float(state)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class Aggregator:
    """Base class: feeds (time, value) pairs, emits completed slots in order.

    ``step`` is the slot length in seconds. ``update`` and ``advance`` return the
    slots that ended at or before the given time, oldest first; only complete slots
    are ever returned. Times that go backwards are treated as "now".
    """

    kind: Aggregation

    def __init__(self, step: int) -> None:
        """Start with nothing known."""
        if step <= 0:
            raise ValueError("A slot must last longer than zero seconds")
        self.step = step
        self.slot: int | None = None  # start of the open slot
        self.last_time: float | None = None
        self.value: float | None = None  # the value holding since last_time

    def update(self, time: float, value: float | None) -> list[Slot]:
        """Record that the value changed at ``time``; return completed slots."""
        slots = self.advance(time)
        self._set(value)
        return slots

    def advance(self, time: float) -> list[Slot]:
        """Let the current value hold until ``time``; return completed slots."""
        if self.slot is None or self.last_time is None:
            self.slot = int(time // self.step) * self.step
            self.last_time = time
            return []
        time = max(time, self.last_time)
        slots: list[Slot] = []
        while time >= self.slot + self.step:
            end = self.slot + self.step
            self._hold(end)
            result = self._close()
            if result is not None:
                slots.append((self.slot, result))
            self.slot = end
            self.last_time = end
            if self.value is None and time >= self.slot + self.step:
                # Nothing is known until ``time``: skip the empty slots at once.
                self.slot = int(time // self.step) * self.step
                self.last_time = time
                self._reset()
        self._hold(time)
        self.last_time = time
        return slots

    def _hold(self, until: float) -> None:
        """Account for the current value holding from last_time until ``until``."""

    def _set(self, value: float | None) -> None:
        """Take a new value."""
        self.value = value

    def _close(self) -> float | None:
        """Return the open slot's value (None: nothing known) and start afresh."""
        raise NotImplementedError

    def _reset(self) -> None:
        """Forget what the open slot accumulated."""

    def as_dict(self) -> dict[str, Any]:
        """Return the state to persist."""
        return {
            "kind": self.kind.value,
            "step": self.step,
            "slot": self.slot,
            "last_time": self.last_time,
            "value": self.value,
        }

    def _restore(self, data: Mapping[str, Any]) -> None:
        """Take back persisted state."""
        self.slot = data.get("slot")
        self.last_time = data.get("last_time")
        self.value = data.get("value")


class TimeWeightedMean(Aggregator):
    """The mean of a step function over the part of the slot where it was known."""

    kind = Aggregation.MEAN

    def __init__(self, step: int) -> None:
        """Start with nothing known."""
        super().__init__(step)
        self.integral = 0.0
        self.covered = 0.0

    def _hold(self, until: float) -> None:
        """Integrate the current value over the time that passed."""
        if self.value is not None and self.last_time is not None:
            span = until - self.last_time
            self.integral += self.value * span
            self.covered += span

    def _close(self) -> float | None:
        """Return the mean over the covered part of the slot."""
        result = self.integral / self.covered if self.covered > 0 else None
        self._reset()
        return result

    def _reset(self) -> None:
        """Forget the accumulated integral."""
        self.integral = 0.0
        self.covered = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the state to persist."""
        return {**super().as_dict(), "integral": self.integral, "covered": self.covered}

    def _restore(self, data: Mapping[str, Any]) -> None:
        """Take back persisted state."""
        super()._restore(data)
        self.integral = float(data.get("integral", 0.0))
        self.covered = float(data.get("covered", 0.0))


class MeterDifference(Aggregator):
    """The increase of a cumulative meter within each slot, across meter resets.

    An increase is counted in the slot in which the meter reading showed it, so the
    slot values always add up to the meter's total increase, gaps included.
    """

    kind = Aggregation.DIFFERENCE

    def __init__(self, step: int) -> None:
        """Start with nothing known."""
        super().__init__(step)
        self.baseline: float | None = None
        self.increase = 0.0
        self.observed = False

    def _set(self, value: float | None) -> None:
        """Count the increase since the previous reading."""
        self.value = value
        if value is None:
            if self.last_time == self.slot and not self.increase:
                # Known only at the very instant the slot began: not observed.
                self.observed = False
            return
        self.observed = True
        if self.baseline is None:
            self.baseline = value
        elif value >= self.baseline:
            self.increase += value - self.baseline
            self.baseline = value
        elif value < METER_RESET_RATIO * self.baseline:
            # The meter started again from zero.
            self.increase += max(value, 0.0)
            self.baseline = value

    def _close(self) -> float | None:
        """Return the slot's increase if the meter was read in or before it."""
        result = self.increase if self.observed else None
        self.increase = 0.0
        self.observed = self.value is not None
        return result

    def _reset(self) -> None:
        """Forget the slot's increase."""
        self.increase = 0.0
        self.observed = False

    def as_dict(self) -> dict[str, Any]:
        """Return the state to persist."""
        return {
            **super().as_dict(),
            "baseline": self.baseline,
            "increase": self.increase,
            "observed": self.observed,
        }

    def _restore(self, data: Mapping[str, Any]) -> None:
        """Take back persisted state."""
        super()._restore(data)
        self.baseline = data.get("baseline")
        self.increase = float(data.get("increase", 0.0))
        self.observed = bool(data.get("observed", False))


class LastValue(Aggregator):
    """The last value known in each slot."""

    kind = Aggregation.LAST

    def __init__(self, step: int) -> None:
        """Start with nothing known."""
        super().__init__(step)
        self.last: float | None = None

    def _set(self, value: float | None) -> None:
        """Remember the latest number."""
        self.value = value
        if value is not None:
            self.last = value
        elif self.last_time == self.slot:
            # Known only at the very instant the slot began: nothing to report.
            self.last = None

    def _close(self) -> float | None:
        """Return the last number of the slot."""
        result = self.last
        self.last = self.value
        return result

    def _reset(self) -> None:
        """Forget the slot's last number."""
        self.last = None

    def as_dict(self) -> dict[str, Any]:
        """Return the state to persist."""
        return {**super().as_dict(), "last": self.last}

    def _restore(self, data: Mapping[str, Any]) -> None:
        """Take back persisted state."""
        super()._restore(data)
        self.last = data.get("last")


AGGREGATORS: Final[Mapping[Aggregation, type[Aggregator]]] = {
    Aggregation.MEAN: TimeWeightedMean,
    Aggregation.DIFFERENCE: MeterDifference,
    Aggregation.LAST: LastValue,
}


def create_aggregator(
    kind: Aggregation, step: int, state: Mapping[str, Any] | None = None
) -> Aggregator:
    """Return an aggregator, continuing from persisted state if it matches."""
    aggregator = AGGREGATORS[kind](step)
    if state and state.get("kind") == kind.value and state.get("step") == step:
        aggregator._restore(state)  # noqa: SLF001
    return aggregator


def contiguous_runs(
    slots: Mapping[int, float], step: int, max_length: int
) -> Iterator[tuple[int, list[float]]]:
    """Yield ``(start, values)`` for runs of adjacent slots, oldest first."""
    start: int | None = None
    values: list[float] = []
    for slot in sorted(slots):
        if start is not None and (
            slot != start + len(values) * step or len(values) >= max_length
        ):
            yield start, values
            start, values = None, []
        if start is None:
            start = slot
        values.append(slots[slot])
    if start is not None:
        yield start, values
