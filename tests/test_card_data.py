"""Tests for shaping schedules into what the dashboard card reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.flexmeasures.api import TimeSeries
from custom_components.flexmeasures.card_data import (
    SiteMember,
    card_prices,
    card_schedule,
    schedule_windows,
    site_grid,
    site_view,
)
from custom_components.flexmeasures.const import DOMAIN
from custom_components.flexmeasures.scheduling import Schedule, ScheduleStatus
from custom_components.flexmeasures.scheduling.model import SiteConfig

from .conftest import SITE_SUBENTRY_ID, site_subentry

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


# --- Sites -------------------------------------------------------------------

# The site of tests/conftest.py, read from its subentry as the integration does.
SITE = SiteConfig.from_subentry(
    MockConfigEntry(domain=DOMAIN, subentries_data=[site_subentry()]).subentries[
        SITE_SUBENTRY_ID
    ]
)


def plan(
    job_id: str, values: list[float], minutes: int = 15, offset: int = 0
) -> Schedule:
    """Return a plan of ``values`` in slots of ``minutes``, from START + offset."""
    return Schedule(
        job_id=job_id,
        start=START + timedelta(minutes=offset),
        resolution=timedelta(minutes=minutes),
        values=tuple(values),
        soc_at_start_kwh=0.0,
        soc=tuple(values),
        targets=(),
        computed_at=START,
    )


def member(
    name: str,
    schedule: Schedule | None,
    status: ScheduleStatus = ScheduleStatus.READY,
    updated: datetime | None = None,
    kind: str = "battery",
) -> SiteMember:
    """Return a device of the site."""
    return SiteMember(
        device_id=f"device_{name}",
        name=name,
        kind=kind,
        status=status,
        schedule=schedule,
        updated=updated,
    )


def test_site_view(snapshot: SnapshotAssertion) -> None:
    """Each device's power on a common grid, the sum, peak, capacity and prices.

    The car plans per half hour: on the battery's quarter-hour grid each of
    its slots shows twice; it starts a slot later and the grid spans both.
    """
    members = [
        member(
            "Battery",
            plan("job-b", [5.0, -2.0, 0.0, -3.0]),
            updated=START + timedelta(minutes=1),
        ),
        member(
            "Car",
            plan("job-c", [7.4, 0.0], minutes=30, offset=15),
            updated=START,
            kind="ev_charger",
        ),
        member("Boiler", None, ScheduleStatus.IDLE, kind="heat_pump_buffer"),
    ]
    prices = TimeSeries(
        start=START, resolution=timedelta(hours=1), unit="EUR/MWh", values=(81.5, 90.0)
    )

    view = site_view(
        "site_device", "Home site", SITE, members, prices, status=ScheduleStatus.READY
    )

    assert view["total"] == [5.0, 5.4, 7.4, -3.0, 0.0]
    assert view["peak"] == {"value": 7.4, "start": at(30)}
    assert view["capacity"] == 10.0
    assert view == snapshot


def test_site_view_without_plans() -> None:
    """A site none of whose devices has a plan yet shows its devices, no grid."""
    view = site_view(
        "site_device",
        "Home site",
        SITE,
        [member("Battery", None, ScheduleStatus.IDLE)],
        status=ScheduleStatus.IDLE,
    )
    expected: dict[str, Any] = {
        "device_id": "site_device",
        "name": "Home site",
        "status": "idle",
        "start": None,
        "end": None,
        "resolution": None,
        "unit": "kW",
        "capacity": 10.0,
        "devices": [
            {
                "device_id": "device_Battery",
                "name": "Battery",
                "kind": "battery",
                "status": "idle",
                "values": [],
            }
        ],
        "total": [],
        "peak": None,
        "prices": None,
        "updated": None,
    }
    assert view == expected


def test_site_grid_leaves_out_old_plans() -> None:
    """A plan over before the newest one starts is left off the grid."""
    old = plan("job-old", [1.0], offset=-24 * 60)
    members = [member("Battery", plan("job-new", [2.0, 2.0])), member("Car", old)]

    grid = site_grid(members)
    view = site_view("site", "Home", SITE, members, status=ScheduleStatus.READY)

    assert grid is not None
    assert (grid.job_id, grid.start, grid.slots) == ("job-new", START, 2)
    assert [device["values"] for device in view["devices"]] == [
        [2.0, 2.0],
        [None, None],
    ]


def test_site_peak_is_the_largest_magnitude() -> None:
    """Discharging harder than any charging makes the peak; ties: the first."""
    members = [member("Battery", plan("job", [2.0, -4.0, 4.0]))]
    assert site_view("site", "Home", SITE, members, status=ScheduleStatus.READY)[
        "peak"
    ] == {
        "value": -4.0,
        "start": at(15),
    }
