"""Tests for scheduling: flex-model, conversions, polling, storage, replanning."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from http import HTTPStatus
from itertools import islice, pairwise, takewhile
import logging
from typing import Any
from unittest.mock import patch

from aiohttp import ClientConnectionError
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigSubentryDataWithId
from homeassistant.const import (
    EVENT_HOMEASSISTANT_FINAL_WRITE,
    EVENT_HOMEASSISTANT_STARTED,
)
from homeassistant.core import CoreState, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.flexmeasures.const import DOMAIN, EVENT_SCHEDULE_UPDATED
from custom_components.flexmeasures.scheduling import (
    AUTO_MIN_INTERVAL,
    POLL_FINE_MAX,
    POLL_FINE_MIN,
    POLL_FIRST,
    POLL_MAX,
    RETRY_FIRST,
    RETRY_MAX,
    AutoReschedule,
    DeviceConfig,
    DeviceKind,
    DeviceScheduler,
    FailureReason,
    PendingJob,
    Schedule,
    ScheduleRecovery,
    ScheduleRequest,
    ScheduleStatus,
    ScheduleStore,
    SocTarget,
    SocUnit,
    WindowKind,
    build_flex_context,
    build_flex_model,
    merge_windows,
    poll_delays,
    quantity,
    read_soc_kwh,
    simulate_soc,
    slot_start,
)
from custom_components.flexmeasures.scheduling.jobs import (
    POLL_GROWTH,
    POLL_WINDOW_MIN,
    POLL_WINDOW_POLLS,
    POLL_WINDOW_SPREADS,
)

from .conftest import (
    BATTERY_DATA,
    BATTERY_SENSOR_ID,
    BATTERY_SUBENTRY_ID,
    SOC_ENTITY,
    FakeScheduling,
    battery_device,
    job_id,
    recorded,
)
from .scheduling_helpers import NOW, START, advance

# Logs at debug level, asserted free of the password, token and e-mail.
pytestmark = pytest.mark.usefixtures("no_secrets_logged")

QUARTER = timedelta(minutes=15)


@pytest.fixture(autouse=True)
def _no_waiting(request: pytest.FixtureRequest) -> None:
    """Poll without waiting, except where the polling plan itself is tested."""
    if "poll_delays" not in request.node.name:
        request.getfixturevalue("fast_polling")


@pytest.fixture(autouse=True)
def _frozen_now(freezer: FrozenDateTimeFactory) -> None:
    """Start every test at NOW, before the integration is set up."""
    freezer.move_to(NOW)


def _config(**changes: Any) -> DeviceConfig:
    """Return the home battery's configuration, with changes."""
    values: dict[str, Any] = {
        "name": "Home battery",
        "kind": DeviceKind.BATTERY,
        "sensor_id": BATTERY_SENSOR_ID,
        "soc_entity_id": SOC_ENTITY,
        "soc_unit": SocUnit.PERCENT,
        "capacity_kwh": 10.0,
        "soc_min": 10.0,
        "soc_max": 90.0,
        "charge_power_kw": 5.0,
        "discharge_power_kw": 5.0,
        "roundtrip_efficiency": 0.81,
        "consumption_price_sensor": 30,
        "production_price_sensor": None,
        "horizon": timedelta(hours=12),
    }
    values.update(changes)
    return DeviceConfig(**values)


def _scheduler(entry: MockConfigEntry) -> DeviceScheduler:
    """Return the home battery's scheduler."""
    return entry.runtime_data.schedulers[BATTERY_SUBENTRY_ID]  # type: ignore[no-any-return]


def _device_id(hass: HomeAssistant) -> str:
    """Return the device registry id of the home battery."""
    device = battery_device(hass)
    assert device is not None
    return device.id


async def _until(condition: Callable[[], bool]) -> None:
    """Let the event loop run until ``condition`` holds (bounded)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def _trigger(hass: HomeAssistant, **data: Any) -> Any:
    """Call trigger_schedule for the home battery and wait for the plan."""
    response = await hass.services.async_call(
        DOMAIN,
        "trigger_schedule",
        {"device_id": _device_id(hass), **data},
        blocking=True,
        return_response=True,
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    return response


# ----------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (3.1, "kWh", "3.1 kWh"),
        (5.0, "kW", "5 kW"),
        (0.00001, "kWh", "0 kWh"),
        (-0.00001, "kW", "0 kW"),
        (1234567.0, "kWh", "1234567 kWh"),
        (2.123456, "kW", "2.1235 kW"),
    ],
)
def test_quantity(value: float, unit: str, expected: str) -> None:
    """Quantities are plain decimals with a unit, never scientific notation."""
    assert quantity(value, unit) == expected


@pytest.mark.parametrize(
    ("moment", "resolution", "expected"),
    [
        ("2026-11-20T09:50:00+00:00", QUARTER, "2026-11-20T09:45:00+00:00"),
        ("2026-11-20T10:00:00+00:00", QUARTER, "2026-11-20T10:00:00+00:00"),
        ("2026-11-20T10:14:59+00:00", QUARTER, "2026-11-20T10:00:00+00:00"),
        ("2026-11-20T10:50:00+01:00", timedelta(hours=1), "2026-11-20T09:00:00+00:00"),
    ],
)
def test_slot_start(moment: str, resolution: timedelta, expected: str) -> None:
    """The default start is the start of the current slot, aligned in UTC."""
    assert slot_start(
        datetime.fromisoformat(moment), resolution
    ) == datetime.fromisoformat(expected)


def test_unit_conversion() -> None:
    """Percentages convert through the capacity; kWh passes through."""
    percent = _config()
    assert percent.to_kwh(50) == 5.0
    assert percent.from_kwh(2.5) == 25.0
    assert percent.soc_ceiling == 100.0
    kwh = _config(soc_unit=SocUnit.KWH, capacity_kwh=None)
    assert kwh.to_kwh(7.5) == 7.5
    assert kwh.from_kwh(7.5) == 7.5
    assert kwh.soc_ceiling is None


def test_config_from_subentry() -> None:
    """The subentry's form values become a typed configuration."""
    subentry_data = {
        **BATTERY_DATA,
        "kind": "ev_charger",
        "production_price_sensor": "31",
        "roundtrip_efficiency": None,
        "auto_reschedule": {
            "interval": 30,
            "soc_drift": 5,
            "entities": ["binary_sensor.car_plugged_in"],
        },
    }
    subentry = ConfigSubentryDataWithId(
        data=subentry_data,
        subentry_id="x",
        subentry_type="controlled_device",
        title="Car",
        unique_id="controlled_device_20",
    )
    entry = MockConfigEntry(domain=DOMAIN, subentries_data=[subentry])
    config = DeviceConfig.from_subentry(entry.subentries["x"], timedelta(hours=1))
    assert config.kind is DeviceKind.EV_CHARGER
    assert config.production_price_sensor == 31
    assert config.roundtrip_efficiency is None
    assert config.resolution == timedelta(hours=1)
    assert config.horizon == timedelta(hours=12)
    assert config.auto == AutoReschedule(
        interval=timedelta(minutes=30),
        soc_drift=5.0,
        entities=("binary_sensor.car_plugged_in",),
    )
    assert config.auto.enabled
    assert not DeviceConfig.from_subentry(
        MockConfigEntry(
            domain=DOMAIN,
            subentries_data=[{**subentry, "data": BATTERY_DATA}],
        ).subentries["x"]
    ).auto.enabled


def test_build_flex_model() -> None:
    """The flex-model uses quantity strings in kWh and kW; overrides go last."""
    request = ScheduleRequest(
        start=START,
        duration=timedelta(hours=12),
        soc_at_start_kwh=5.0,
        soc_min_kwh=1.0,
        soc_max_kwh=9.0,
        targets=(SocTarget(at=START + timedelta(hours=8), kwh=8.5),),
        charge_power_kw=11.0,
        discharge_power_kw=0.0,
        roundtrip_efficiency=0.9,
        flex_model={"soc-max": "8 kWh", "storage-efficiency": "99.9%"},
    )
    assert build_flex_model(request) == {
        "soc-at-start": "5 kWh",
        "soc-min": "1 kWh",
        "soc-max": "8 kWh",
        "power-capacity": "11 kW",
        "consumption-capacity": "11 kW",
        "production-capacity": "0 kW",
        "soc-targets": [{"datetime": "2026-11-20T18:00:00+00:00", "value": "8.5 kWh"}],
        "roundtrip-efficiency": "90%",
        "storage-efficiency": "99.9%",
    }
    plain = ScheduleRequest(
        start=START,
        duration=timedelta(hours=1),
        soc_at_start_kwh=0,
        soc_min_kwh=0,
        soc_max_kwh=10,
        charge_power_kw=3,
        discharge_power_kw=3,
    )
    assert "soc-targets" not in build_flex_model(plain)
    assert "roundtrip-efficiency" not in build_flex_model(plain)


def test_build_flex_context() -> None:
    """Price sensors are sensor references; overrides go last."""
    assert build_flex_context(_config()) == {"consumption-price": {"sensor": 30}}
    assert build_flex_context(
        _config(production_price_sensor=31),
        {"site-power-capacity": "11 kW"},
    ) == {
        "consumption-price": {"sensor": 30},
        "production-price": {"sensor": 31},
        "site-power-capacity": "11 kW",
    }
    assert build_flex_context(_config(consumption_price_sensor=None)) == {}


def test_simulate_soc() -> None:
    """SoC follows the power plan, with roundtrip losses split over both ways."""
    assert simulate_soc(5.0, [2.0, -1.0, 0.0], QUARTER, 0.81) == pytest.approx(
        [5.0 + 0.5 * 0.9, 5.45 - 0.25 / 0.9, 5.45 - 0.25 / 0.9]
    )
    assert simulate_soc(0.0, [4.0, 4.0], timedelta(minutes=30)) == [2.0, 4.0]
    assert simulate_soc(1.0, [], QUARTER) == []


def test_merge_windows() -> None:
    """Contiguous slots of one direction merge; tiny powers count as idle."""
    values = [0.0, 2.0, 3.0, 0.0, -1.0, -1.0, 0.0005, 4.0]
    windows = merge_windows(START, QUARTER, values)
    assert [(w.kind, w.start, w.end) for w in windows] == [
        (WindowKind.CHARGING, START + QUARTER, START + 3 * QUARTER),
        (WindowKind.DISCHARGING, START + 4 * QUARTER, START + 6 * QUARTER),
        (WindowKind.CHARGING, START + 7 * QUARTER, START + 8 * QUARTER),
    ]
    assert windows[0].energy_kwh == pytest.approx(1.25)
    assert windows[0].peak_kw == 3.0
    assert windows[1].energy_kwh == pytest.approx(0.5)
    assert merge_windows(START, QUARTER, []) == []


def test_poll_delays_without_history() -> None:
    """Without a learned duration, waits double from POLL_FIRST to POLL_MAX."""
    delays = list(islice(poll_delays(None), 10))
    assert delays[0] == POLL_FIRST
    assert all(b == min(a * 2, POLL_MAX) for a, b in pairwise(delays))
    assert delays[-1] == POLL_MAX


@pytest.mark.parametrize(
    ("expected", "spread", "step"),
    [
        (4.0, 0.4, 0.15),  # the window's look-ups are spread evenly
        (4.0, None, 0.15),  # spread unknown (a plan stored before it was learned)
        (1.0, 0.01, POLL_FINE_MIN),  # a steady server: the finest steps
        (8.0, 2.0, POLL_FINE_MAX),  # an erratic one: steps are capped
    ],
)
def test_poll_delays_with_history(
    expected: float, spread: float | None, step: float
) -> None:
    """With a learned duration: one wait, fine steps around the end, back-off."""
    delays = list(islice(poll_delays(expected, spread), 40))
    half = max(POLL_WINDOW_MIN, POLL_WINDOW_SPREADS * (spread or 0.1 * expected))
    assert delays[0] == pytest.approx(max(POLL_FIRST, expected - half))
    fine = list(takewhile(lambda delay: delay == pytest.approx(step), delays[1:]))
    # Look-ups every ``step`` s from the window's start until past its end.
    window_end = delays[0] + sum(fine)
    assert window_end >= expected + half > window_end - step - 1e-9
    if step > POLL_FINE_MIN and step < POLL_FINE_MAX:
        assert len(fine) == POLL_WINDOW_POLLS
    after = delays[1 + len(fine) :]
    assert after[0] == pytest.approx(step * POLL_GROWTH)
    assert all(
        b == pytest.approx(min(a * POLL_GROWTH, POLL_MAX)) for a, b in pairwise(after)
    )
    assert delays[-1] == POLL_MAX


def test_schedule_queries_and_storage() -> None:
    """A schedule answers power and SoC at any moment and survives a round trip."""
    schedule = Schedule(
        job_id="job",
        start=START,
        resolution=QUARTER,
        values=(2.0, 0.0),
        soc_at_start_kwh=5.0,
        soc=(5.5, 5.5),
        targets=(SocTarget(at=START + QUARTER, kwh=5.5),),
        computed_at=NOW,
    )
    assert schedule.end == START + 2 * QUARTER
    assert schedule.power_at(START - timedelta(seconds=1)) is None
    assert schedule.power_at(START) == 2.0
    assert schedule.power_at(schedule.end) is None
    assert schedule.soc_at(START + QUARTER / 2) == pytest.approx(5.25)
    assert schedule.soc_at(schedule.end) == 5.5
    assert schedule.soc_at(schedule.end + QUARTER) is None
    assert schedule.next_boundary(START - timedelta(minutes=10)) == START
    assert schedule.next_boundary(START + timedelta(minutes=1)) == START + QUARTER
    assert schedule.next_boundary(schedule.end) is None
    assert Schedule.from_dict(schedule.as_dict()) == schedule


async def test_read_soc(hass: HomeAssistant) -> None:
    """The SoC entity is read in its own energy unit and converted to kWh."""
    config = _config(soc_unit=SocUnit.KWH, capacity_kwh=None)
    hass.states.async_set(SOC_ENTITY, "7500", {"unit_of_measurement": "Wh"})
    assert read_soc_kwh(hass, config) == 7.5
    hass.states.async_set(SOC_ENTITY, "7.5", {})
    assert read_soc_kwh(hass, config) == 7.5
    hass.states.async_set(SOC_ENTITY, "40", {"unit_of_measurement": "%"})
    assert read_soc_kwh(hass, _config()) == 4.0


# -------------------------------------------------------------------- scheduler


async def test_status_transitions_and_event(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """Idle → computing → ready → stale; every new plan fires an event."""
    freezer.move_to(NOW)
    scheduler = _scheduler(init_battery)
    seen: list[ScheduleStatus] = []
    scheduler.async_add_listener(lambda: seen.append(scheduler.status))
    events = async_capture_events(hass, EVENT_SCHEDULE_UPDATED)
    assert seen == []
    assert scheduler.status is ScheduleStatus.IDLE

    await _trigger(hass)
    assert seen[0] is ScheduleStatus.COMPUTING
    assert seen[-1] is ScheduleStatus.READY
    assert len(events) == 1
    assert events[0].data == {
        "device_id": _device_id(hass),
        "name": "Home battery",
        "start": START.isoformat(),
        "end": (START + timedelta(hours=12)).isoformat(),
        "summary": {
            "charging_kwh": 1.0,
            "discharging_kwh": 0.25,
            "charging_windows": 1,
            "discharging_windows": 1,
            "first_charging_start": START.isoformat(),
            "soc_at_end": 56.22,
            "soc_unit": "%",
        },
    }

    freezer.move_to(START + timedelta(hours=12))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    state = hass.states.get("sensor.home_battery_schedule_status")
    assert state is not None
    assert state.state == ScheduleStatus.STALE


async def test_the_plan_is_a_coordinator_every_entity_follows(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """The scheduler is the device's plan coordinator; entities follow its data.

    Asking an entity to update re-reads the plan: no request to the server.
    """
    freezer.move_to(NOW)
    scheduler = _scheduler(init_battery)
    assert isinstance(scheduler, DataUpdateCoordinator)
    before = scheduler.data
    assert before is None
    await _trigger(hass)
    assert scheduler.data is scheduler.schedule
    assert scheduler.data is not None
    assert scheduler.last_update_success
    power = "sensor.home_battery_planned_power"
    freezer.move_to(START)
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(power).state == "2.0"  # type: ignore[union-attr]

    triggers = len(fake_scheduling.triggers)
    requests = len(fake_scheduling.server.calls)
    await async_setup_component(hass, "homeassistant", {})
    await hass.services.async_call(
        "homeassistant", "update_entity", {"entity_id": power}, blocking=True
    )
    await hass.async_block_till_done()
    assert len(fake_scheduling.triggers) == triggers
    assert len(fake_scheduling.server.calls) == requests
    assert scheduler.last_update_success
    assert hass.states.get(power).state == "2.0"  # type: ignore[union-attr]

    # A new plan reaches the entities through the coordinator's listeners.
    fake_scheduling.values = [-1.5] * 48
    await _trigger(hass, start=START)
    assert hass.states.get(power).state == "-1.5"  # type: ignore[union-attr]


async def test_failed_job_keeps_reason(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A failed job sets status and reason; the next plan clears them."""
    scheduler = _scheduler(init_battery)
    fake_scheduling.final_status = "FAILED"
    with pytest.raises(HomeAssistantError) as err:
        await _trigger(hass)
    assert err.value.translation_key == "schedule_job_failed"
    assert scheduler.status is ScheduleStatus.FAILED
    assert scheduler.failure_reason == "job_failed"
    assert scheduler.failure_message == fake_scheduling.failure_message

    fake_scheduling.final_status = "FINISHED"
    response = await _trigger(hass)
    assert response["status"] == "ready"
    assert response["failure_reason"] is None


async def test_one_job_in_flight(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A request while a job runs waits for it; a newer one replaces it."""
    scheduler = _scheduler(init_battery)
    fake_scheduling.hold = True
    device_id = _device_id(hass)
    await hass.services.async_call(
        DOMAIN, "trigger_schedule", {"device_id": device_id}, blocking=True
    )
    assert scheduler.busy
    # Queued behind the running job: the caller waits for its plan.
    waiting = asyncio.ensure_future(
        hass.services.async_call(
            DOMAIN,
            "trigger_schedule",
            {"device_id": device_id, "soc_at_start": 20},
            blocking=True,
            return_response=True,
        )
    )
    await _until(lambda: scheduler._pending is not None)
    # A newer request replaces the queued one; without a response it returns.
    await hass.services.async_call(
        DOMAIN,
        "trigger_schedule",
        {"device_id": device_id, "soc_at_start": 30},
        blocking=True,
    )
    assert len(fake_scheduling.triggers) == 1

    fake_scheduling.hold = False
    response = await waiting
    await hass.async_block_till_done(wait_background_tasks=True)
    # The queued request was replaced by the newest; its caller got that plan.
    assert len(fake_scheduling.triggers) == 2
    assert fake_scheduling.last_flex_model["soc-at-start"] == "3 kWh"
    assert response is not None
    assert response["soc_at_start"] == 30.0
    # The second job was only posted after the first had finished.
    keys = [
        f"{method} {path}" for method, path, _ in fake_server_calls(fake_scheduling)
    ]
    first_fetch = keys.index(
        f"GET /api/v3_0/sensors/{BATTERY_SENSOR_ID}/schedules/{job_id(1)}"
    )
    second_trigger = [
        index for index, key in enumerate(keys) if key.endswith("/schedules/trigger")
    ][1]
    assert first_fetch < second_trigger


def fake_server_calls(fake: FakeScheduling) -> list[tuple[str, str, Any]]:
    """Return the requests the fake server saw."""
    return fake.server.calls


async def test_adaptive_polling_learns_job_duration(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """The job duration is learned, from the server's timestamps when present."""
    scheduler = _scheduler(init_battery)
    await _trigger(hass)
    # ended-at was missing: the duration is estimated from the polls.
    assert scheduler.waiter.seconds_per_slot is not None

    scheduler.waiter.seconds_per_slot = None
    job = {
        "enqueued-at": "2026-11-20T10:00:00+00:00",
        "ended-at": "2026-11-20T10:00:03+00:00",
    }
    scheduler.waiter.learn(job, observed=5.0, last_wait=1.0, slots=48)
    assert scheduler.waiter.seconds_per_slot == pytest.approx(3.0 / 48)
    assert scheduler.waiter.expected_spread(48) is None
    scheduler.waiter.learn(job, observed=5.0, last_wait=1.0, slots=48)
    assert scheduler.waiter.expected_seconds(96) == pytest.approx(6.0)
    assert scheduler.waiter.expected_spread(48) == pytest.approx(0.0)
    # A job of 5 s moves the mean and the spread by a quarter of the step.
    scheduler.waiter.learn(
        {**job, "ended-at": "2026-11-20T10:00:05+00:00"},
        observed=5.0,
        last_wait=1.0,
        slots=48,
    )
    assert scheduler.waiter.expected_seconds(48) == pytest.approx(3.5)
    assert scheduler.waiter.expected_spread(48) == pytest.approx(0.5)
    scheduler.waiter.seconds_per_slot = None
    scheduler.waiter.learn(
        {"enqueued-at": "garbage", "ended-at": "2026-11-20T10:00:03+00:00"},
        observed=2.0,
        last_wait=1.0,
        slots=10,
    )
    assert scheduler.waiter.seconds_per_slot == pytest.approx(0.15)


async def test_job_polls_are_few(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """One round costs a trigger, the status look-ups and one fetch."""
    fake_scheduling.pending_polls = 2
    before = len(fake_scheduling.server.calls)
    await _trigger(hass)
    keys = [f"{m} {p}" for m, p, _ in fake_scheduling.server.calls[before:]]
    assert keys.count(f"GET /api/v3_0/jobs/{job_id(1)}") == 3
    assert sum(key.endswith("/schedules/trigger") for key in keys) == 1
    assert sum("/schedules/0" in key for key in keys) == 1


async def test_job_timeout(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A job that does not finish in time fails the round with a timeout."""
    with (
        patch("custom_components.flexmeasures.scheduling.waiting.JOB_TIMEOUT", 0),
        pytest.raises(HomeAssistantError) as err,
    ):
        await _trigger(hass)
    assert err.value.translation_key == "schedule_timeout"
    assert _scheduler(init_battery).failure_reason == "timeout"


async def test_response_timeout_keeps_computing(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """When the response wait ends, the schedule still arrives in the background."""
    with (
        patch("custom_components.flexmeasures.scheduling.rounds.RESPONSE_TIMEOUT", 0),
        pytest.raises(HomeAssistantError) as err,
    ):
        await _trigger(hass)
    assert err.value.translation_key == "schedule_timeout"
    await hass.async_block_till_done(wait_background_tasks=True)
    assert _scheduler(init_battery).status is ScheduleStatus.READY


@pytest.mark.parametrize(
    ("route", "failure", "translation_key", "reason"),
    [
        (
            "trigger",
            ClientConnectionError("refused"),
            "communication_error",
            "communication_error",
        ),
        (
            "job",
            ClientConnectionError("refused"),
            "communication_error",
            "communication_error",
        ),
        (
            "fetch",
            ClientConnectionError("refused"),
            "communication_error",
            "communication_error",
        ),
    ],
)
async def test_server_failures(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
    route: str,
    failure: BaseException,
    translation_key: str,
    reason: str,
) -> None:
    """Each step's server failure is a translated error and a failed status."""
    keys = {
        "trigger": "POST /api/v3_0/assets/11/schedules/trigger",
        "job": f"GET /api/v3_0/jobs/{job_id(1)}",
        "fetch": f"GET /api/v3_0/sensors/{BATTERY_SENSOR_ID}/schedules/{job_id(1)}",
    }
    fake_scheduling.server.errors[keys[route]] = failure
    with pytest.raises(HomeAssistantError) as err:
        await _trigger(hass)
    assert err.value.translation_key == translation_key
    assert _scheduler(init_battery).failure_reason == reason


async def test_trigger_rejected(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A request FlexMeasures refuses carries the server's message."""
    fake_scheduling.server.handlers["POST /api/v3_0/assets/11/schedules/trigger"] = (
        lambda method, url, data: (422, {"message": "soc-max is not a quantity"})
    )
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN,
            "trigger_schedule",
            {"device_id": _device_id(hass)},
            blocking=True,
        )
    assert err.value.translation_key == "schedule_rejected"
    assert (
        "soc-max is not a quantity"
        in (err.value.translation_placeholders or {})["error"]
    )


async def test_authentication_failure_starts_reauth(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A refused login while scheduling asks the user to log in again."""
    fake_scheduling.server.unauthorized_requests = 1
    fake_scheduling.server.password = "changed"  # noqa: S105
    with pytest.raises(HomeAssistantError) as err:
        await _trigger(hass)
    assert err.value.translation_key == "authentication_failed"
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == ["reauth"]


async def test_unload_cancels_the_job(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """Unloading during a job fails the round for whoever waits for it."""
    scheduler = _scheduler(init_battery)
    fake_scheduling.hold = True
    waiting = asyncio.ensure_future(_trigger(hass))
    await _until(lambda: bool(fake_scheduling.polls))
    assert scheduler.busy
    await hass.config_entries.async_unload(init_battery.entry_id)
    with pytest.raises(HomeAssistantError) as err:
        await waiting
    assert err.value.translation_key == "entry_not_loaded"
    assert scheduler.failure_reason == "unloaded"
    assert not scheduler.busy


async def test_restore_after_restart(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """The last schedule is stored and comes back after a reload."""
    freezer.move_to(NOW)
    await _trigger(hass)
    stored = _scheduler(init_battery).schedule
    assert stored is not None

    await hass.config_entries.async_reload(init_battery.entry_id)
    await hass.async_block_till_done()
    restored = _scheduler(init_battery)
    assert restored.schedule == stored
    assert restored.status is ScheduleStatus.READY
    assert restored.waiter.seconds_per_slot is not None
    freezer.move_to(START)
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get("sensor.home_battery_planned_power").state == "2.0"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("stored", "status"),
    [
        ({"schedule": "not a schedule"}, ScheduleStatus.IDLE),
        ({"schedule": None, "last_updated": None}, ScheduleStatus.IDLE),
        (
            {
                "schedule": {
                    "job_id": "old",
                    "start": "2026-11-19T10:00:00+00:00",
                    "resolution": 900,
                    "values": [1.0],
                    "soc_at_start": 5,
                    "soc": [5.25],
                    "computed_at": "2026-11-19T09:50:00+00:00",
                },
                "last_updated": "2026-11-19T09:50:00+00:00",
            },
            ScheduleStatus.STALE,
        ),
    ],
)
async def test_restore_from_store(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    battery_entry: MockConfigEntry,
    stored: dict[str, Any],
    status: ScheduleStatus,
) -> None:
    """A plan that ended before the restart is stale; garbage is ignored."""
    freezer.move_to(NOW)
    hass_storage[f"{DOMAIN}.schedule.{BATTERY_SUBENTRY_ID}"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.schedule.{BATTERY_SUBENTRY_ID}",
        "data": stored,
    }
    hass.states.async_set(SOC_ENTITY, "50")
    battery_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(battery_entry.entry_id)
    await hass.async_block_till_done()
    assert _scheduler(battery_entry).status is status
    assert hass.states.get("sensor.home_battery_schedule_status").state == status  # type: ignore[union-attr]


async def test_removing_device_deletes_store(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """Removing a controlled device removes its stored plan."""
    await _trigger(hass)
    key = f"{DOMAIN}.schedule.{BATTERY_SUBENTRY_ID}"
    await advance(hass, freezer, timedelta(seconds=2))
    assert key in hass_storage
    assert hass.config_entries.async_remove_subentry(init_battery, BATTERY_SUBENTRY_ID)
    await hass.async_block_till_done()
    assert key not in hass_storage
    assert init_battery.runtime_data.schedulers == {}


async def test_changing_a_device_reloads(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A changed subentry reloads the entry; an entry change alone does not."""
    old = _scheduler(init_battery)
    hass.config_entries.async_update_entry(init_battery, title="Renamed")
    await hass.async_block_till_done()
    assert _scheduler(init_battery) is old

    subentry = init_battery.subentries[BATTERY_SUBENTRY_ID]
    hass.config_entries.async_update_subentry(
        init_battery, subentry, data={**subentry.data, "soc_max": 80.0}
    )
    await hass.async_block_till_done()
    assert _scheduler(init_battery) is not old
    assert _scheduler(init_battery).config.soc_max == 80.0


async def test_remove_entry_with_devices(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """Removing the whole entry removes every stored plan."""
    await _trigger(hass)
    key = f"{DOMAIN}.schedule.{BATTERY_SUBENTRY_ID}"
    await advance(hass, freezer, timedelta(seconds=2))
    assert key in hass_storage
    await hass.config_entries.async_remove(init_battery.entry_id)
    await hass.async_block_till_done()
    assert key not in hass_storage


# ------------------------------------------------ a job in flight at a restart

STORE_KEY = f"{DOMAIN}.schedule.{BATTERY_SUBENTRY_ID}"
OLD_JOB = "11111111-1111-4111-8111-111111111111"
OLD_REQUEST = ScheduleRequest(
    start=START,
    duration=timedelta(hours=2),
    soc_at_start_kwh=3.0,
    soc_min_kwh=2.0,
    soc_max_kwh=8.0,
    targets=(SocTarget(at=START + timedelta(hours=1), kwh=6.0),),
    charge_power_kw=4.0,
    discharge_power_kw=3.0,
    roundtrip_efficiency=0.81,
    flex_model={"storage-efficiency": "99.9%"},
    flex_context={"consumption-price": {"sensor": 30}},
)


def _pending_job(
    *, age: timedelta = timedelta(minutes=2), request: ScheduleRequest = OLD_REQUEST
) -> dict[str, Any]:
    """Return a stored job in flight, queued ``age`` before NOW."""
    return PendingJob(job_id=OLD_JOB, triggered_at=NOW - age, request=request).as_dict()


def _store(data: dict[str, Any], minor_version: int = 2) -> dict[str, Any]:
    """Return a scheduler store as Home Assistant keeps it."""
    return {
        "version": 1,
        "minor_version": minor_version,
        "key": STORE_KEY,
        "data": data,
    }


def _serve_old_job(
    server: Any, status: int, body: dict[str, Any] | None = None
) -> list[str]:
    """Answer look-ups of the old job (and its schedule); return the looked-up paths."""
    looked_up: list[str] = []

    def _job(method: str, url: Any, data: Any) -> tuple[int, Any]:
        looked_up.append(url.path)
        return status, body or {}

    def _schedule(method: str, url: Any, data: Any) -> tuple[int, Any]:
        looked_up.append(url.path)
        if (body or {}).get("status") == "FAILED":
            # FlexMeasures 1.0.1: a failed job without a fallback has no schedule.
            return recorded("schedule_failed_job")
        return HTTPStatus.OK, {
            "values": [3.0] * 8,
            "start": START.isoformat(),
            "duration": "PT2H",
            "unit": "kW",
        }

    server.handlers[f"GET /api/v3_0/jobs/{OLD_JOB}"] = _job
    server.handlers[
        f"GET /api/v3_0/sensors/{BATTERY_SENSOR_ID}/schedules/{OLD_JOB}"
    ] = _schedule
    return looked_up


async def _restart_with(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    entry: MockConfigEntry,
    stored: dict[str, Any],
    soc: str | None = "50",
    *,
    wait: bool = True,
) -> DeviceScheduler:
    """Set the entry up as after a restart with ``stored`` in the store."""
    hass_storage[STORE_KEY] = stored
    if soc is not None:
        hass.states.async_set(SOC_ENTITY, soc, {"unit_of_measurement": "%"})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=wait)
    return _scheduler(entry)


async def _write_store(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    """Run the store's delayed write."""
    freezer.tick(timedelta(seconds=5))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


async def test_job_in_flight_is_picked_up_after_a_restart(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A job queued before a reload is stored, then finished, not triggered anew."""
    fake_scheduling.hold = True
    before = _scheduler(init_battery)
    await hass.services.async_call(
        DOMAIN, "trigger_schedule", {"device_id": _device_id(hass)}, blocking=True
    )
    await _until(lambda: fake_scheduling.polls.get(job_id(1), 0) > 0)
    await _write_store(hass, freezer)
    stored = hass_storage[STORE_KEY]
    assert stored["minor_version"] == 2
    assert stored["data"]["pending_job"]["job_id"] == job_id(1)
    assert before.pending_job is not None
    request = stored["data"]["pending_job"]["request"]
    assert ScheduleRequest.from_dict(request) == before.pending_job.request

    # The reload cancels the wait but keeps the job; the new scheduler picks it up.
    assert await hass.config_entries.async_reload(init_battery.entry_id)
    await hass.async_block_till_done()
    after = _scheduler(init_battery)
    assert after is not before
    assert after.busy
    assert after.recovery is ScheduleRecovery.RESUMED
    status = hass.states.get("sensor.home_battery_schedule_status")
    assert status is not None
    assert status.state == ScheduleStatus.COMPUTING
    assert status.attributes["recovery"] == "resumed"

    fake_scheduling.hold = False
    await hass.async_block_till_done(wait_background_tasks=True)
    assert after.status is ScheduleStatus.READY
    assert after.schedule is not None
    assert after.schedule.job_id == job_id(1)
    assert len(fake_scheduling.triggers) == 1
    assert after.pending_job is None
    await _write_store(hass, freezer)
    assert hass_storage[STORE_KEY]["data"]["pending_job"] is None
    assert hass_storage[STORE_KEY]["data"]["schedule"]["job_id"] == job_id(1)

    # The next round is an ordinary one again.
    await _trigger(hass)
    assert after.recovery is None


async def test_finished_job_is_fetched_after_a_restart(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    fake_scheduling: FakeScheduling,
    battery_entry: MockConfigEntry,
) -> None:
    """A job that finished while Home Assistant was down is fetched, nothing more."""
    looked_up = _serve_old_job(
        fake_scheduling.server, HTTPStatus.OK, {"status": "FINISHED"}
    )
    scheduler = await _restart_with(
        hass, hass_storage, battery_entry, _store({"pending_job": _pending_job()})
    )
    assert scheduler.status is ScheduleStatus.READY
    assert scheduler.recovery is ScheduleRecovery.RESUMED
    assert scheduler.last_request == OLD_REQUEST
    assert scheduler.schedule is not None
    assert scheduler.schedule.job_id == OLD_JOB
    # Planned from the stored request: its SoC at start, not today's.
    assert scheduler.schedule.soc_at_start_kwh == 3.0
    assert scheduler.schedule.soc[0] == pytest.approx(3.0 + 3.0 * 0.25 * 0.9)
    assert fake_scheduling.triggers == []
    assert len(looked_up) == 2
    state = hass.states.get("sensor.home_battery_planned_power")
    assert state is not None
    assert state.state == "3.0"  # the plan covers now
    status = hass.states.get("sensor.home_battery_schedule_status")
    assert status is not None
    assert status.attributes["job_id"] == OLD_JOB


@pytest.mark.parametrize(
    ("status", "body", "age", "polled"),
    [
        pytest.param(None, None, timedelta(minutes=2), True, id="job_unknown"),
        pytest.param(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            {"status": "FAILED", "message": "worker died"},
            timedelta(minutes=2),
            True,
            id="job_failed",
        ),
        pytest.param(
            HTTPStatus.OK,
            {"status": "CANCELED", "message": "canceled"},
            timedelta(minutes=2),
            True,
            id="job_canceled",
        ),
        pytest.param(
            HTTPStatus.OK,
            {"status": "FINISHED"},
            timedelta(hours=2),
            False,
            id="too_old",
        ),
    ],
)
async def test_useless_job_is_recomputed_once(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    fake_scheduling: FakeScheduling,
    battery_entry: MockConfigEntry,
    status: HTTPStatus | None,
    body: dict[str, Any] | None,
    age: timedelta,
    polled: bool,
) -> None:
    """An unknown, failed or too old job is replaced by one fresh job."""
    looked_up = (
        _serve_old_job(fake_scheduling.server, status, body)
        if status is not None
        else []
    )
    scheduler = await _restart_with(
        hass,
        hass_storage,
        battery_entry,
        _store({"pending_job": _pending_job(age=age)}),
    )
    assert len(fake_scheduling.triggers) == 1
    assert bool(looked_up) is (polled and status is not None)
    assert scheduler.status is ScheduleStatus.READY
    assert scheduler.recovery is ScheduleRecovery.RECOMPUTED
    assert scheduler.schedule is not None
    assert scheduler.schedule.job_id == job_id(1)
    assert f"job {OLD_JOB} from before the restart is of no use" in caplog.text
    # The stored request again, planned from the SoC now (50 % of 10 kWh).
    trigger = fake_scheduling.triggers[0]
    assert trigger["start"] == START.isoformat()
    assert dt_util.parse_duration(trigger["duration"]) == timedelta(hours=2)
    assert trigger["flex-context"] == {"consumption-price": {"sensor": 30}}
    model = fake_scheduling.last_flex_model
    assert model["soc-at-start"] == "5 kWh"
    assert model["soc-min"] == "2 kWh"
    assert model["soc-max"] == "8 kWh"
    assert model["consumption-capacity"] == "4 kW"
    assert model["production-capacity"] == "3 kW"
    assert model["storage-efficiency"] == "99.9%"
    assert model["soc-targets"] == [
        {"datetime": (START + timedelta(hours=1)).isoformat(), "value": "6 kWh"}
    ]
    status_state = hass.states.get("sensor.home_battery_schedule_status")
    assert status_state is not None
    assert status_state.state == ScheduleStatus.READY
    assert status_state.attributes["recovery"] == "recomputed"
    await _write_store(hass, freezer)
    assert hass_storage[STORE_KEY]["data"]["pending_job"] is None


async def test_ended_plan_is_recomputed_from_the_next_slot(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    fake_scheduling: FakeScheduling,
    battery_entry: MockConfigEntry,
) -> None:
    """A job whose plan already ended starts again at the next slot, same length."""
    looked_up = _serve_old_job(
        fake_scheduling.server, HTTPStatus.OK, {"status": "FINISHED"}
    )
    request = ScheduleRequest(
        start=NOW - timedelta(minutes=50),
        duration=timedelta(minutes=30),
        soc_at_start_kwh=3.0,
        soc_min_kwh=1.0,
        soc_max_kwh=9.0,
        targets=(SocTarget(at=NOW - timedelta(minutes=20), kwh=4.0),),
        charge_power_kw=5.0,
        discharge_power_kw=5.0,
        force=True,
    )
    scheduler = await _restart_with(
        hass,
        hass_storage,
        battery_entry,
        _store({"pending_job": _pending_job(request=request)}),
    )
    assert looked_up == []
    assert scheduler.recovery is ScheduleRecovery.RECOMPUTED
    trigger = fake_scheduling.triggers[0]
    assert trigger["start"] == START.isoformat()
    assert dt_util.parse_duration(trigger["duration"]) == timedelta(minutes=30)
    assert "prior" in trigger
    assert "soc-targets" not in fake_scheduling.last_flex_model


async def test_recompute_waits_until_started(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    fake_scheduling: FakeScheduling,
    battery_entry: MockConfigEntry,
) -> None:
    """At start-up the SoC entity may come late: the new job waits for started."""
    hass.set_state(CoreState.starting)
    scheduler = await _restart_with(
        hass,
        hass_storage,
        battery_entry,
        _store({"pending_job": _pending_job(age=timedelta(hours=3))}),
        soc=None,
        wait=False,
    )
    assert scheduler.busy
    assert scheduler.status == "computing"  # not narrowed: it changes below
    assert fake_scheduling.triggers == []
    hass.states.async_set(SOC_ENTITY, "40", {"unit_of_measurement": "%"})
    hass.set_state(CoreState.running)
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STARTED)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert scheduler.status is ScheduleStatus.READY
    assert fake_scheduling.last_flex_model["soc-at-start"] == "4 kWh"


async def test_recompute_without_soc_fails(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    fake_scheduling: FakeScheduling,
    battery_entry: MockConfigEntry,
) -> None:
    """No SoC to plan from: the status says so, nothing is triggered."""
    scheduler = await _restart_with(
        hass,
        hass_storage,
        battery_entry,
        _store({"pending_job": _pending_job(age=timedelta(hours=3))}),
        soc=None,
    )
    assert fake_scheduling.triggers == []
    assert scheduler.status is ScheduleStatus.FAILED
    assert scheduler.failure_reason is FailureReason.SOC_UNAVAILABLE
    assert scheduler.failure_message == SOC_ENTITY
    assert scheduler.pending_job is None


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        pytest.param(
            ClientConnectionError("refused"),
            FailureReason.COMMUNICATION_ERROR,
            id="unreachable",
        ),
        pytest.param(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            FailureReason.COMMUNICATION_ERROR,
            id="server_error",
        ),
    ],
)
async def test_resume_failure_is_reported(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    fake_scheduling: FakeScheduling,
    battery_entry: MockConfigEntry,
    answer: Exception | HTTPStatus,
    reason: FailureReason,
) -> None:
    """A server that cannot say how the job went: a failure, not a new job."""
    path = f"GET /api/v3_0/jobs/{OLD_JOB}"
    if isinstance(answer, Exception):
        fake_scheduling.server.errors[path] = answer
    else:
        _serve_old_job(fake_scheduling.server, answer)
    scheduler = await _restart_with(
        hass, hass_storage, battery_entry, _store({"pending_job": _pending_job()})
    )
    assert fake_scheduling.triggers == []
    assert scheduler.status is ScheduleStatus.FAILED
    assert scheduler.failure_reason is reason
    assert scheduler.recovery is ScheduleRecovery.RESUMED
    assert scheduler.pending_job is None


@pytest.mark.parametrize(
    ("stored", "status"),
    [
        pytest.param(
            {"schedule": None, "pending_job": {"job_id": OLD_JOB}},
            ScheduleStatus.IDLE,
            id="unreadable_job",
        ),
        pytest.param(
            {"schedule": "not a schedule", "pending_job": None},
            ScheduleStatus.IDLE,
            id="unreadable_schedule",
        ),
    ],
)
async def test_unreadable_job_in_flight_is_ignored(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    fake_scheduling: FakeScheduling,
    battery_entry: MockConfigEntry,
    stored: dict[str, Any],
    status: ScheduleStatus,
) -> None:
    """A damaged store neither crashes the set-up nor triggers a job."""
    scheduler = await _restart_with(hass, hass_storage, battery_entry, _store(stored))
    assert scheduler.status is status
    assert scheduler.pending_job is None
    assert fake_scheduling.triggers == []


async def test_store_from_the_previous_version_loads(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    fake_scheduling: FakeScheduling,
    battery_entry: MockConfigEntry,
) -> None:
    """A 1.1 store (no job in flight) keeps its plan and is migrated to 1.2."""
    schedule = Schedule(
        job_id="old",
        start=START,
        resolution=QUARTER,
        values=(1.0, 0.0),
        soc_at_start_kwh=5.0,
        soc=(5.225, 5.225),
        targets=(),
        computed_at=NOW,
    )
    scheduler = await _restart_with(
        hass,
        hass_storage,
        battery_entry,
        _store(
            {
                "schedule": schedule.as_dict(),
                "last_updated": NOW.isoformat(),
                "job_seconds_per_slot": 0.05,
                "job_spread_per_slot": 0.01,
            },
            minor_version=1,
        ),
    )
    assert scheduler.schedule == schedule
    assert scheduler.status is ScheduleStatus.READY
    assert scheduler.waiter.seconds_per_slot == 0.05
    assert scheduler.waiter.spread_per_slot == 0.01
    assert scheduler.pending_job is None
    assert fake_scheduling.triggers == []
    migrated = hass_storage[STORE_KEY]
    assert migrated["minor_version"] == 2
    assert migrated["data"]["pending_job"] is None
    assert migrated["data"]["schedule"] == schedule.as_dict()


async def test_store_from_a_newer_major_version_is_refused(
    hass: HomeAssistant,
) -> None:
    """A store this version cannot understand is not silently reshaped."""
    store = ScheduleStore(hass, BATTERY_SUBENTRY_ID)
    with pytest.raises(NotImplementedError):
        await store._async_migrate_func(2, 1, {})


async def test_stop_keeps_the_job_in_flight(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """Home Assistant stopping mid-job writes the job in its final write."""
    scheduler = _scheduler(init_battery)
    # A plan in hand, then a job in flight.
    await _trigger(hass)
    fake_scheduling.hold = True
    await hass.services.async_call(
        DOMAIN, "trigger_schedule", {"device_id": _device_id(hass)}, blocking=True
    )
    await _until(lambda: fake_scheduling.polls.get(job_id(2), 0) > 0)
    assert scheduler.pending_job is not None
    hass.set_state(CoreState.stopping)
    for task in list(hass._background_tasks):
        task.cancel()
    await asyncio.sleep(0)
    assert not scheduler.busy
    hass.bus.async_fire(EVENT_HOMEASSISTANT_FINAL_WRITE)
    await hass.async_block_till_done()
    hass.set_state(CoreState.running)
    data = hass_storage[STORE_KEY]["data"]
    assert data["pending_job"]["job_id"] == job_id(2)
    assert data["schedule"]["job_id"] == job_id(1)


# ------------------------------------------------------- automatic rescheduling

AUTO_ENTITY = "binary_sensor.car_plugged_in"


@pytest.fixture
def auto_subentry(battery_subentry: ConfigSubentryDataWithId) -> None:
    """Turn on every automatic trigger of the home battery."""
    battery_subentry["data"] = {
        **battery_subentry["data"],
        "auto_reschedule": {"interval": 60, "soc_drift": 5, "entities": [AUTO_ENTITY]},
    }


@pytest.mark.usefixtures("auto_subentry")
async def test_auto_reschedule_debounced_and_rate_limited(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """Bursts of changes make one job; the next waits for the rate limit."""
    freezer.move_to(NOW)
    for state in ("on", "off", "on"):
        hass.states.async_set(AUTO_ENTITY, state)
    # Attribute-only changes and unavailability do not count.
    hass.states.async_set(AUTO_ENTITY, "on", {"friendly_name": "Car"})
    hass.states.async_set(AUTO_ENTITY, "unavailable")
    await hass.async_block_till_done()
    assert fake_scheduling.triggers == []

    await advance(hass, freezer, timedelta(seconds=11))
    assert len(fake_scheduling.triggers) == 1

    hass.states.async_set(AUTO_ENTITY, "off")
    await advance(hass, freezer, timedelta(seconds=11))
    assert len(fake_scheduling.triggers) == 1  # rate-limited: deferred
    await advance(hass, freezer, timedelta(minutes=2))
    assert len(fake_scheduling.triggers) == 2


@pytest.mark.usefixtures("auto_subentry")
async def test_auto_reschedule_periodic(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """The interval replans on its own, keeping targets still ahead."""
    freezer.move_to(NOW)
    target = START + timedelta(hours=8)
    await _trigger(hass, soc_targets=[{"datetime": target.isoformat(), "value": 80}])
    await advance(hass, freezer, timedelta(minutes=60))
    await advance(hass, freezer, timedelta(seconds=11))
    assert len(fake_scheduling.triggers) == 2
    assert fake_scheduling.last_flex_model["soc-targets"] == [
        {"datetime": target.isoformat(), "value": "8 kWh"}
    ]


@pytest.mark.usefixtures("auto_subentry")
async def test_auto_reschedule_on_soc_drift(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """Only a SoC further from the plan than the threshold replans."""
    freezer.move_to(START)
    await _trigger(hass)
    # Plan: 50 % at the start. 53 % is within 5 points, 60 % is not.
    hass.states.async_set(SOC_ENTITY, "53")
    await advance(hass, freezer, timedelta(seconds=11))
    assert len(fake_scheduling.triggers) == 1
    hass.states.async_set(SOC_ENTITY, "unavailable")
    await advance(hass, freezer, timedelta(seconds=11))
    assert len(fake_scheduling.triggers) == 1
    hass.states.async_set(SOC_ENTITY, "60")
    await advance(hass, freezer, timedelta(seconds=11))
    assert len(fake_scheduling.triggers) == 2
    assert fake_scheduling.last_flex_model["soc-at-start"] == "6 kWh"


@pytest.mark.usefixtures("auto_subentry")
async def test_soc_drift_without_plan_now(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """Without a plan covering now there is nothing to drift from."""
    freezer.move_to(NOW)
    hass.states.async_set(SOC_ENTITY, "90")
    await advance(hass, freezer, timedelta(seconds=11))
    await _trigger(hass, start=START + QUARTER)
    hass.states.async_set(SOC_ENTITY, "20")  # the plan starts at 10:15, not yet
    await advance(hass, freezer, timedelta(seconds=11))
    assert len(fake_scheduling.triggers) == 1


@pytest.mark.usefixtures("auto_subentry")
async def test_auto_reschedule_without_soc(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """An automatic replan without a SoC reading fails visibly, posts nothing."""
    freezer.move_to(NOW)
    scheduler = _scheduler(init_battery)
    hass.states.async_set(SOC_ENTITY, "unknown")
    hass.states.async_set(AUTO_ENTITY, "on")
    await advance(hass, freezer, timedelta(seconds=11))
    assert fake_scheduling.triggers == []
    assert scheduler.status is ScheduleStatus.FAILED
    assert scheduler.failure_reason == "soc_unavailable"
    assert scheduler.failure_message == SOC_ENTITY


@pytest.mark.usefixtures("auto_subentry")
async def test_auto_reschedule_server_down(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An outage is one line down and one back; the round is taken up unchanged."""
    caplog.set_level(logging.INFO, logger="custom_components.flexmeasures")
    freezer.move_to(NOW)
    trigger = "POST /api/v3_0/assets/11/schedules/trigger"
    fake_scheduling.server.errors[trigger] = ClientConnectionError("down")
    hass.states.async_set(AUTO_ENTITY, "on")
    await advance(hass, freezer, timedelta(seconds=11))
    scheduler = _scheduler(init_battery)
    assert scheduler.failure_reason == "communication_error"
    assert fake_scheduling.server.count(trigger) == 1
    # Retries back off from 15 s, asking something harmless before repeating
    # the trigger; replans wait for them instead of adding jobs.
    versions = "GET /api/"
    asked = fake_scheduling.server.count(versions)
    fake_scheduling.server.errors[versions] = ClientConnectionError("down")
    hass.states.async_set(AUTO_ENTITY, "off")
    await advance(hass, freezer, timedelta(seconds=RETRY_FIRST))
    assert fake_scheduling.server.count(versions) == asked + 1
    await advance(hass, freezer, timedelta(seconds=RETRY_FIRST))
    assert fake_scheduling.server.count(versions) == asked + 1
    await advance(hass, freezer, timedelta(seconds=RETRY_FIRST))
    assert fake_scheduling.server.count(versions) == asked + 2
    hass.states.async_set(AUTO_ENTITY, "on")
    await advance(hass, freezer, AUTO_MIN_INTERVAL)
    assert fake_scheduling.server.count(versions) == asked + 3  # a retry, no replan
    assert fake_scheduling.server.count(trigger) == 1
    assert scheduler.status == "failed"
    # It answers, but triggers still fail: repeated, at most once per retry.
    del fake_scheduling.server.errors[versions]
    await advance(hass, freezer, timedelta(seconds=200))
    assert fake_scheduling.server.count(trigger) == 2
    # Back: the same request once more, whose job is followed to its plan.
    del fake_scheduling.server.errors[trigger]
    await advance(hass, freezer, timedelta(seconds=2 * RETRY_MAX))
    assert scheduler.status is ScheduleStatus.READY
    bodies = [
        data
        for method, path, data in fake_scheduling.server.calls
        if f"{method} {path}" == trigger
    ]
    assert len(bodies) == 3
    assert all(body == bodies[0] for body in bodies)
    assert caplog.text.count("is unavailable, keeping the current plan") == 1
    assert caplog.text.count("Scheduling Home battery: FlexMeasures at") == 2
    assert caplog.text.count("is available again") == 1
    assert "Scheduling Home battery failed" not in caplog.text
    # Nothing left to retry.
    await advance(hass, freezer, timedelta(seconds=RETRY_MAX))
    assert fake_scheduling.server.count(trigger) == 3


async def test_a_job_that_lost_the_server_is_followed(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A job queued before the outage is looked up again, never triggered anew."""
    fake_scheduling.hold = True
    scheduler = _scheduler(init_battery)
    await hass.services.async_call(
        DOMAIN, "trigger_schedule", {"device_id": _device_id(hass)}, blocking=True
    )
    status = f"GET /api/v3_0/jobs/{job_id(1)}"
    fake_scheduling.server.errors[status] = ClientConnectionError("gone")
    await hass.async_block_till_done(wait_background_tasks=True)
    assert scheduler.failure_reason == "communication_error"
    assert scheduler.status == "failed"
    del fake_scheduling.server.errors[status]
    fake_scheduling.hold = False
    await advance(hass, freezer, timedelta(seconds=RETRY_FIRST))
    assert scheduler.status is ScheduleStatus.READY
    assert scheduler.schedule is not None
    assert scheduler.schedule.job_id == job_id(1)
    assert len(fake_scheduling.triggers) == 1


async def test_a_retry_ends_with_its_plan(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """No retry for a plan that would be over; a new round replaces a waiting one."""
    trigger = "POST /api/v3_0/assets/11/schedules/trigger"
    fake_scheduling.server.errors[trigger] = ClientConnectionError("down")
    with pytest.raises(HomeAssistantError):
        await _trigger(hass, duration={"minutes": 30})
    assert fake_scheduling.server.count(trigger) == 1
    # A user's round while one waits: the waiting one backs off behind it.
    scheduler = _scheduler(init_battery)
    hold = asyncio.Event()
    original = scheduler.api.async_trigger_schedule

    async def slow(**kwargs: Any) -> str:
        await hold.wait()
        return await original(**kwargs)

    with patch.object(scheduler.api, "async_trigger_schedule", slow):
        call = hass.async_create_background_task(
            hass.services.async_call(
                DOMAIN,
                "trigger_schedule",
                {"device_id": _device_id(hass), "duration": {"minutes": 30}},
                blocking=True,
            ),
            "a user's call",
        )
        await _until(lambda: scheduler.busy)
        freezer.tick(timedelta(seconds=RETRY_FIRST))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
        assert fake_scheduling.server.count(trigger) == 1
        hold.set()
        with pytest.raises(HomeAssistantError):
            await call
        await hass.async_block_till_done(wait_background_tasks=True)
    # Both failed; past the plan's end nothing is retried.
    await advance(hass, freezer, timedelta(hours=1))
    count = fake_scheduling.server.count(trigger)
    await advance(hass, freezer, timedelta(seconds=RETRY_MAX))
    assert fake_scheduling.server.count(trigger) == count


async def test_validation_is_typed(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """The scheduler's request builder raises translated validation errors."""
    with pytest.raises(ServiceValidationError) as err:
        _scheduler(init_battery).build_request(soc_min=95)
    assert err.value.translation_key == "soc_min_above_max"
