"""Tests for the shipped automation blueprints: loaded by HA and run."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
import shutil
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_mock_service,
)

from .conftest import FakeScheduling, battery_device

BLUEPRINTS = Path(__file__).parent.parent / "blueprints" / "automation" / "flexmeasures"
NOW = datetime.fromisoformat("2026-11-20T10:05:00+00:00")

pytestmark = pytest.mark.usefixtures("fast_polling")


@pytest.fixture(autouse=True)
def _blueprints_in_config(
    hass: HomeAssistant, tmp_path: Path, freezer: FrozenDateTimeFactory
) -> None:
    """Install the blueprints the way a user imports them, into the config dir."""
    freezer.move_to(NOW)
    hass.config.config_dir = str(tmp_path)
    target = Path(hass.config.path("blueprints", "automation", "flexmeasures"))
    target.mkdir(parents=True)
    for blueprint in BLUEPRINTS.glob("*.yaml"):
        shutil.copy(blueprint, target)


async def _automation(hass: HomeAssistant, path: str, inputs: dict[str, Any]) -> None:
    """Set up one automation from a blueprint."""
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "id": "under_test",
                "alias": "Under test",
                "use_blueprint": {"path": f"flexmeasures/{path}", "input": inputs},
            }
        },
    )
    await hass.async_block_till_done()
    state = hass.states.get("automation.under_test")
    assert state is not None
    assert state.state == "on"


def test_every_blueprint_is_tested() -> None:
    """Each shipped blueprint has a test here, and names its import URL."""
    shipped = {path.name for path in BLUEPRINTS.glob("*.yaml")}
    assert shipped == {
        "charger_follows_plan.yaml",
        "setpoint_follows_plan.yaml",
        "replan_on_change.yaml",
    }
    for name in shipped:
        assert f"blueprints/automation/flexmeasures/{name}" in (
            BLUEPRINTS / name
        ).read_text(encoding="utf-8")


async def test_charger_follows_plan(hass: HomeAssistant) -> None:
    """The charger switch turns on and off with "charging planned"."""
    on = async_mock_service(hass, "switch", "turn_on")
    off = async_mock_service(hass, "switch", "turn_off")
    planned = "binary_sensor.home_battery_charging_planned"
    hass.states.async_set(planned, "off")
    await _automation(
        hass,
        "charger_follows_plan.yaml",
        {"charging_planned": planned, "charger_switch": "switch.charger"},
    )
    hass.states.async_set(planned, "on")
    await hass.async_block_till_done()
    assert [call.data["entity_id"] for call in on] == [["switch.charger"]]
    hass.states.async_set(planned, "off")
    await hass.async_block_till_done()
    assert [call.data["entity_id"] for call in off] == [["switch.charger"]]
    # Unknown (no plan for now) leaves the charger alone.
    hass.states.async_set(planned, "unknown")
    await hass.async_block_till_done()
    assert len(on) + len(off) == 2


@pytest.mark.parametrize(
    ("setpoint", "domain"),
    [("number.inverter_setpoint", "number"), ("input_number.setpoint", "input_number")],
)
async def test_setpoint_follows_plan(
    hass: HomeAssistant, setpoint: str, domain: str
) -> None:
    """The setpoint gets the planned power times the factor, or the idle value."""
    calls: list[ServiceCall] = async_mock_service(hass, domain, "set_value")
    power = "sensor.home_battery_planned_power"
    hass.states.async_set(power, "unknown")
    hass.states.async_set(setpoint, "0")
    await _automation(
        hass,
        "setpoint_follows_plan.yaml",
        {"planned_power": power, "setpoint": setpoint, "factor": -1000},
    )
    hass.states.async_set(power, "2.5")
    await hass.async_block_till_done()
    hass.states.async_set(power, "unavailable")
    await hass.async_block_till_done()
    assert [(call.data["entity_id"], call.data["value"]) for call in calls] == [
        ([setpoint], -2500.0),
        ([setpoint], 0),
    ]


async def test_replan_on_change(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """Plugging in, or a new target while plugged in, asks for a new plan."""
    hass.states.async_set("binary_sensor.car_plugged_in", "off")
    hass.states.async_set("input_number.car_target", "80")
    hass.states.async_set(
        "input_datetime.car_ready_at",
        "16:00:00",
        {"has_date": False, "has_time": True},
    )
    await _automation(
        hass,
        "replan_on_change.yaml",
        {
            "controlled_device": battery_device(hass).id,
            "plugged_in": "binary_sensor.car_plugged_in",
            "target_soc": "input_number.car_target",
            "target_time": "input_datetime.car_ready_at",
        },
    )
    # A new target while unplugged does nothing.
    hass.states.async_set("input_number.car_target", "85")
    await hass.async_block_till_done(wait_background_tasks=True)
    assert fake_scheduling.triggers == []

    hass.states.async_set("binary_sensor.car_plugged_in", "on")
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(fake_scheduling.triggers) == 1
    ready_at = dt_util.as_utc(
        datetime.combine(
            dt_util.now().date(), datetime.min.time(), dt_util.get_default_time_zone()
        )
        + timedelta(hours=16)
    )
    assert fake_scheduling.last_flex_model["soc-targets"] == [
        {"datetime": ready_at.isoformat(), "value": "8.5 kWh"}
    ]

    hass.states.async_set("input_number.car_target", "60")
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(fake_scheduling.triggers) == 2
    assert fake_scheduling.last_flex_model["soc-targets"][0]["value"] == "6 kWh"
