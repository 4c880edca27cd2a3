"""A failed scheduling job whose schedule redirects (303) to FlexMeasures' fallback.

FlexMeasures queues a job of the scheduler's ``fallback_scheduler_class`` when a job
fails with an infeasible problem; the failed job's schedule then answers 303 See
Other to the fallback's (recorded from 1.0.1: schedule_fallback_redirect.json).
That plan drives the device and shows as a fallback plan, unless the options say
not to use fallback plans: then the round fails and the previous plan stays.
"""

from __future__ import annotations

from datetime import datetime
import logging
from typing import Any
from unittest.mock import patch

from aiohttp import ClientConnectionError
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.flexmeasures.const import DOMAIN
from custom_components.flexmeasures.scheduling import (
    FailureReason,
    Schedule,
    ScheduleStatus,
)

from .conftest import (
    BATTERY_SENSOR_ID,
    BATTERY_SUBENTRY_ID,
    FakeScheduling,
    battery_device,
    job_id,
)

NOW = datetime.fromisoformat("2026-11-20T10:05:00+00:00")
STATUS = "sensor.home_battery_schedule_status"
POWER = "sensor.home_battery_planned_power"

pytestmark = pytest.mark.usefixtures("fast_polling")


@pytest.fixture(autouse=True)
def _frozen_now(freezer: FrozenDateTimeFactory) -> None:
    """Start every test at NOW, before the integration is set up."""
    freezer.move_to(NOW)


async def _trigger(hass: HomeAssistant) -> Any:
    """Ask a plan for the home battery and wait for it."""
    device = battery_device(hass)
    assert device is not None
    response = await hass.services.async_call(
        DOMAIN,
        "trigger_schedule",
        {"device_id": device.id},
        blocking=True,
        return_response=True,
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    return response


def _attributes(hass: HomeAssistant) -> tuple[str, dict[str, Any]]:
    """Return the schedule status entity's state and attributes."""
    state = hass.states.get(STATUS)
    assert state is not None
    return state.state, dict(state.attributes)


def _schedule(entry: MockConfigEntry) -> Schedule:
    """Return the home battery's current plan."""
    schedule = entry.runtime_data.schedulers[BATTERY_SUBENTRY_ID].schedule
    assert schedule is not None
    return schedule  # type: ignore[no-any-return]


async def test_failed_job_uses_the_fallback_plan(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The job FAILED, its schedule 303s to the fallback's plan: used, as such."""
    fake_scheduling.final_status = "FAILED"
    fake_scheduling.fallback = True
    caplog.set_level(logging.INFO)
    response = await _trigger(hass)
    scheduler = init_battery.runtime_data.schedulers[BATTERY_SUBENTRY_ID]
    assert response["status"] == "fallback"
    assert response["fallback_reason"] == fake_scheduling.failure_message
    assert scheduler.status is ScheduleStatus.FALLBACK
    schedule = _schedule(init_battery)
    assert list(schedule.values[:5]) == [2.0, 2.0, 0.0, 0.0, -1.0]
    fallback = next(iter(fake_scheduling.fallbacks))
    assert (
        fake_scheduling.server.count(
            f"GET /api/v3_0/sensors/{scheduler.config.sensor_id}/schedules/{fallback}"
        )
        == 1
    )
    assert "fallback plan is used" in caplog.text
    assert fake_scheduling.failure_message in caplog.text

    # The status entity says so, with the reason; the plan drives the entities.
    state, attributes = _attributes(hass)
    assert state == "fallback"
    assert attributes["fallback_reason"] == fake_scheduling.failure_message
    assert attributes["failure_reason"] is None
    power = hass.states.get(POWER)
    assert power is not None
    assert power.state == "2.0"

    # Once the fallback plan has ended it is stale, like any plan.
    freezer.move_to(schedule.end)
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert _attributes(hass)[0] == "stale"

    # The next plan of FlexMeasures' own scheduler is an ordinary one again.
    fake_scheduling.final_status = "FINISHED"
    assert (await _trigger(hass))["fallback_reason"] is None
    state, attributes = _attributes(hass)
    assert state == "ready"
    assert attributes["fallback_reason"] is None


async def test_fallback_plan_not_used_when_switched_off(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """With fallback plans switched off in the options the round fails instead."""
    first = await _trigger(hass)
    hass.config_entries.async_update_entry(
        init_battery, options={**init_battery.options, "use_fallback_plans": False}
    )
    await hass.async_block_till_done()
    fake_scheduling.final_status = "FAILED"
    fake_scheduling.fallback = True
    with pytest.raises(HomeAssistantError) as err:
        await _trigger(hass)
    assert err.value.translation_key == "schedule_fallback_not_used"
    assert err.value.translation_placeholders == {
        "error": fake_scheduling.failure_message
    }
    # Asked for (the server made it), not used: the previous plan stays.
    assert fake_scheduling.fallbacks
    assert _schedule(init_battery).job_id == first["job_id"]
    state, attributes = _attributes(hass)
    assert state == "failed"
    assert attributes["failure_reason"] == FailureReason.FALLBACK_NOT_USED
    assert attributes["failure_message"] == fake_scheduling.failure_message
    assert attributes["fallback_reason"] is None


async def test_failed_job_without_fallback_keeps_its_error(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """Without a fallback the schedule is an unknown one (400): the job's error."""
    fake_scheduling.final_status = "FAILED"
    with pytest.raises(HomeAssistantError) as err:
        await _trigger(hass)
    assert err.value.translation_key == "schedule_job_failed"
    assert err.value.translation_placeholders == {
        "error": fake_scheduling.failure_message
    }
    assert not fake_scheduling.fallbacks


async def test_stored_fallback_plan_is_restored_as_such(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A fallback plan survives a reload as a fallback plan."""
    fake_scheduling.final_status = "FAILED"
    fake_scheduling.fallback = True
    await _trigger(hass)
    assert await hass.config_entries.async_reload(init_battery.entry_id)
    await hass.async_block_till_done()
    state, attributes = _attributes(hass)
    assert state == "fallback"
    assert attributes["fallback_reason"] == fake_scheduling.failure_message
    assert _schedule(init_battery).fallback_reason == fake_scheduling.failure_message


async def test_fallback_job_fails_too(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A fallback job that fails as well: the round fails with its error."""
    fake_scheduling.final_status = "FAILED"
    fake_scheduling.fallback = True
    fake_scheduling.fallback_status = "FAILED"
    with pytest.raises(HomeAssistantError) as err:
        await _trigger(hass)
    assert err.value.translation_key == "schedule_job_failed"
    assert _attributes(hass)[0] == "failed"


async def test_fallback_lookup_without_the_server(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """Losing the server while asking for the fallback is a communication error."""
    fake_scheduling.final_status = "FAILED"
    fake_scheduling.fallback = True
    path = f"GET /api/v3_0/sensors/{BATTERY_SENSOR_ID}/schedules/{job_id(1)}"
    fake_scheduling.server.errors[path] = ClientConnectionError("refused")
    with pytest.raises(HomeAssistantError) as err:
        await _trigger(hass)
    assert err.value.translation_key == "communication_error"
    assert not fake_scheduling.fallbacks


async def test_failed_job_with_its_schedule_in_place(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A failed job whose schedule answers without a redirect has no fallback."""
    fake_scheduling.final_status = "FAILED"
    scheduler = init_battery.runtime_data.schedulers[BATTERY_SUBENTRY_ID]
    with (
        patch.object(
            scheduler.api, "async_get_fallback_job", return_value=None
        ) as lookup,
        pytest.raises(HomeAssistantError) as err,
    ):
        await _trigger(hass)
    assert lookup.call_count == 1
    assert err.value.translation_key == "schedule_job_failed"
