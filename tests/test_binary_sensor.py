"""Tests for the FlexMeasures binary sensors."""

from __future__ import annotations

from datetime import datetime, timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.flexmeasures.const import DOMAIN

from .conftest import FakeScheduling, battery_device

NOW = datetime.fromisoformat("2026-11-20T10:05:00+00:00")
START = datetime.fromisoformat("2026-11-20T10:00:00+00:00")
QUARTER = timedelta(minutes=15)
CHARGING = "binary_sensor.home_battery_charging_planned"
DISCHARGING = "binary_sensor.home_battery_discharging_planned"


@pytest.fixture(autouse=True)
def _frozen_now(freezer: FrozenDateTimeFactory, fast_polling: None) -> None:
    """Start every test at NOW, before the integration is set up."""
    freezer.move_to(NOW)


def _states(hass: HomeAssistant) -> tuple[str, str]:
    """Return the states of the charging and discharging sensors."""
    charging, discharging = hass.states.get(CHARGING), hass.states.get(DISCHARGING)
    assert charging is not None
    assert discharging is not None
    return charging.state, discharging.state


async def test_planned_now_follows_slots(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """Charging and discharging planned switch exactly at slot boundaries."""
    assert _states(hass) == (STATE_UNKNOWN, STATE_UNKNOWN)
    device = battery_device(hass)
    assert device is not None
    # 2 kW, 2 kW, idle, a trickle below the threshold, -1 kW, idle.
    fake_scheduling.values = [2.0, 2.0, 0.0, 0.0001, -1.0] + [0.0] * 43
    await hass.services.async_call(
        DOMAIN, "trigger_schedule", {"device_id": device.id}, blocking=True
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    # The plan starts with the current slot: charging now, at once.
    assert _states(hass) == (STATE_ON, STATE_OFF)

    expected = [
        (STATE_ON, STATE_OFF),
        (STATE_ON, STATE_OFF),
        (STATE_OFF, STATE_OFF),
        (STATE_OFF, STATE_OFF),
        (STATE_OFF, STATE_ON),
        (STATE_OFF, STATE_OFF),
    ]
    for slot, states in enumerate(expected):
        freezer.move_to(START + slot * QUARTER)
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
        assert _states(hass) == states, slot
