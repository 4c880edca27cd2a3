"""Tests for the FlexMeasures actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

from aiohttp import ClientConnectionError
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.flexmeasures.const import DOMAIN

from .conftest import (
    BATTERY_SUBENTRY_ID,
    POWER_ENTITY,
    SOC_ENTITY,
    FakeFlexMeasures,
    FakeScheduling,
    battery_device,
    posted,
)

pytestmark = pytest.mark.usefixtures("fast_polling")

NOW = datetime.fromisoformat("2026-11-20T09:50:00+00:00")
START = datetime.fromisoformat("2026-11-20T10:00:00+00:00")
# Measurement actions run a few days later, when the battery has a history.
MEASURED_AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KW = {"unit_of_measurement": "kW"}


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(request: pytest.FixtureRequest) -> None:
    """Enable the integration; start the recorder before Home Assistant if asked."""
    if "recorder_mock" in request.fixturenames:
        request.getfixturevalue("recorder_mock")
    request.getfixturevalue("enable_custom_integrations")


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


# --- Measurements: upload_history and post_measurements ------------------------


@pytest.fixture
async def linked(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, linked_entry: MockConfigEntry
) -> MockConfigEntry:
    """Return the loaded entry with its battery power link, set up at MEASURED_AT."""
    freezer.move_to(MEASURED_AT)
    hass.states.async_set(POWER_ENTITY, "1", KW)
    linked_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(linked_entry.entry_id)
    await hass.async_block_till_done()
    return linked_entry


@pytest.mark.usefixtures("recorder_mock")
async def test_upload_history(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
) -> None:
    """The recorded history is aggregated, queued and sent in order."""
    history = ((0, "1"), (5, "3"), (15, "5"), (20, "unavailable"), (40, "2"))
    for minute, value in history:
        freezer.move_to(MEASURED_AT + timedelta(minutes=minute))
        hass.states.async_set(POWER_ENTITY, value, KW)
        await async_wait_recording_done(hass)
    # The link is added a day later.
    freezer.move_to(MEASURED_AT + timedelta(days=1))
    linked_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(linked_entry.entry_id)
    await hass.async_block_till_done()

    response = await hass.services.async_call(
        DOMAIN,
        "upload_history",
        {
            "config_entry": linked_entry.entry_id,
            "entity_id": POWER_ENTITY,
            "start": MEASURED_AT.isoformat(),
            "end": (MEASURED_AT + timedelta(hours=1, minutes=5)).isoformat(),
        },
        blocking=True,
        return_response=True,
    )
    assert response == {"queued": {"20": 4}, "pending": 0}
    (body,) = posted(fake_server, 20)
    assert body["start"] == MEASURED_AT.isoformat()
    # 1 kW for 5 minutes then 3 kW; 5 kW, then a gap; 2 kW from 12:40 on.
    assert body["values"] == pytest.approx([(5 + 30) / 15, 5.0, 2.0, 2.0])
    assert linked_entry.runtime_data.uploader.history_progress is None


@pytest.mark.parametrize(
    ("data", "translation_key"),
    [
        ({"config_entry": "nope"}, "entry_not_found"),
        ({"entity_id": "sensor.other"}, "link_not_found"),
        ({"start": "2026-11-26T13:00:00+00:00"}, "invalid_period"),
        ({"start": "2026-05-01T00:00:00+00:00"}, "period_too_long"),
        ({"recorder": False}, "recorder_not_available"),
    ],
)
@pytest.mark.usefixtures("recorder_mock")
async def test_upload_history_validation(
    hass: HomeAssistant,
    linked: MockConfigEntry,
    data: dict[str, Any],
    translation_key: str,
) -> None:
    """Bad input is refused with a translated reason."""
    components = set(hass.config.components)
    if data.pop("recorder", True) is False:
        components.discard("recorder")
    call = {
        "config_entry": linked.entry_id,
        "entity_id": POWER_ENTITY,
        "start": "2026-11-26T10:00:00+00:00",
        "end": "2026-11-26T12:00:00+00:00",
        **data,
    }
    with (
        patch.object(hass.config, "components", components),
        pytest.raises(ServiceValidationError) as err,
    ):
        await hass.services.async_call(
            DOMAIN, "upload_history", call, blocking=True, return_response=True
        )
    assert err.value.translation_key == translation_key


async def test_measurements_entry_not_loaded(
    hass: HomeAssistant, linked: MockConfigEntry
) -> None:
    """An unloaded entry cannot take actions."""
    assert await hass.config_entries.async_unload(linked.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "post_measurements",
            {
                "config_entry": linked.entry_id,
                "sensor_id": 20,
                "start": MEASURED_AT.isoformat(),
                "resolution": "00:15:00",
                "values": [1],
            },
            blocking=True,
        )
    assert err.value.translation_key == "entry_not_loaded"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"resolution": "00:15:00", "values": [1, 2.5]},
            {"duration": timedelta(minutes=30), "values": [1.0, 2.5], "unit": "kW"},
        ),
        (
            {"duration": {"hours": 1}, "values": [1, 2, 3, 4], "unit": "W"},
            {"duration": timedelta(hours=1), "values": [1, 2, 3, 4], "unit": "W"},
        ),
        (
            {"resolution": 0, "values": 7},
            {"duration": timedelta(0), "values": [7.0], "unit": "kW"},
        ),
    ],
)
async def test_post_measurements(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    linked: MockConfigEntry,
    data: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    """Values are posted as given; a time without offset is local time."""
    await hass.config.async_set_time_zone("Europe/Amsterdam")
    await hass.services.async_call(
        DOMAIN,
        "post_measurements",
        {
            "config_entry": linked.entry_id,
            "sensor_id": 20,
            "start": "2026-11-26 13:00:00",
            **data,
        },
        blocking=True,
    )
    (body,) = posted(fake_server, 20)
    assert datetime.fromisoformat(body["start"]) == MEASURED_AT
    assert dt_util.parse_duration(body["duration"]) == expected["duration"]
    assert body["values"] == expected["values"]
    assert body["unit"] == expected["unit"]


@pytest.mark.parametrize(
    ("data", "translation_key"),
    [
        ({"sensor_id": 99}, "unknown_sensor"),
        ({"unit": "°C"}, "incompatible_unit"),
        ({"resolution": None}, "resolution_or_duration"),
        ({"duration": "01:00:00"}, "resolution_or_duration"),
        ({"resolution": 0}, "invalid_resolution"),
        ({"resolution": "-00:15:00"}, "invalid_resolution"),
    ],
)
async def test_post_measurements_validation(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    linked: MockConfigEntry,
    data: dict[str, Any],
    translation_key: str,
) -> None:
    """Bad input is refused with a translated reason and nothing is sent."""
    call = {
        "config_entry": linked.entry_id,
        "sensor_id": 20,
        "start": MEASURED_AT.isoformat(),
        "resolution": "00:15:00",
        "values": [1, 2],
        **data,
    }
    call = {key: value for key, value in call.items() if value is not None}
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "post_measurements", call, blocking=True)
    assert err.value.translation_key == translation_key
    assert posted(fake_server, 20) == []


@pytest.mark.parametrize(
    ("failure", "translation_key"),
    [
        ({"status": 422}, "post_rejected"),
        ({"error": ClientConnectionError("refused")}, "communication_error"),
    ],
)
async def test_post_measurements_server_errors(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    linked: MockConfigEntry,
    failure: dict[str, Any],
    translation_key: str,
) -> None:
    """Server failures become translated errors without a traceback."""
    path = "POST /api/v3_0/sensors/20/data"
    if "status" in failure:
        fake_server.statuses[path] = failure["status"]
        fake_server.responses[path] = {"message": "Unit mismatch", "status": 422}
    else:
        fake_server.errors[path] = failure["error"]
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN,
            "post_measurements",
            {
                "config_entry": linked.entry_id,
                "sensor_id": 20,
                "start": MEASURED_AT.isoformat(),
                "resolution": "00:15:00",
                "values": [1],
            },
            blocking=True,
        )
    assert err.value.translation_key == translation_key
