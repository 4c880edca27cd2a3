"""Slot lists in entity attributes: detected, read, or refused with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from custom_components.flexmeasures.forecasts.shapes import (
    Shape,
    UnreadableShapeError,
    detect_shape,
    read_series,
    slot_lists,
)

START = datetime(2026, 12, 4, 0, 0, tzinfo=UTC)


def _hours(count: int, first: int = 0) -> list[datetime]:
    """Return hourly starts."""
    return [START + timedelta(hours=first + hour) for hour in range(count)]


def test_nord_pool_raw_today_and_tomorrow_are_one_series() -> None:
    """{start, end, value} datetimes; tomorrow's None values are skipped."""
    attributes = {
        "raw_today": [
            {"start": s, "end": s + timedelta(hours=1), "value": 0.1 * i}
            for i, s in enumerate(_hours(2))
        ],
        "raw_tomorrow": [
            {"start": s, "end": s + timedelta(hours=1), "value": None}
            for s in _hours(2, 24)
        ],
        "unit": "kWh",
    }
    assert slot_lists(attributes) == ["raw_today", "raw_tomorrow"]
    shape = detect_shape(attributes, "raw_today")
    assert shape == Shape("start", "end", "value")
    assert Shape.from_text(shape.as_text()) == shape
    series = read_series(attributes, "raw_today", shape, unit="EUR/kWh")
    assert [point.start for point in series.points] == _hours(2)
    assert [point.value for point in series.points] == [0.0, 0.1]
    assert series.points[0].end == START + timedelta(hours=1)
    assert series.unit == "EUR/kWh"


def test_entsoe_time_price_strings() -> None:
    """{time, price} with ISO 8601 text in another time zone, no end."""
    attributes = {
        "prices_today": [
            {"time": "2026-12-04T01:00:00+01:00", "price": 0.25},
            {"time": "2026-12-04T02:00:00+01:00", "price": "0.5"},
        ],
        "prices_tomorrow": [{"time": "2026-12-05T01:00:00+01:00", "price": 0.3}],
    }
    shape = detect_shape(attributes, "prices_today")
    assert shape == Shape("time", None, "price")
    assert Shape.from_text(shape.as_text()) == shape
    series = read_series(attributes, "prices_today", shape, unit=None)
    assert [point.start for point in series.points] == [
        START,
        START + timedelta(hours=1),
        START + timedelta(hours=24),
    ]
    assert [point.value for point in series.points] == [0.25, 0.5, 0.3]
    assert all(point.end is None for point in series.points)


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({"prices": "not a list"}, "not_a_slot_list"),
        ({"prices": []}, "no_slots"),
        ({"prices": [{"value": 1.0}]}, "no_start"),
        ({"prices": [{"start": START, "other": 1.0}]}, "no_value"),
        ({"prices": [{"start": "yesterday", "value": 1.0}]}, "bad_start"),
        ({"prices": [{"start": "2026-12-04T00:00:00", "value": 1.0}]}, "bad_start"),
        ({"prices": [{"start": 1764806400, "value": 1.0}]}, "bad_start"),
        ({"prices": [{"start": START, "value": "cheap"}]}, "bad_value"),
        ({"prices": [{"start": START, "value": True}]}, "bad_value"),
        ({"prices": [{"start": START, "value": float("nan")}]}, "bad_value"),
        ({"prices": [{"start": START, "value": None}]}, "no_slots"),
        (
            {"prices_today": [{"start": START, "value": 1}], "prices_tomorrow": 3},
            "not_a_slot_list",
        ),
    ],
)
def test_unreadable_lists_say_why(attributes: dict[str, Any], reason: str) -> None:
    """Every way a list can be unreadable has its own reason for the flow."""
    attribute = next(iter(attributes))
    with pytest.raises(UnreadableShapeError) as err:
        detect_shape(attributes, attribute)
    assert err.value.reason == reason


def test_only_lists_of_mappings_are_offered() -> None:
    """Text, empty lists and lists of numbers are not slot lists."""
    assert slot_lists(
        {"a": "text", "b": [], "c": [1, 2], "d": [{"start": START}], "e": None}
    ) == ["d"]
