"""Tests for shaping schedules into what the dashboard card reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from custom_components.flexmeasures.api import TimeSeries
from custom_components.flexmeasures.card_data import (
    card_prices,
    card_schedule,
    schedule_windows,
)

START = datetime(2026, 11, 20, tzinfo=UTC)


def at(minutes: int) -> str:
    """Return START plus some minutes as ISO 8601."""
    return (START + timedelta(minutes=minutes)).isoformat()


@pytest.mark.parametrize(
    ("values", "windows"),
    [
        ([], []),
        ([None, 0.0, 0.0004], []),
        ([1.0, 2.0], [(0, 30, "charging")]),
        ([-1.0, None, -1.0], [(0, 15, "discharging"), (30, 45, "discharging")]),
        (
            [0.0, 3.0, -3.0, -3.0, 0.0, 1.0],
            [(15, 30, "charging"), (30, 60, "discharging"), (75, 90, "charging")],
        ),
    ],
)
def test_schedule_windows(
    values: list[float | None], windows: list[tuple[int, int, str]]
) -> None:
    """Contiguous slots merge; idle, gaps and a change of direction split.

    The same windows as the calendar: below 1 W a slot is idle.
    """
    assert schedule_windows(START, 900, values) == [
        {"start": at(start), "end": at(end), "kind": kind}
        for start, end, kind in windows
    ]


def test_card_schedule_from_python_values() -> None:
    """Datetimes, timedeltas and ints from the scheduling code become JSON."""
    response: dict[str, Any] = {
        "start": START,
        "resolution": timedelta(hours=1),
        "values": [1, None],
        "soc": [5, 6],
        "soc_unit": "kWh",
        "prices": {"start": START, "resolution": timedelta(hours=1), "values": [7]},
        "status": "failed",
        "reason": "Infeasible targets",
        "updated": START,
        "windows": [{"start": at(0), "end": at(60), "kind": "charging"}],
    }

    assert card_schedule("dev", "Battery", response) == {
        "device_id": "dev",
        "name": "Battery",
        "status": "failed",
        "reason": "Infeasible targets",
        "start": START.isoformat(),
        "end": at(120),
        "resolution": 3600,
        "unit": "kW",
        "values": [1.0, None],
        "soc": [5.0, 6.0],
        "soc_unit": "kWh",
        "prices": {
            "start": START.isoformat(),
            "resolution": 3600,
            "unit": "",
            "values": [7.0],
        },
        "windows": [{"start": at(0), "end": at(60), "kind": "charging"}],
        "updated": START.isoformat(),
    }


def test_card_schedule_of_a_fallback_plan() -> None:
    """A fallback plan keeps its status; the badge's tooltip gives the reason."""
    response = {
        "start": at(0),
        "resolution": 900,
        "values": [1.0],
        "status": "fallback",
        "failure_reason": None,
        "fallback_reason": "Scheduling job failed with str: infeasible.",
    }
    schedule = card_schedule("dev", "Battery", response)
    assert schedule["status"] == "fallback"
    assert schedule["reason"] == "Scheduling job failed with str: infeasible."


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, {"status": "ready", "soc": None, "soc_unit": None, "prices": None}),
        ({"status": "weird"}, {"status": "ready"}),
        ({"status": "computing"}, {"status": "computing"}),
        ({"soc_unit": "%"}, {"soc_unit": None}),
        ({"prices": None}, {"prices": None}),
        ({"updated": None}, {"updated": None}),
    ],
)
def test_card_schedule_defaults(
    extra: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Missing fields get safe defaults; an unknown status reads as ready."""
    response = {"start": at(0), "resolution": 900, "values": [1.0], **extra}
    schedule = card_schedule("dev", "Battery", response)
    assert {key: schedule[key] for key in expected} == expected  # type: ignore[literal-required]
    assert "reason" not in schedule


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        (None, None),
        (
            TimeSeries(start=START, resolution=timedelta(0), unit="EUR/MWh", values=()),
            None,
        ),
        (
            TimeSeries(
                start=START,
                resolution=timedelta(hours=1),
                unit="EUR/MWh",
                values=(81.5, None),
            ),
            {
                "start": START.isoformat(),
                "resolution": 3600,
                "unit": "EUR/MWh",
                "values": [81.5, None],
            },
        ),
    ],
    ids=["no_series", "no_values", "values"],
)
def test_card_prices(
    series: TimeSeries | None, expected: dict[str, Any] | None
) -> None:
    """A price series becomes the card's prices; nothing to draw is None."""
    assert card_prices(series) == expected
