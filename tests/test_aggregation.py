"""Property tests for turning state streams into slot values."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, strategies as st
import pytest

from custom_components.flexmeasures.aggregation import (
    Aggregation,
    IncompatibleUnitsError,
    contiguous_runs,
    create_aggregator,
    normalize_unit,
    parse_number,
    unit_converter,
    units_compatible,
)
from tests.series import aggregate

STEPS = st.sampled_from([60, 300, 900, 3600])
VALUES = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)
# A step function: (seconds the value holds, value or None for a gap).
SEGMENTS = st.lists(
    st.tuples(st.integers(min_value=1, max_value=2000), st.none() | VALUES),
    min_size=1,
    max_size=40,
)
T0 = 1_795_694_400  # 2026-11-26 12:00 UTC, a whole hour


def points(
    segments: list[tuple[int, float | None]], start: int = T0
) -> list[tuple[float, float | None]]:
    """Return (time, value) change points of a step function."""
    result: list[tuple[float, float | None]] = []
    time = start
    for length, value in segments:
        result.append((float(time), value))
        time += length
    return result


def end_of(segments: list[tuple[int, float | None]], start: int = T0) -> float:
    """Return when the last segment ends."""
    return float(start + sum(length for length, _ in segments))


def brute_force_means(
    segments: list[tuple[int, float | None]], step: int, start: int, end: float
) -> dict[int, float]:
    """Integrate second by second-free: overlap of each segment with each slot."""
    integral: dict[int, float] = {}
    covered: dict[int, float] = {}
    time = start
    for length, value in segments:
        seg_end = time + length
        if value is not None:
            slot = time // step * step
            while slot < seg_end:
                overlap = min(seg_end, slot + step) - max(time, slot)
                integral[slot] = integral.get(slot, 0.0) + value * overlap
                covered[slot] = covered.get(slot, 0.0) + overlap
                slot += step
        time = seg_end
    return {
        slot: integral[slot] / covered[slot]
        for slot in covered
        if covered[slot] > 0 and slot + step <= end
    }


@given(segments=SEGMENTS, step=STEPS)
def test_time_weighted_mean_of_a_step_function(
    segments: list[tuple[int, float | None]], step: int
) -> None:
    """Each complete slot holds the mean of the known part of the step function."""
    # The last segment is a gap, so the function ends where the segments end.
    segments = [*segments, (1, None)]
    end = end_of(segments)
    slots = dict(aggregate(Aggregation.MEAN, step, points(segments), end))
    expected = brute_force_means(segments, step, T0, end)
    assert slots.keys() == expected.keys()
    for slot, value in expected.items():
        assert slots[slot] == pytest.approx(value, rel=1e-9, abs=1e-6)


@given(segments=SEGMENTS, step=STEPS)
def test_gaps_are_never_zeros(
    segments: list[tuple[int, float | None]], step: int
) -> None:
    """A slot without any known value is left out, whatever the aggregation."""
    segments = [*segments, (1, None)]
    end = end_of(segments)
    known = brute_force_means(segments, step, T0, end).keys()
    for kind in (Aggregation.MEAN, Aggregation.LAST):
        slots = dict(aggregate(kind, step, points(segments), end))
        assert slots.keys() == known


@given(
    readings=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=2000),
            st.floats(min_value=0, max_value=50),
            st.booleans(),
        ),
        min_size=1,
        max_size=40,
    ),
    step=STEPS,
)
def test_meter_slots_add_up_to_the_consumption(
    readings: list[tuple[int, float, bool]], step: int
) -> None:
    """Per-slot differences add up to what the meter counted, across resets."""
    meter, consumed = 1000.0, 0.0
    series: list[tuple[int, float | None]] = [(1, meter)]
    for length, increase, reset in readings:
        if reset and increase < 0.9 * meter:
            meter = increase  # counted again from zero
        else:
            meter += increase
        consumed += increase
        series.append((length, meter))
    end = end_of(series) + step  # the slot of the last reading is complete
    slots = aggregate(Aggregation.DIFFERENCE, step, points(series), end)
    assert all(value >= 0 for _, value in slots)
    assert sum(value for _, value in slots) == pytest.approx(consumed, abs=1e-6)
    # A meter that is read in every slot sends every slot, zeros included.
    assert len(slots) == (end // step * step - T0 // step * step) // step


def test_meter_small_dip_is_noise_not_a_reset() -> None:
    """A reading slightly below the last one is ignored, not counted as a reset."""
    series = [(0.0, 100.0), (60.0, 99.5), (120.0, 101.0), (180.0, 5.0)]
    slots = aggregate(Aggregation.DIFFERENCE, 300, series, 300.0)
    assert [slot for slot, _ in slots] == [0]
    assert slots[0][1] == pytest.approx(6.0)


def test_last_value() -> None:
    """The last value of each slot; a gap at the end keeps the last number."""
    series = [(0.0, 1.0), (100.0, 2.0), (200.0, None), (400.0, 3.0)]
    assert aggregate(Aggregation.LAST, 300, series, 900.0) == [
        (0, 2.0),
        (300, 3.0),
        (600, 3.0),
    ]


@given(segments=SEGMENTS, step=STEPS, cut=st.integers(min_value=0, max_value=40))
def test_restored_state_continues_exactly(
    segments: list[tuple[int, float | None]], step: int, cut: int
) -> None:
    """Persisting and restoring an aggregator mid-stream changes nothing."""
    series = points([*segments, (1, None)])
    end = end_of([*segments, (1, None)])
    for kind in Aggregation:
        whole = aggregate(kind, step, series, end)
        first = create_aggregator(kind, step)
        slots = [slot for point in series[:cut] for slot in first.update(*point)]
        second = create_aggregator(kind, step, first.as_dict())
        slots += [slot for point in series[cut:] for slot in second.update(*point)]
        slots += second.advance(end)
        assert [slot for slot, _ in slots] == [slot for slot, _ in whole]
        assert [value for _, value in slots] == pytest.approx(
            [value for _, value in whole], rel=1e-9, abs=1e-6
        )


def test_restore_ignores_state_of_another_kind() -> None:
    """State of a different aggregation or resolution is not reused."""
    mean = create_aggregator(Aggregation.MEAN, 300)
    mean.update(0.0, 5.0)
    assert create_aggregator(Aggregation.LAST, 300, mean.as_dict()).slot is None
    assert create_aggregator(Aggregation.MEAN, 900, mean.as_dict()).slot is None


def test_time_going_backwards_is_now() -> None:
    """A change stamped before the last one counts from the last one."""
    mean = create_aggregator(Aggregation.MEAN, 300)
    mean.update(100.0, 1.0)
    mean.update(50.0, 3.0)
    ((slot, value),) = mean.advance(300.0)
    assert slot == 0
    assert value == pytest.approx(3.0)


def test_zero_step_refused() -> None:
    """A slot must have a length."""
    with pytest.raises(ValueError, match="longer than zero"):
        create_aggregator(Aggregation.MEAN, 0)


@given(value=VALUES)
@pytest.mark.parametrize(
    ("source", "target", "factor"),
    [
        ("W", "kW", 1e-3),
        ("kW", "MW", 1e-3),
        ("MW", "W", 1e6),
        ("Wh", "kWh", 1e-3),
        ("kWh", "MWh", 1e-3),
        ("m³", "m3", 1.0),
        ("%", "%", 1.0),
        (None, "", 1.0),
    ],
)
def test_unit_conversion_scales(
    value: float, source: str | None, target: str, factor: float
) -> None:
    """Power, energy and volume convert by their factor, both ways."""
    convert = unit_converter(source, target)
    assert convert(value) == pytest.approx(value * factor, rel=1e-12)
    back = unit_converter(target, source)
    assert back(convert(value)) == pytest.approx(value, rel=1e-9, abs=1e-9)


@given(celsius=st.floats(min_value=-100, max_value=200))
def test_temperature_conversion(celsius: float) -> None:
    """Temperatures convert with their offset (FlexMeasures may write degC)."""
    assert unit_converter("°F", "degC")(celsius * 9 / 5 + 32) == pytest.approx(
        celsius, abs=1e-9
    )


@given(segments=SEGMENTS, step=STEPS)
def test_mean_commutes_with_conversion(
    segments: list[tuple[int, float | None]], step: int
) -> None:
    """Converting then averaging equals averaging then converting."""
    segments = [*segments, (1, None)]
    end = end_of(segments)
    convert = unit_converter("W", "kW")
    in_watts = aggregate(Aggregation.MEAN, step, points(segments), end)
    converted = [
        (length, None if value is None else convert(value))
        for length, value in segments
    ]
    in_kw = aggregate(Aggregation.MEAN, step, points(converted), end)
    assert [slot for slot, _ in in_kw] == [slot for slot, _ in in_watts]
    assert [value for _, value in in_kw] == pytest.approx(
        [convert(value) for _, value in in_watts], rel=1e-9, abs=1e-9
    )


@pytest.mark.parametrize(
    ("source", "target"), [("kW", "kWh"), ("°C", "kW"), ("%", None), ("kW", "")]
)
def test_incompatible_units(source: str, target: str | None) -> None:
    """Different quantities do not convert."""
    assert not units_compatible(source, target)
    with pytest.raises(IncompatibleUnitsError):
        unit_converter(source, target)


def test_normalize_unit() -> None:
    """FlexMeasures spellings map to Home Assistant's."""
    assert normalize_unit(" degC ") == "°C"
    assert normalize_unit(None) == ""


@pytest.mark.parametrize(
    ("state", "expected"),
    [("1.5", 1.5), ("-2", -2.0), ("inf", None), ("nan", None), ("on", None)],
)
def test_parse_number(state: str, expected: float | None) -> None:
    """Only finite numbers are values."""
    assert parse_number(state) == expected


@given(
    slots=st.dictionaries(
        st.integers(min_value=0, max_value=200).map(lambda n: n * 900),
        VALUES,
        max_size=100,
    ),
    max_length=st.integers(min_value=1, max_value=10),
)
def test_contiguous_runs(slots: dict[int, float], max_length: int) -> None:
    """Runs are adjacent, bounded, in order, and together hold every slot once."""
    runs = list(contiguous_runs(slots, 900, max_length))
    flattened = [
        (start + index * 900, value)
        for start, values in runs
        for index, value in enumerate(values)
    ]
    assert flattened == sorted(slots.items())
    assert all(1 <= len(values) <= max_length for _, values in runs)
    for (start, values), (next_start, _) in pairwise(runs):
        assert next_start >= start + len(values) * 900
