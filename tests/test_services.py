"""Tests for the FlexMeasures actions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.flexmeasures.const import DOMAIN

from .conftest import BATTERY_SUBENTRY_ID, SOC_ENTITY, FakeScheduling, battery_device

pytestmark = pytest.mark.usefixtures("fast_polling")

NOW = datetime.fromisoformat("2026-11-20T09:50:00+00:00")
START = datetime.fromisoformat("2026-11-20T10:00:00+00:00")


@pytest.fixture(autouse=True)
def _frozen_now(freezer: FrozenDateTimeFactory) -> None:
    """Start every test at NOW, before the integration is set up."""
    freezer.move_to(NOW)


def _device_id(hass: HomeAssistant) -> str:
    """Return the device registry id of the home battery."""
    device = battery_device(hass)
    assert device is not None
    return device.id


def _status(hass: HomeAssistant) -> str:
    """Return the state of the home battery's schedule status sensor."""
    state = hass.states.get("sensor.home_battery_schedule_status")
    assert state is not None
    return state.state


async def _call(
    hass: HomeAssistant, service: str, *, response: bool = True, **data: Any
) -> Any:
    """Call an action for the home battery."""
    return await hass.services.async_call(
        DOMAIN,
        service,
        {"device_id": _device_id(hass), **data},
        blocking=True,
        return_response=response,
    )


async def test_trigger_without_response_returns_once_queued(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """Without a response the action returns when the job is queued."""
    scheduler = init_battery.runtime_data.schedulers[BATTERY_SUBENTRY_ID]
    assert await _call(hass, "trigger_schedule", response=False) is None
    assert len(fake_scheduling.triggers) == 1
    assert _status(hass) == "computing"
    assert scheduler.schedule is None

    await hass.async_block_till_done(wait_background_tasks=True)
    assert _status(hass) == "ready"
    assert scheduler.schedule is not None


async def test_trigger_with_response(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """With a response the action waits and returns the plan and its SoC."""
    response = await _call(hass, "trigger_schedule", duration={"hours": 2})
    assert response == snapshot
    assert fake_scheduling.triggers[0] == {
        "start": START.isoformat(),
        "duration": "P0DT2H0M0S",
        "flex-model": [
            {
                "soc-at-start": "5 kWh",
                "soc-min": "1 kWh",
                "soc-max": "9 kWh",
                "power-capacity": "5 kW",
                "consumption-capacity": "5 kW",
                "production-capacity": "5 kW",
                "roundtrip-efficiency": "81%",
                "sensor": 20,
            }
        ],
        "flex-context": {"consumption-price": {"sensor": 30}},
    }


async def test_trigger_with_all_fields(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """Every field reaches the flex-model; naive times are local times."""
    await hass.config.async_set_time_zone("Europe/Amsterdam")
    await _call(
        hass,
        "trigger_schedule",
        start="2026-11-20 12:00:00",
        duration="06:00:00",
        soc_at_start=20,
        soc_targets=[
            {"datetime": "2026-11-20T17:00:00+01:00", "value": 80},
            {"datetime": "2026-11-20 14:00:00", "value": 50},
        ],
        soc_min=15,
        soc_max=85,
        charge_power=3.7,
        discharge_power=0,
        flex_model={"storage-efficiency": "99.9%"},
        flex_context={"site-power-capacity": "11 kW"},
        force=True,
    )
    payload = fake_scheduling.triggers[0]
    assert payload["start"] == "2026-11-20T11:00:00+00:00"
    assert payload["duration"] == "P0DT6H0M0S"
    assert payload["force-new-job-creation"] is True
    assert payload["flex-context"] == {
        "consumption-price": {"sensor": 30},
        "site-power-capacity": "11 kW",
    }
    assert fake_scheduling.last_flex_model == {
        "soc-at-start": "2 kWh",
        "soc-min": "1.5 kWh",
        "soc-max": "8.5 kWh",
        "power-capacity": "3.7 kW",
        "consumption-capacity": "3.7 kW",
        "production-capacity": "0 kW",
        "soc-targets": [
            {"datetime": "2026-11-20T13:00:00+00:00", "value": "5 kWh"},
            {"datetime": "2026-11-20T16:00:00+00:00", "value": "8 kWh"},
        ],
        "roundtrip-efficiency": "81%",
        "storage-efficiency": "99.9%",
        "sensor": 20,
    }


async def test_get_schedule(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """get_schedule returns the status, and the plan once there is one."""
    assert await _call(hass, "get_schedule") == {
        "status": "idle",
        "failure_reason": None,
    }
    planned = await _call(hass, "trigger_schedule")
    assert await _call(hass, "get_schedule") == planned


@pytest.mark.parametrize(
    ("data", "translation_key"),
    [
        ({"soc_min": 80, "soc_max": 20}, "soc_min_above_max"),
        ({"soc_max": 120}, "soc_max_above_capacity"),
        ({"soc_at_start": 150}, "soc_at_start_out_of_range"),
        (
            {"soc_targets": [{"datetime": "2026-11-22T10:00:00+00:00", "value": 80}]},
            "target_outside_horizon",
        ),
        (
            {"soc_targets": [{"datetime": "2026-11-20T09:55:00+00:00", "value": 80}]},
            "target_outside_horizon",
        ),
        (
            {"soc_targets": [{"datetime": "2026-11-20T12:00:00+00:00", "value": 95}]},
            "target_outside_bounds",
        ),
        ({"duration": {"minutes": 5}}, "invalid_duration"),
        ({"duration": {"days": 8}}, "invalid_duration"),
    ],
)
async def test_trigger_validation_errors(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
    data: dict[str, Any],
    translation_key: str,
) -> None:
    """Inconsistent input is a translated validation error; nothing is posted."""
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "trigger_schedule", **data)
    assert err.value.translation_key == translation_key
    assert fake_scheduling.triggers == []


@pytest.mark.parametrize(
    ("state", "translation_key"),
    [
        (None, "soc_entity_unavailable"),
        ("unavailable", "soc_entity_unavailable"),
        ("unknown", "soc_entity_unavailable"),
        ("full", "soc_entity_not_numeric"),
    ],
)
async def test_trigger_soc_entity_unusable(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
    state: str | None,
    translation_key: str,
) -> None:
    """Without a usable SoC reading, soc_at_start must be given."""
    if state is None:
        hass.states.async_remove(SOC_ENTITY)
    else:
        hass.states.async_set(SOC_ENTITY, state)
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "trigger_schedule")
    assert err.value.translation_key == translation_key
    assert SOC_ENTITY in str(err.value.translation_placeholders)
    assert await _call(hass, "trigger_schedule", soc_at_start=40)


@pytest.mark.parametrize("service", ["trigger_schedule", "get_schedule"])
async def test_unknown_device(
    hass: HomeAssistant,
    init_battery: MockConfigEntry,
    service: str,
) -> None:
    """A device id that does not exist is refused."""
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            service,
            {"device_id": "nope"},
            blocking=True,
            return_response=True,
        )
    assert err.value.translation_key == "device_not_found"


@pytest.mark.parametrize(
    ("domain", "identifier"),
    [("other", ("other", "x")), (DOMAIN, (DOMAIN, "asset_10"))],
)
async def test_not_a_controlled_device(
    hass: HomeAssistant,
    device_registry: dr.DeviceRegistry,
    init_battery: MockConfigEntry,
    domain: str,
    identifier: tuple[str, str],
) -> None:
    """A device that is not a controlled device is refused."""
    entry = init_battery
    if domain != DOMAIN:
        entry = MockConfigEntry(domain=domain)
        entry.add_to_hass(hass)
    device = device_registry.async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={identifier}, name="Lamp"
    )
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "get_schedule",
            {"device_id": device.id},
            blocking=True,
            return_response=True,
        )
    assert err.value.translation_key == "not_a_controlled_device"
    assert err.value.translation_placeholders == {"device": "Lamp"}


async def test_entry_not_loaded(
    hass: HomeAssistant,
    init_battery: MockConfigEntry,
) -> None:
    """A controlled device of an unloaded entry is refused."""
    device_id = _device_id(hass)
    await hass.config_entries.async_unload(init_battery.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "trigger_schedule",
            {"device_id": device_id},
            blocking=True,
        )
    assert err.value.translation_key == "entry_not_loaded"


async def test_actions_exist_without_entries(hass: HomeAssistant) -> None:
    """The actions are registered once for the integration, not per entry."""
    assert await async_setup_component(hass, DOMAIN, {})
    assert hass.services.has_service(DOMAIN, "trigger_schedule")
    assert hass.services.has_service(DOMAIN, "get_schedule")
