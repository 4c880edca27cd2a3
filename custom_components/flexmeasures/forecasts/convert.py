"""Turn a source's series into a FlexMeasures sensor's unit and slots.

Prices: currency per energy ("EUR/kWh", "SEK/MWh", "ct/kWh") to the sensor's
currency per energy; another currency is refused. Energy per point ("Wh" per
hour of a solar forecast) becomes mean power over the point, so it can be
spread over or combined into the sensor's slots; power stays power.

Every point is a rate over its interval (a price, a mean power). A sensor slot
gets the time-weighted mean of the rates covering it, and is produced only when
the points cover it whole: 15-minute prices make an hourly sensor's mean, an
hourly price repeats over four 15-minute slots. An energy sensor gets the mean
power times its slot length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
import statistics
from typing import Final

from homeassistant.const import UnitOfEnergy, UnitOfPower
from homeassistant.util import dt as dt_util
from homeassistant.util.unit_conversion import EnergyConverter, PowerConverter

from ..aggregation import normalize_unit
from .model import SourceSeries

# Currency sub-units: a hundredth of the sensor's currency.
SUBUNITS: Final = frozenset({"ct", "c", "cent", "cents", "öre", "øre", "p"})
SUBUNIT_FACTOR: Final = 0.01
ENERGY_UNITS: Final = frozenset(EnergyConverter.VALID_UNITS)
POWER_UNITS: Final = frozenset(PowerConverter.VALID_UNITS)
HOUR: Final = 3600.0


class ConversionError(ValueError):
    """The source's unit cannot become the sensor's; ``reason`` is a translation key."""

    def __init__(self, reason: str) -> None:
        """Remember why."""
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Price:
    """A price unit: currency (None for a bare sub-unit) and energy unit."""

    currency: str | None
    factor: float  # of one unit of the currency
    energy: str


def _price(unit: str) -> _Price | None:
    """Parse "EUR/kWh", "ct/kWh" or "SEK/MWh"; None when not a price."""
    money, _, energy = unit.partition("/")
    money, energy = money.strip(), energy.strip()
    if not money or energy not in ENERGY_UNITS:
        return None
    if money.casefold() in SUBUNITS:
        return _Price(None, SUBUNIT_FACTOR, energy)
    if not money.isalpha():
        return None
    return _Price(money.upper(), 1.0, energy)


def _energy_factor(source: str, target: str) -> float:
    """Return how many ``target`` one ``source`` energy unit is."""
    return EnergyConverter.converter_factory(source, target)(1.0)


def rate_converter(
    source_unit: str | None, target_unit: str
) -> Callable[[float], float]:
    """Return a function from a source value to a rate in the target's quantity.

    For energy per point the result is mean power in W per hour of the point
    (multiply by 3600 / the point's seconds, which ``align`` does); for prices
    and power, the value in the target unit.
    """
    source, target = normalize_unit(source_unit), normalize_unit(target_unit)
    if not source:
        raise ConversionError("unit_unknown")
    source_price, target_price = _price(source), _price(target)
    if source_price or target_price:
        if source_price is None or target_price is None:
            raise ConversionError("unit_mismatch")
        if (
            source_price.currency is not None
            and source_price.currency != target_price.currency
        ):
            raise ConversionError("currency_mismatch")
        # Per source energy unit -> per target energy unit.
        factor = (
            source_price.factor
            / target_price.factor
            / _energy_factor(source_price.energy, target_price.energy)
        )
        return lambda value: value * factor
    if source in POWER_UNITS and target in POWER_UNITS | ENERGY_UNITS:
        to_watt = PowerConverter.converter_factory(source, UnitOfPower.WATT)
        return lambda value: to_watt(value)
    if source in ENERGY_UNITS and target in POWER_UNITS | ENERGY_UNITS:
        to_wh = EnergyConverter.converter_factory(source, UnitOfEnergy.WATT_HOUR)
        return lambda value: to_wh(value)
    raise ConversionError("unit_mismatch")


def _is_energy(unit: str | None) -> bool:
    """Return whether a unit is energy (per point or per slot)."""
    return normalize_unit(unit) in ENERGY_UNITS


def align(
    series: SourceSeries,
    *,
    source_unit: str | None,
    target_unit: str,
    resolution: int,
) -> dict[int, float]:
    """Return the sensor's slots (epoch second of the start -> value) the series covers.

    ``resolution`` is the sensor's in seconds; 0 (an instantaneous sensor) takes
    each point at its start. Raises ConversionError.
    """
    unit = source_unit or series.unit
    convert = rate_converter(unit, target_unit)
    intervals = _intervals(series)
    if not intervals:
        return {}
    source_energy = _is_energy(unit)
    output = _output(target_unit)
    rates: list[tuple[float, float, float]] = []
    for start, end, value in intervals:
        rate = convert(value)
        if source_energy:
            rate = rate * HOUR / (end - start)  # Wh over the point -> mean W
        rates.append((start, end, rate))
    if resolution == 0:
        return {
            int(start): _finish(output(rate, int(end - start)))
            for start, end, rate in rates
        }
    slots: dict[int, float] = {}
    first = int(rates[0][0]) // resolution * resolution
    for slot in range(first, int(rates[-1][1]), resolution):
        mean = _mean(rates, slot, slot + resolution)
        if mean is not None:
            slots[slot] = _finish(output(mean, resolution))
    return slots


def _output(target_unit: str) -> Callable[[float, int], float]:
    """Return how a slot's mean rate becomes the sensor's value.

    Prices are already in the sensor's unit; mean power (W) becomes the
    sensor's power unit, or its energy unit over the slot's seconds.
    """
    target = normalize_unit(target_unit)
    if target in ENERGY_UNITS:
        from_wh = EnergyConverter.converter_factory(UnitOfEnergy.WATT_HOUR, target)
        return lambda mean, seconds: from_wh(mean * seconds / HOUR)
    if target in POWER_UNITS:
        from_watt = PowerConverter.converter_factory(UnitOfPower.WATT, target)
        return lambda mean, _seconds: from_watt(mean)
    return lambda mean, _seconds: mean


def _finish(value: float) -> float:
    """Round away float noise from conversions (and turn -0.0 into 0.0)."""
    return round(value, 9) + 0.0


def _intervals(series: SourceSeries) -> list[tuple[float, float, float]]:
    """Return (start, end, value) per point; a point without end ends at the next.

    The last point without an end lasts as long as the typical point.
    """
    starts = [point.start.timestamp() for point in series.points]
    steps = [b - a for a, b in pairwise(starts) if b > a]
    typical = statistics.median(steps) if steps else None
    intervals = []
    for index, point in enumerate(series.points):
        start = starts[index]
        if point.end is not None:
            end = point.end.timestamp()
        elif index + 1 < len(starts):
            end = starts[index + 1]
        elif typical is not None:
            end = start + typical
        else:
            continue
        if end > start:
            intervals.append((start, end, point.value))
    return intervals


def _mean(
    rates: Sequence[tuple[float, float, float]], start: float, end: float
) -> float | None:
    """Return the time-weighted mean over [start, end), or None unless covered."""
    covered = 0.0
    total = 0.0
    for rate_start, rate_end, rate in rates:
        overlap = min(end, rate_end) - max(start, rate_start)
        if overlap > 0:
            covered += overlap
            total += rate * overlap
    if covered < end - start - 1e-6:
        return None
    return total / covered


def horizon_end(slots: Sequence[int], resolution: int) -> datetime | None:
    """Return when the last slot ends, or None without slots."""
    if not slots:
        return None
    return dt_util.utc_from_timestamp(max(slots) + resolution)
