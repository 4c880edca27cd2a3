"""Tests for the FlexMeasures plan calendar."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    async_mock_service,
)

from custom_components.flexmeasures.const import DOMAIN

from .conftest import FakeScheduling, battery_device

NOW = datetime.fromisoformat("2026-11-20T10:05:00+00:00")
START = datetime.fromisoformat("2026-11-20T10:00:00+00:00")
QUARTER = timedelta(minutes=15)
CALENDAR = "calendar.home_battery_plan"

# Idle, charge 3 slots (merged), idle, discharge 2 slots, idle, charge 1 slot.
VALUES = [0.0, 2.0, 3.0, 1.0, 0.0, -1.0, -2.0, 0.0, 4.0] + [0.0] * 39


@pytest.fixture(autouse=True)
def _frozen_now(freezer: FrozenDateTimeFactory, fast_polling: None) -> None:
    """Start every test at NOW, before the integration is set up."""
    freezer.move_to(NOW)


async def _plan(hass: HomeAssistant, fake_scheduling: FakeScheduling) -> None:
    """Have a plan with VALUES for the home battery."""
    fake_scheduling.values = VALUES
    device = battery_device(hass)
    assert device is not None
    await hass.services.async_call(
        DOMAIN, "trigger_schedule", {"device_id": device.id}, blocking=True
    )
    await hass.async_block_till_done(wait_background_tasks=True)


async def _events(hass: HomeAssistant, start: datetime, end: datetime) -> Any:
    """Return the calendar's events through calendar.get_events."""
    response = await hass.services.async_call(
        "calendar",
        "get_events",
        {"start_date_time": start, "end_date_time": end},
        target={"entity_id": CALENDAR},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    body: Any = response[CALENDAR]
    return body["events"]


async def test_windows_are_merged_events(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """Contiguous slots become one event per charging or discharging window."""
    state = hass.states.get(CALENDAR)
    assert state is not None
    assert state.state == STATE_OFF
    await _plan(hass, fake_scheduling)
    events = await _events(hass, NOW, NOW + timedelta(days=1))
    assert [(e["summary"], e["start"], e["end"]) for e in events] == [
        ("Charging", (START + QUARTER).isoformat(), (START + 4 * QUARTER).isoformat()),
        (
            "Discharging",
            (START + 5 * QUARTER).isoformat(),
            (START + 7 * QUARTER).isoformat(),
        ),
        (
            "Charging",
            (START + 8 * QUARTER).isoformat(),
            (START + 9 * QUARTER).isoformat(),
        ),
    ]
    assert events[0]["description"] == "1.50 kWh, up to 3.00 kW"
    # Only overlapping windows are listed.
    later = await _events(hass, START + 6 * QUARTER, START + timedelta(hours=3))
    assert [e["summary"] for e in later] == ["Discharging", "Charging"]


async def test_calendar_state_follows_windows(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """The calendar is on during a window and names the ongoing or next one."""
    await _plan(hass, fake_scheduling)
    state = hass.states.get(CALENDAR)
    assert state is not None
    assert state.state == STATE_OFF
    assert state.attributes["message"] == "Charging"
    assert state.attributes["start_time"] == dt_util.as_local(START + QUARTER).strftime(
        "%Y-%m-%d %H:%M:%S"
    )

    freezer.move_to(START + 2 * QUARTER)
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    state = hass.states.get(CALENDAR)
    assert state is not None
    assert state.state == STATE_ON

    freezer.move_to(START + 9 * QUARTER)
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    state = hass.states.get(CALENDAR)
    assert state is not None
    assert state.state == STATE_OFF
    assert "message" not in state.attributes


async def test_calendar_trigger_fires(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A calendar trigger with an offset fires before a charging window."""
    calls: list[ServiceCall] = async_mock_service(hass, "test", "automation")
    await _plan(hass, fake_scheduling)
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "trigger": {
                    "platform": "calendar",
                    "event": "start",
                    "entity_id": CALENDAR,
                    "offset": "-00:05:00",
                },
                "condition": {
                    "condition": "template",
                    "value_template": (
                        "{{ trigger.calendar_event.summary == 'Charging' }}"
                    ),
                },
                "action": {
                    "service": "test.automation",
                    "data": {"start": "{{ trigger.calendar_event.start }}"},
                },
            }
        },
    )
    await hass.async_block_till_done()
    for minutes in range(0, 60, 5):
        freezer.move_to(NOW + timedelta(minutes=minutes))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
    assert [call.data["start"] for call in calls] == [
        (START + QUARTER).isoformat(),
    ]
    await hass.services.async_call(
        "automation", "turn_off", {"entity_id": "all"}, blocking=True
    )
