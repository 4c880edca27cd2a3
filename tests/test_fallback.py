"""A failed scheduling job whose schedule redirects (303) to FlexMeasures' fallback.

FlexMeasures queues a job of the scheduler's ``fallback_scheduler_class`` when a job
fails with an infeasible problem; the failed job's schedule then answers 303 See
Other to the fallback's (recorded from 1.0.1: schedule_fallback_redirect.json).
"""

from __future__ import annotations

import logging
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures.const import DOMAIN
from custom_components.flexmeasures.scheduling import ScheduleStatus

from .conftest import BATTERY_SUBENTRY_ID, FakeScheduling, battery_device


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


async def test_failed_job_uses_the_fallback_plan(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The job FAILED, its schedule 303s to the fallback's plan: that plan is used."""
    fake_scheduling.final_status = "FAILED"
    fake_scheduling.fallback = True
    caplog.set_level(logging.INFO)
    response = await _trigger(hass)
    scheduler = init_battery.runtime_data.schedulers[BATTERY_SUBENTRY_ID]
    assert response["status"] == "ready"
    assert scheduler.status is ScheduleStatus.READY
    assert scheduler.schedule is not None
    assert list(scheduler.schedule.values[:5]) == [2.0, 2.0, 0.0, 0.0, -1.0]
    fallback = next(iter(fake_scheduling.fallbacks))
    assert (
        fake_scheduling.server.count(
            f"GET /api/v3_0/sensors/{scheduler.config.sensor_id}/schedules/{fallback}"
        )
        == 1
    )
    assert "fallback plan is used" in caplog.text
    assert fake_scheduling.failure_message in caplog.text


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
