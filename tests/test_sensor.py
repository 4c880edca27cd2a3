"""Tests for the FlexMeasures sensors."""

from __future__ import annotations

from datetime import datetime, timedelta
import json
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers.json import JSONEncoder
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.flexmeasures.const import DOMAIN

from .conftest import (
    BATTERY_SUBENTRY_ID,
    FakeScheduling,
    battery_device,
    entity_snapshot,
)

# --- Scheduling: the sensors of a controlled device --------------------------

NOW = datetime.fromisoformat("2026-11-20T09:50:00+00:00")
START = datetime.fromisoformat("2026-11-20T10:00:00+00:00")
QUARTER = timedelta(minutes=15)


@pytest.fixture(autouse=True)
def _frozen_now(freezer: FrozenDateTimeFactory, fast_polling: None) -> None:
    """Start every test at NOW, before the integration is set up."""
    freezer.move_to(NOW)


async def _plan(hass: HomeAssistant, **data: Any) -> Any:
    """Ask for a plan for the home battery and wait for it."""
    device = battery_device(hass)
    assert device is not None
    response = await hass.services.async_call(
        DOMAIN,
        "trigger_schedule",
        {"device_id": device.id, **data},
        blocking=True,
        return_response=True,
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    return response


def _state(hass: HomeAssistant, entity_id: str) -> str:
    """Return an entity's state."""
    state = hass.states.get(entity_id)
    assert state is not None
    return state.state


async def _at(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, moment: datetime
) -> None:
    """Move the clock to ``moment`` and run the timers that were due."""
    freezer.move_to(moment)
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


async def test_schedule_sensors(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """Every entity of a controlled device, before and with a plan."""
    assert _state(hass, "sensor.home_battery_schedule_status") == "idle"
    assert _state(hass, "sensor.home_battery_planned_power") == STATE_UNKNOWN
    await _plan(
        hass,
        duration={"hours": 2},
        soc_targets=[{"datetime": "2026-11-20T11:00:00+00:00", "value": 60}],
    )
    await _at(hass, freezer, START)
    assert entity_snapshot(hass, init_battery.entry_id) == snapshot
    # Every entity belongs to the controlled device.
    device = battery_device(hass)
    assert device is not None
    assert device.name == "Home battery"
    assert device.model == "Battery"
    assert {
        entity["device"]
        for entity in entity_snapshot(hass, init_battery.entry_id).values()
    } == {"Home battery"}


async def test_planned_power_switches_at_slot_boundaries(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """The planned power follows the plan exactly at slot boundaries."""
    await _plan(hass)
    power = "sensor.home_battery_planned_power"
    assert _state(hass, power) == STATE_UNKNOWN
    # Just before the boundary nothing changes: no polling, only time tracking.
    await _at(hass, freezer, START - timedelta(seconds=1))
    assert _state(hass, power) == STATE_UNKNOWN
    expected = {0: "2.0", 1: "2.0", 2: "0.0", 4: "-1.0", 5: "0.0"}
    for slot, value in expected.items():
        await _at(hass, freezer, START + slot * QUARTER)
        assert _state(hass, power) == value, slot
    await _at(hass, freezer, START + timedelta(hours=12))
    assert _state(hass, power) == STATE_UNKNOWN
    assert _state(hass, "sensor.home_battery_schedule_status") == "stale"


async def test_next_charging_window(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """Next charging start and end describe the ongoing or next window."""
    fake_scheduling.values = [0.0, 3.0, 3.0, 0.0, 1.0] + [0.0] * 43
    await _plan(hass)
    start, end = (
        "sensor.home_battery_next_charging_start",
        "sensor.home_battery_next_charging_end",
    )
    assert _state(hass, start) == (START + QUARTER).isoformat()
    assert _state(hass, end) == (START + 3 * QUARTER).isoformat()
    await _at(hass, freezer, START + 2 * QUARTER)
    assert _state(hass, start) == (START + QUARTER).isoformat()
    await _at(hass, freezer, START + 3 * QUARTER)
    assert _state(hass, start) == (START + 4 * QUARTER).isoformat()
    await _at(hass, freezer, START + 5 * QUARTER)
    assert _state(hass, start) == STATE_UNKNOWN


async def test_soc_sensors_in_kwh(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A device whose SoC is in kWh shows its planned SoC in kWh."""
    subentry = init_battery.subentries[BATTERY_SUBENTRY_ID]
    hass.config_entries.async_update_subentry(
        init_battery,
        subentry,
        data={**subentry.data, "soc_unit": "kwh", "soc_min": 1, "soc_max": 9},
    )
    await hass.async_block_till_done()
    hass.states.async_set(
        "sensor.home_battery_soc", "5", {"unit_of_measurement": "kWh"}
    )
    await _plan(hass)
    state = hass.states.get("sensor.home_battery_planned_state_of_charge_at_end")
    assert state is not None
    assert state.attributes["unit_of_measurement"] == "kWh"
    assert state.attributes["device_class"] == "energy_storage"
    assert float(state.state) == pytest.approx(5 + 1.0 * 0.9 - 0.25 / 0.9, abs=0.01)


async def test_recorded_attributes_stay_small(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A 48-hour, 15-minute plan keeps every recorded attribute set under 16 KB."""
    fake_scheduling.values = [round((i % 7 - 3) * 1.234567, 6) for i in range(192)]
    await _plan(hass, duration={"hours": 48})
    power = hass.states.get("sensor.home_battery_planned_power")
    assert power is not None
    assert len(power.attributes["schedule"]) == 192
    for state in hass.states.async_all():
        if not state.entity_id.startswith(
            (
                "sensor.home_battery",
                "binary_sensor.home_battery",
                "calendar.home_battery",
            )
        ):
            continue
        # What the recorder stores: the attributes minus the unrecorded ones.
        unrecorded = (
            state.state_info["unrecorded_attributes"]
            if state.state_info
            else frozenset()
        )
        recorded = {k: v for k, v in state.attributes.items() if k not in unrecorded}
        size = len(json.dumps(recorded, cls=JSONEncoder).encode())
        assert size < 16 * 1024, state.entity_id
    assert "schedule" in power.state_info["unrecorded_attributes"]  # type: ignore[index]
