"""Tests for the automatic replanning triggers of a device's scheduler."""

from __future__ import annotations

from datetime import datetime, timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigSubentryDataWithId
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures.const import DOMAIN
from custom_components.flexmeasures.scheduling import AUTO_DEBOUNCE, AUTO_MIN_INTERVAL

from .conftest import BATTERY_SUBENTRY_ID, FakeScheduling, battery_device
from .scheduling_helpers import NOW, advance

TARGET_AT = datetime.fromisoformat("2026-11-20T18:00:00+00:00")
PLUGGED_IN = "binary_sensor.car_plugged_in"

pytestmark = pytest.mark.usefixtures("fast_polling")


@pytest.fixture(autouse=True)
def _replan_on_plug(
    freezer: FrozenDateTimeFactory, battery_subentry: ConfigSubentryDataWithId
) -> None:
    """Replan the home battery when the car is plugged in or out, from NOW."""
    freezer.move_to(NOW)
    battery_subentry["data"] = {
        **battery_subentry["data"],
        "auto_reschedule": {"entities": [PLUGGED_IN]},
    }


async def _plug(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, state: str
) -> None:
    """Change the trigger entity and let the debounced replan run."""
    hass.states.async_set(PLUGGED_IN, state)
    await advance(hass, freezer, timedelta(seconds=AUTO_DEBOUNCE + 1))


async def test_unload_drops_a_deferred_replan(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A replan the rate limit held back does not run once the entry unloaded."""
    await _plug(hass, freezer, "on")
    await _plug(hass, freezer, "off")
    assert len(fake_scheduling.triggers) == 1  # the second one is deferred
    assert await hass.config_entries.async_unload(init_battery.entry_id)
    await advance(hass, freezer, AUTO_MIN_INTERVAL)
    assert len(fake_scheduling.triggers) == 1


async def test_replan_after_restart_keeps_the_stored_targets(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """After a restart no request was made: the restored plan's targets count."""
    device = battery_device(hass)
    assert device is not None
    await hass.services.async_call(
        DOMAIN,
        "trigger_schedule",
        {
            "device_id": device.id,
            "soc_targets": [{"datetime": TARGET_AT.isoformat(), "value": 80}],
        },
        blocking=True,
        return_response=True,
    )
    await hass.config_entries.async_reload(init_battery.entry_id)
    await hass.async_block_till_done()
    scheduler = init_battery.runtime_data.schedulers[BATTERY_SUBENTRY_ID]
    assert scheduler.last_request is None
    assert scheduler.schedule is not None

    await _plug(hass, freezer, "on")
    assert len(fake_scheduling.triggers) == 2
    assert fake_scheduling.last_flex_model["soc-targets"] == [
        {"datetime": TARGET_AT.isoformat(), "value": "8 kWh"}
    ]
