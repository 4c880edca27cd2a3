"""State-of-charge targets a plan misses: the status entity and a repair issue.

Targets are soft in FlexMeasures 1.0: a plan that cannot reach one comes as close
as it can, and the finished job's result lists the target with the deviation
(recorded from 1.0.1: job_unmet_target.json). The integration shows those targets
on the schedule status entity and raises a repair issue that names the target,
its moment and the shortfall, until a plan meets its targets or the plan ends.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.flexmeasures.const import DOMAIN
from custom_components.flexmeasures.scheduling import (
    Schedule,
    SocTarget,
    UnmetTarget,
    unmet_targets,
)

from .conftest import BATTERY_SUBENTRY_ID, FakeScheduling, battery_device, recorded

NOW = datetime.fromisoformat("2026-11-20T10:05:00+00:00")
START = datetime.fromisoformat("2026-11-20T10:00:00+00:00")
TARGET_AT = START + timedelta(hours=1)
LATER_AT = START + timedelta(hours=3)
STATUS = "sensor.home_battery_schedule_status"
ISSUE_ID = f"unmet_targets_{BATTERY_SUBENTRY_ID}"

pytestmark = pytest.mark.usefixtures("fast_polling")


@pytest.fixture(autouse=True)
def _frozen_now(freezer: FrozenDateTimeFactory) -> None:
    """Start every test at NOW, before the integration is set up."""
    freezer.move_to(NOW)


async def _trigger(hass: HomeAssistant, **data: Any) -> Any:
    """Ask a plan with two targets (90 % at 11:00, 60 % at 13:00) and wait."""
    device = battery_device(hass)
    assert device is not None
    response = await hass.services.async_call(
        DOMAIN,
        "trigger_schedule",
        {
            "device_id": device.id,
            "soc_targets": [
                {"datetime": TARGET_AT, "value": 90},
                {"datetime": LATER_AT, "value": 60},
            ],
            **data,
        },
        blocking=True,
        return_response=True,
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    return response


def _status_attributes(hass: HomeAssistant) -> dict[str, Any]:
    """Return the schedule status entity's attributes."""
    state = hass.states.get(STATUS)
    assert state is not None
    return dict(state.attributes)


async def test_unmet_target_on_status_and_as_repair_issue(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A missed target shows on the status entity and as an issue, until met."""
    # 90 % of 10 kWh at 11:00 is missed by 4.257 kWh, as the server reported.
    fake_scheduling.unmet = [(TARGET_AT, 4.257)]
    response = await _trigger(hass)
    expected = [{"datetime": TARGET_AT.isoformat(), "target": 90.0, "deviation": 42.57}]
    assert response["status"] == "ready"
    assert response["unmet_targets"] == expected
    assert _status_attributes(hass)["unmet_targets"] == expected

    issue = issue_registry.async_get_issue(DOMAIN, ISSUE_ID)
    assert issue is not None
    assert issue.translation_key == "unmet_targets"
    assert issue.severity is ir.IssueSeverity.WARNING
    assert not issue.is_fixable
    # 11:00 UTC in the test's time zone (US/Pacific).
    assert issue.translation_placeholders == {
        "name": "Home battery",
        "datetime": "2026-11-20 03:00",
        "target": "90 %",
        "shortfall": "42.57 %",
        "count": "1",
    }

    # Both targets missed: the issue names the first and counts them.
    fake_scheduling.unmet = [(LATER_AT, 0.5), (TARGET_AT, 1.0)]
    await _trigger(hass)
    issue = issue_registry.async_get_issue(DOMAIN, ISSUE_ID)
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["shortfall"] == "10 %"
    assert issue.translation_placeholders["count"] == "2"
    assert [item["target"] for item in _status_attributes(hass)["unmet_targets"]] == [
        90.0,
        60.0,
    ]

    # A later plan that meets its targets clears both.
    fake_scheduling.unmet = []
    response = await _trigger(hass)
    assert response["unmet_targets"] == []
    assert _status_attributes(hass)["unmet_targets"] == []
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None


async def test_unmet_targets_are_not_recorded(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """The list of missed targets stays out of the recorder's attributes."""
    fake_scheduling.unmet = [(TARGET_AT, 4.257)]
    await _trigger(hass)
    state = hass.states.get(STATUS)
    assert state is not None
    assert state.state_info is not None
    assert "unmet_targets" in state.state_info["unrecorded_attributes"]
    assert "fallback_reason" not in state.state_info["unrecorded_attributes"]


@pytest.mark.parametrize(
    ("then", "status"),
    [("nothing", "stale"), ("a_failed_round", "failed"), ("a_fallback_plan", "stale")],
)
async def test_issue_ends_with_the_plan(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    issue_registry: ir.IssueRegistry,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
    then: str,
    status: str,
) -> None:
    """Once the plan has ended its missed targets are history: the issue goes."""
    fake_scheduling.unmet = [(TARGET_AT, 4.257)]
    await _trigger(hass, duration={"hours": 4})
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is not None
    # A later round that fails, or plans with the fallback (for as long).
    fake_scheduling.unmet = []
    fake_scheduling.final_status = "FAILED"
    if then == "a_failed_round":
        with pytest.raises(HomeAssistantError):
            await _trigger(hass, duration={"hours": 4})
    elif then == "a_fallback_plan":
        fake_scheduling.fallback = True
        await _trigger(hass, duration={"hours": 4})
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is not None
    freezer.move_to(START + timedelta(hours=4))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    state = hass.states.get(STATUS)
    assert state is not None
    assert state.state == status
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None


async def test_fallback_plan_leaves_the_issue(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A fallback plan says nothing about the targets: the issue stays."""
    fake_scheduling.unmet = [(TARGET_AT, 4.257)]
    await _trigger(hass)
    # The relaxed fallback plans without targets: its job reports none missed.
    fake_scheduling.unmet = []
    fake_scheduling.final_status = "FAILED"
    fake_scheduling.fallback = True
    response = await _trigger(hass)
    assert response["status"] == "fallback"
    assert response["unmet_targets"] == []
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is not None


async def test_issue_raised_again_after_a_restart(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """The stored plan keeps its missed targets; the issue is raised again."""
    fake_scheduling.unmet = [(TARGET_AT, 4.257)]
    await _trigger(hass)
    assert await hass.config_entries.async_unload(init_battery.entry_id)
    ir.async_delete_issue(hass, DOMAIN, ISSUE_ID)  # gone with the old session
    assert await hass.config_entries.async_setup(init_battery.entry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is not None
    assert _status_attributes(hass)["unmet_targets"] == [
        {"datetime": TARGET_AT.isoformat(), "target": 90.0, "deviation": 42.57}
    ]


@pytest.mark.parametrize("removed", ["device", "entry"])
async def test_removing_the_device_or_entry_clears_the_issue(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
    removed: str,
) -> None:
    """A removed controlled device, or entry, takes its issue along."""
    fake_scheduling.unmet = [(TARGET_AT, 4.257)]
    await _trigger(hass)
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is not None
    if removed == "device":
        assert hass.config_entries.async_remove_subentry(
            init_battery, BATTERY_SUBENTRY_ID
        )
    else:
        await hass.config_entries.async_remove(init_battery.entry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, ISSUE_ID) is None


def _item(**changes: Any) -> dict[str, Any]:
    """Return one missed target as the recorded job result lists it."""
    _, body = recorded("job_unmet_target")
    item: dict[str, Any] = body["result"]["unresolved"][0]["soc-targets"][0]
    item.update({"datetime": TARGET_AT.isoformat(), **changes})
    return item


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        pytest.param(
            {"unresolved": [{"asset": 5, "soc-targets": [_item()]}]},
            (UnmetTarget(at=TARGET_AT, target_kwh=9.0, deviation_kwh=4.257),),
            id="recorded",
        ),
        pytest.param(
            {"unresolved": [{"asset": 5, "soc-targets": [_item(violation="0.5 MWh")]}]},
            (UnmetTarget(at=TARGET_AT, target_kwh=9.0, deviation_kwh=500.0),),
            id="megawatt_hours",
        ),
        pytest.param(
            {
                "unresolved": [
                    {"asset": 5, "soc-targets": [_item(datetime=LATER_AT.isoformat())]}
                ]
            },
            (UnmetTarget(at=LATER_AT, target_kwh=None, deviation_kwh=4.257),),
            id="target_of_a_raw_flex_model",
        ),
        pytest.param(
            {"unresolved": [{"asset": 5, "soc-minima": [_item()]}]},
            (),
            id="minima_are_no_targets",
        ),
        pytest.param(None, (), id="no_result"),
        pytest.param({"unresolved": "none"}, (), id="not_a_list"),
        pytest.param({"unresolved": ["asset"]}, (), id="not_an_entry"),
        pytest.param({"unresolved": [{"soc-targets": ["x"]}]}, (), id="not_an_item"),
        pytest.param(
            {"unresolved": [{"soc-targets": [_item(violation="much")]}]},
            (),
            id="unreadable_violation",
        ),
        pytest.param(
            {"unresolved": [{"soc-targets": [_item(violation="4 %")]}]},
            (),
            id="not_an_energy",
        ),
        pytest.param(
            {"unresolved": [{"soc-targets": [_item(datetime="soon")]}]},
            (),
            id="unreadable_moment",
        ),
    ],
)
def test_unmet_targets_from_a_job_result(
    result: Any, expected: tuple[UnmetTarget, ...]
) -> None:
    """Only readable missed targets count; the requested value where known."""
    assert unmet_targets(result, [SocTarget(at=TARGET_AT, kwh=9.0)]) == expected


def test_stored_schedule_keeps_fallback_and_unmet_targets() -> None:
    """A schedule round-trips through the store; older stores lack both fields."""
    schedule = Schedule(
        job_id="job",
        start=START,
        resolution=timedelta(minutes=15),
        values=(2.0,),
        soc_at_start_kwh=5.0,
        soc=(5.5,),
        targets=(SocTarget(at=TARGET_AT, kwh=9.0),),
        computed_at=NOW,
        fallback_reason="Scheduling job failed with str: infeasible.",
        unmet_targets=(
            UnmetTarget(at=TARGET_AT, target_kwh=9.0, deviation_kwh=4.257),
            UnmetTarget(at=LATER_AT, target_kwh=None, deviation_kwh=1.0),
        ),
    )
    assert Schedule.from_dict(schedule.as_dict()) == schedule
    older = schedule.as_dict()
    del older["fallback_reason"], older["unmet_targets"]
    restored = Schedule.from_dict(older)
    assert restored.fallback_reason is None
    assert restored.unmet_targets == ()
