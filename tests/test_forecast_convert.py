"""Conversion of a source's series to a sensor's unit and slots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from custom_components.flexmeasures.forecasts.convert import (
    ConversionError,
    align,
    horizon_end,
    rate_converter,
)
from custom_components.flexmeasures.forecasts.model import SourcePoint, SourceSeries

START = datetime(2026, 12, 4, 0, 0, tzinfo=UTC)
T0 = int(START.timestamp())


def _series(
    step: timedelta, values: list[float], unit: str | None, *, ends: bool = False
) -> SourceSeries:
    """Return a series of equal points."""
    return SourceSeries(
        points=tuple(
            SourcePoint(
                START + index * step,
                START + (index + 1) * step if ends else None,
                value,
            )
            for index, value in enumerate(values)
        ),
        unit=unit,
    )


@pytest.mark.parametrize(
    ("source", "target", "value", "expected"),
    [
        ("EUR/kWh", "EUR/MWh", 0.25, 250.0),
        ("EUR/MWh", "EUR/kWh", 250.0, 0.25),
        ("ct/kWh", "EUR/MWh", 25.0, 250.0),
        ("SEK/kWh", "SEK/MWh", 1.5, 1500.0),
        ("eur/kWh", "EUR/MWh", 0.1, 100.0),
        ("kW", "kW", 2.0, 2000.0),
        ("Wh", "kW", 500.0, 500.0),
    ],
)
def test_rate_converter(
    source: str, target: str, value: float, expected: float
) -> None:
    """Prices convert per energy unit and sub-unit; power and energy go to W / Wh."""
    assert rate_converter(source, target)(value) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("source", "target", "reason"),
    [
        (None, "EUR/MWh", "unit_unknown"),
        ("SEK/kWh", "EUR/MWh", "currency_mismatch"),
        ("EUR/kWh", "kW", "unit_mismatch"),
        ("kW", "EUR/MWh", "unit_mismatch"),
        ("°C", "kW", "unit_mismatch"),
        ("1€/kWh", "EUR/MWh", "unit_mismatch"),
    ],
)
def test_refused_conversions(source: str | None, target: str, reason: str) -> None:
    """Another currency, quantity or no unit at all is refused with a reason."""
    with pytest.raises(ConversionError) as err:
        rate_converter(source, target)
    assert err.value.reason == reason


def test_quarter_hour_prices_to_an_hourly_sensor_are_averaged() -> None:
    """Four 15-minute prices make one hourly mean; an incomplete hour is left out."""
    series = _series(timedelta(minutes=15), [0.1, 0.2, 0.3, 0.4, 0.5], "EUR/kWh")
    assert align(series, source_unit=None, target_unit="EUR/MWh", resolution=3600) == {
        T0: 250.0
    }


def test_hourly_prices_repeat_over_quarter_hours() -> None:
    """An hourly price fills its four 15-minute slots; the user's unit wins."""
    series = _series(timedelta(hours=1), [10.0, 20.0], "EUR/kWh")
    slots = align(series, source_unit="ct/kWh", target_unit="EUR/MWh", resolution=900)
    assert slots == {T0 + 900 * index: 100.0 for index in range(4)} | {
        T0 + 3600 + 900 * index: 200.0 for index in range(4)
    }


def test_solar_wh_per_hour_to_kw_per_quarter_hour() -> None:
    """Wh over an hour (with ends) is the mean power of each 15-minute slot."""
    series = _series(timedelta(hours=1), [500.0, 2000.0], "Wh", ends=True)
    slots = align(series, source_unit=None, target_unit="kW", resolution=900)
    assert slots[T0] == 0.5
    assert slots[T0 + 3600] == 2.0
    assert len(slots) == 8


def test_power_to_energy_per_slot_and_instants() -> None:
    """Mean power becomes energy per slot; an instantaneous sensor takes points."""
    series = _series(timedelta(hours=1), [2.0, 4.0], "kW")
    assert align(series, source_unit=None, target_unit="kWh", resolution=1800) == {
        T0: 1.0,
        T0 + 1800: 1.0,
        T0 + 3600: 2.0,
        T0 + 5400: 2.0,
    }
    assert align(series, source_unit=None, target_unit="kW", resolution=0) == {
        T0: 2.0,
        T0 + 3600: 4.0,
    }


def test_a_lone_point_without_end_has_no_length() -> None:
    """One point and no end: nothing can be said about any slot."""
    series = _series(timedelta(hours=1), [1.0], "EUR/MWh")
    assert align(series, source_unit=None, target_unit="EUR/MWh", resolution=3600) == {}
    assert horizon_end([], 3600) is None
    assert horizon_end([T0, T0 + 3600], 3600) == START + timedelta(hours=2)
