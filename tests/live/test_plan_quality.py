"""Plans FlexMeasures 1.0.1 cannot make as asked, against the real server.

A target that cannot be reached in time: targets are soft in 1.0, the job finishes
with the closest plan and lists the missed target in its result; Home Assistant
shows it on the schedule status entity and as a repair issue, until a plan meets
its targets. A job that fails: the seeded battery's scheduler falls back to a
relaxed one (scripts/fmserver/pyhooks/fmha_schedulers.py) and the failed job's
schedule redirects (303) to that plan, which shows as a fallback plan, or is not
used when the options say so.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest

from custom_components.flexmeasures.const import DOMAIN
from custom_components.flexmeasures.data import FlexMeasuresConfigEntry

from .conftest import LiveServer, quarter_floor, simulate_soc
from .test_scheduling import (
    CAPACITY_KWH,
    EFFICIENCY,
    SOC_ATTRIBUTES,
    SOC_ENTITY,
    SOC_MAX,
    SOC_NOW,
    _add_battery,
    _entity_id,
    device_id_of,
)

RESOLUTION = timedelta(minutes=15)


async def _plan(hass: HomeAssistant, device_id: str, **data: Any) -> Any:
    """Ask the real server for a plan and wait for it."""
    return await hass.services.async_call(
        DOMAIN,
        "trigger_schedule",
        {"device_id": device_id, "force": True, **data},
        blocking=True,
        return_response=True,
    )


async def test_target_that_cannot_be_reached_in_time(
    hass: HomeAssistant,
    issue_registry: ir.IssueRegistry,
    live_server: LiveServer,
    loaded_entry: FlexMeasuresConfigEntry,
) -> None:
    """30 % to 90 % of 10 kWh within 30 minutes at 5 kW: reported, then cleared."""
    hass.states.async_set(SOC_ENTITY, str(SOC_NOW), SOC_ATTRIBUTES)
    subentry_id = await _add_battery(hass, loaded_entry, live_server)
    scheduler = loaded_entry.runtime_data.schedulers[subentry_id]
    device_id = device_id_of(hass, loaded_entry, scheduler.device_identifier)
    status_entity = _entity_id(hass, loaded_entry, subentry_id, "schedule_status")
    issue_id = f"unmet_targets_{subentry_id}"

    start = quarter_floor(dt_util.utcnow())
    target_at = start + 2 * RESOLUTION
    response = await _plan(
        hass,
        device_id,
        duration=timedelta(hours=3),
        soc_targets=[{"datetime": target_at, "value": SOC_MAX}],
    )
    assert response["status"] == "ready"
    (missed,) = response["unmet_targets"]
    assert missed["datetime"] == target_at.isoformat()
    assert missed["target"] == SOC_MAX
    # The server's deviation is what its own plan leaves short at the target:
    # simulated independently from the power values it returned.
    kwh = simulate_soc(
        soc_at_start=SOC_NOW / 100 * CAPACITY_KWH,
        power_kw=response["values"],
        resolution=RESOLUTION,
        roundtrip_efficiency=EFFICIENCY,
    )
    reached = kwh[2] / CAPACITY_KWH * 100
    assert reached < SOC_MAX
    assert missed["deviation"] == pytest.approx(SOC_MAX - reached, abs=0.1)

    state = hass.states.get(status_entity)
    assert state is not None
    assert state.state == "ready"
    assert state.attributes["unmet_targets"] == [missed]
    issue = issue_registry.async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "unmet_targets"
    assert issue.translation_placeholders == {
        "name": "Live battery",
        "datetime": dt_util.as_local(target_at).strftime("%Y-%m-%d %H:%M"),
        "target": f"{SOC_MAX:g} %",
        "shortfall": f"{missed['deviation']:g} %",
        "count": "1",
    }

    # A target it can reach: the plan meets it, the issue goes.
    response = await _plan(
        hass,
        device_id,
        duration=timedelta(hours=3),
        soc_targets=[{"datetime": start + timedelta(hours=3), "value": 50}],
    )
    assert response["unmet_targets"] == []
    state = hass.states.get(status_entity)
    assert state is not None
    assert state.attributes["unmet_targets"] == []
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None


async def test_failed_job_answers_with_the_fallback_plan(
    hass: HomeAssistant,
    live_server: LiveServer,
    loaded_entry: FlexMeasuresConfigEntry,
) -> None:
    """An infeasible plan fails; the fallback plan is used, or refused by option."""
    hass.states.async_set(SOC_ENTITY, str(SOC_NOW), SOC_ATTRIBUTES)
    subentry_id = await _add_battery(hass, loaded_entry, live_server)
    scheduler = loaded_entry.runtime_data.schedulers[subentry_id]
    device_id = device_id_of(hass, loaded_entry, scheduler.device_identifier)
    status_entity = _entity_id(hass, loaded_entry, subentry_id, "schedule_status")
    power_entity = _entity_id(hass, loaded_entry, subentry_id, "planned_power")
    # Empty, a minimum of half full and 1 kW: the first slots cannot keep it.
    infeasible = {
        "duration": timedelta(hours=6),
        "soc_at_start": 0,
        "soc_min": 50,
        "charge_power": 1,
    }

    response = await _plan(hass, device_id, **infeasible)
    assert response["status"] == "fallback"
    assert "failed" in response["fallback_reason"]
    assert len(response["values"]) == 24
    state = hass.states.get(status_entity)
    assert state is not None
    assert state.state == "fallback"
    assert state.attributes["fallback_reason"] == response["fallback_reason"]
    power = hass.states.get(power_entity)
    assert power is not None
    assert float(power.state) == pytest.approx(response["values"][0], abs=1e-3)
    fallback_job = response["job_id"]

    # Fallback plans switched off: the same failure is an error, the plan stays.
    hass.config_entries.async_update_entry(
        loaded_entry, options={**loaded_entry.options, "use_fallback_plans": False}
    )
    await hass.async_block_till_done()
    with pytest.raises(HomeAssistantError) as err:
        await _plan(hass, device_id, **infeasible)
    assert err.value.translation_key == "schedule_fallback_not_used"
    state = hass.states.get(status_entity)
    assert state is not None
    assert state.state == "failed"
    assert state.attributes["failure_reason"] == "fallback_not_used"
    assert scheduler.schedule is not None
    assert scheduler.schedule.job_id == fallback_job
