"""Tests for the FlexMeasures actions."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
import json
from logging import ERROR
from pathlib import Path
import re
from typing import Any, Final
from unittest.mock import patch

from aiohttp import ClientConnectionError
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import (
    ConfigEntryState,
    ConfigSubentryData,
    ConfigSubentryDataWithId,
)
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from hypothesis import HealthCheck, given, settings, strategies as st
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from pytest_homeassistant_custom_component.test_util.aiohttp import (
    AiohttpClientMocker,
    AiohttpClientMockResponse,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion
from yarl import URL

from custom_components.flexmeasures.compat import vol
from custom_components.flexmeasures.const import DOMAIN, S2_CONTROL_TYPES
from custom_components.flexmeasures.scheduling import DeviceScheduler
from custom_components.flexmeasures.services import MAX_HISTORY

from .conftest import (
    BATTERY_DATA,
    BATTERY_SENSOR_ID,
    BATTERY_SUBENTRY_ID,
    ENTRY_DATA,
    POWER_ENTITY,
    SOC_ENTITY,
    UNIQUE_ID,
    FakeFlexMeasures,
    FakeScheduling,
    battery_device,
    find_device,
    link_subentry,
    posted,
    setup_entry,
)
from .s2_helpers import connect_frbc

pytestmark = pytest.mark.usefixtures("fast_polling")

NOW = datetime.fromisoformat("2026-11-20T10:05:00+00:00")
START = datetime.fromisoformat("2026-11-20T10:00:00+00:00")
# Measurement actions run a few days later, when the battery has a history.
MEASURED_AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KW = {"unit_of_measurement": "kW"}


@pytest.fixture(autouse=True)
def _frozen_now(request: pytest.FixtureRequest) -> None:
    """Start every test at NOW, before the integration is set up.

    Fuzz tests keep the real clock: their S2 connection needs time to pass.
    """
    if "fuzz_entry" not in request.fixturenames:
        request.getfixturevalue("freezer").move_to(NOW)


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
        ({"start": "2026-11-20T09:59:59+00:00"}, "start_in_past"),
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
    ("start", "planned_from"),
    [
        (None, "2026-11-20T10:00:00+00:00"),
        ("2026-11-20T10:00:00+00:00", "2026-11-20T10:00:00+00:00"),
        ("2026-11-20T10:14:59+00:00", "2026-11-20T10:00:00+00:00"),
        ("2026-11-20T10:20:00+00:00", "2026-11-20T10:15:00+00:00"),
    ],
)
async def test_trigger_start_is_a_slot_start(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
    start: str | None,
    planned_from: str,
) -> None:
    """A plan starts at the start of a slot: by default the current one (at 10:05)."""
    data: dict[str, Any] = {} if start is None else {"start": start}
    response = await _call(hass, "trigger_schedule", **data)
    assert fake_scheduling.triggers[0]["start"] == planned_from
    assert response["start"] == planned_from


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


async def _post_one_value(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Post one value to sensor 20 through the action."""
    await hass.services.async_call(
        DOMAIN,
        "post_measurements",
        {
            "config_entry": entry.entry_id,
            "sensor_id": 20,
            "start": MEASURED_AT.isoformat(),
            "resolution": "00:15:00",
            "values": [1],
        },
        blocking=True,
    )


async def test_measurements_entry_not_loaded(
    hass: HomeAssistant, linked: MockConfigEntry
) -> None:
    """An unloaded entry cannot take actions."""
    assert await hass.config_entries.async_unload(linked.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await _post_one_value(hass, linked)
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
        await _post_one_value(hass, linked)
    assert err.value.translation_key == translation_key


# --- Fuzzing: every action fed with hypothesis ---------------------------------

EXCEPTIONS: dict[str, dict[str, str]] = json.loads(
    (
        Path(__file__).parents[1] / "custom_components/flexmeasures/strings.json"
    ).read_text(encoding="utf-8")
)["exceptions"]
FUZZ: Final = settings(
    max_examples=500,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
UNLOADED_SUBENTRY_ID = "unloaded01subentry"
# What the server does during one example: answer, refuse, break or be away.
SERVER_FAILURES: Final[dict[str, tuple[int, Any] | Exception | None]] = {
    "ok": None,
    "rejected": (422, {"message": "Unprocessable entity", "status": 422}),
    "forbidden": (403, {"errors": ["You cannot do this"], "status": 403}),
    "unauthorized": (401, {"message": "Authentication failed", "status": 401}),
    "server_error": (500, {}),
    "down": ClientConnectionError("Connection refused"),
}

# Values of every kind, as JSON, YAML, templates or Python callers may send them.
_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(
        ["", "nan", "-inf", "1e400", "-1", "00:00:00", "🔋⚡", "x" * 100_000, "\x00"]
    ),
    st.datetimes(),
    st.timedeltas(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(
        st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3
    ),
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
_OFFSETS = st.none() | st.integers(-1439, 1439).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@dataclass(frozen=True)
class Field:
    """What a field takes: sensible values, and values at or past the edges."""

    good: st.SearchStrategy[Any]
    wide: st.SearchStrategy[Any]


NUMBER = Field(
    good=st.floats(min_value=0, max_value=100) | st.integers(0, 20),
    wide=st.floats() | st.sampled_from(["50", "inf", "1e400", 10**400, -(10**400)]),
)
DURATION = Field(
    good=st.integers(1, 48).map(lambda hours: {"hours": hours})
    | st.sampled_from(["00:15:00", "06:00:00"]),
    wide=st.one_of(
        st.sampled_from(["-00:15:00", "999999999:00:00", "P1D", "00:00:00"]),
        st.timedeltas(),
        st.integers(-(10**20), 10**20).map(lambda days: {"days": days}),
        st.floats().map(lambda minutes: {"minutes": minutes}),
        st.integers(-(10**20), 10**20),
    ),
)


def moment(base: datetime, minutes: int = 2 * 1440) -> Field:
    """Return times within ``minutes`` of ``base`` or anywhere; as text or datetime."""

    def near(minutes: int, tz: timezone | None) -> datetime:
        shifted = base + timedelta(minutes=minutes)
        return (
            shifted.astimezone(tz)
            if tz
            else dt_util.as_local(shifted).replace(tzinfo=None)
        )

    def shapes(value: datetime) -> st.SearchStrategy[Any]:
        return st.sampled_from([value, value.isoformat(), str(value)])

    def texts(value: datetime) -> st.SearchStrategy[Any]:
        # As text only: with debug logging, Home Assistant 2025.4's event bus
        # fails to show an aware datetime object that local time cannot hold.
        return st.sampled_from([value.isoformat(), str(value)])

    return Field(
        good=st.builds(near, st.integers(-minutes, minutes), _OFFSETS).flatmap(shapes),
        wide=st.datetimes(timezones=_OFFSETS).flatmap(texts),
    )


def _calls(
    required: dict[str, Field], optional: dict[str, Field]
) -> st.SearchStrategy[dict[str, Any]]:
    """Return action data: sensible, at the edges, hostile, or incomplete."""

    def pick(fields: dict[str, Field], kind: str) -> dict[str, st.SearchStrategy[Any]]:
        return {
            key: {
                "good": field.good,
                "edge": field.good | field.wide,
                "junk": field.good | field.wide | _JUNK,
            }[kind]
            for key, field in fields.items()
        }

    return st.one_of(
        st.fixed_dictionaries(pick(required, "good"), optional=pick(optional, "good")),
        st.fixed_dictionaries(pick(required, "good"), optional=pick(optional, "good")),
        st.fixed_dictionaries(pick(required, "edge"), optional=pick(optional, "edge")),
        st.fixed_dictionaries(
            pick(required, "junk"),
            optional={**pick(optional, "junk"), "unexpected": _JUNK},
        ),
        st.fixed_dictionaries({}, optional=pick({**required, **optional}, "junk")),
    )


def _assert_translated(err: HomeAssistantError) -> None:
    """Assert an error reaches the user as one of our translated messages."""
    assert err.translation_domain == DOMAIN, repr(err)
    assert err.translation_key in EXCEPTIONS, err.translation_key
    text = EXCEPTIONS[err.translation_key]["message"]
    needed = set(re.findall(r"\{(\w+)\}", text))
    assert needed <= set(err.translation_placeholders or {}), err.translation_key
    assert str(err)


@pytest.fixture
def server_failure(
    aioclient_mock: AiohttpClientMocker, fake_server: FakeFlexMeasures
) -> dict[str, str]:
    """Let a test make every request fail the way SERVER_FAILURES[mode] says."""
    mode = {"mode": "ok"}

    async def answer(method: str, url: URL, data: Any) -> AiohttpClientMockResponse:
        try:
            json.dumps(data, allow_nan=False)
        except ValueError:
            mode["non_finite"] = repr(data)  # JSON cannot carry inf or NaN
        failure = SERVER_FAILURES[mode["mode"]]
        if failure is None:
            return await fake_server(method, url, data)
        if isinstance(failure, Exception):
            raise failure
        status, body = failure
        return fake_server._respond(method.upper(), url, status, body)

    aioclient_mock.clear_requests()  # type: ignore[no-untyped-call]
    for method in ("get", "post", "patch", "delete"):
        aioclient_mock.request(  # type: ignore[no-untyped-call]
            method, re.compile(".*"), side_effect=answer
        )
    return mode


@pytest.fixture
async def fuzz_entry(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    device_registry: dr.DeviceRegistry,
    fake_scheduling: FakeScheduling,
    server_failure: dict[str, str],
) -> dict[str, Any]:
    """Set up an entry with every kind of target; return the ids the actions take.

    The loaded entry has the home battery (S2 on, a resource manager connected)
    and a measurement link; a second entry with a controlled device is not loaded.
    """
    fake_scheduling.server.responses["POST /api/v3_0/sensors/20/data"] = {
        "status": "PROCESSED"
    }
    battery = ConfigSubentryData(
        data={**BATTERY_DATA, "s2": {"s2_enabled": True}},
        subentry_type="controlled_device",
        title="Home battery",
        unique_id=f"controlled_device_{BATTERY_SENSOR_ID}",
    )
    loaded = MockConfigEntry(
        domain=DOMAIN,
        title="Loaded",
        unique_id=UNIQUE_ID,
        data=dict(ENTRY_DATA),
        version=1,
        subentries_data=[
            ConfigSubentryDataWithId(**battery, subentry_id=BATTERY_SUBENTRY_ID),
            link_subentry(),
        ],
    )
    hass.states.async_set(SOC_ENTITY, "50", {"unit_of_measurement": "%"})
    hass.states.async_set(POWER_ENTITY, "1", KW)
    await setup_entry(hass, loaded)
    await connect_frbc(hass, hass_client, loaded, BATTERY_SUBENTRY_ID)
    # Added after set-up, so it stays unloaded.
    unloaded = MockConfigEntry(
        domain=DOMAIN,
        title="Unloaded",
        unique_id="elsewhere",
        data=dict(ENTRY_DATA),
        version=1,
        subentries_data=[
            ConfigSubentryDataWithId(**battery, subentry_id=UNLOADED_SUBENTRY_ID)
        ],
    )
    unloaded.add_to_hass(hass)
    other = MockConfigEntry(domain="other")
    other.add_to_hass(hass)
    asset = find_device(hass, loaded.entry_id, (DOMAIN, f"{UNIQUE_ID}_asset_10"))
    assert asset is not None
    devices = [
        battery_device(hass).id,
        device_registry.async_get_or_create(
            config_entry_id=unloaded.entry_id,
            identifiers={(DOMAIN, f"controlled_device_{UNLOADED_SUBENTRY_ID}")},
        ).id,
        asset.id,
        device_registry.async_get_or_create(
            config_entry_id=other.entry_id, identifiers={("other", "lamp")}
        ).id,
        "no-such-device",
    ]
    return {
        "loaded": loaded,
        "devices": devices,
        "entries": [loaded.entry_id, unloaded.entry_id, other.entry_id, "nope"],
    }


async def _fuzz(
    hass: HomeAssistant,
    caplog: pytest.LogCaptureFixture,
    server_failure: dict[str, str],
    service: str,
    calls: st.SearchStrategy[dict[str, Any]],
    *,
    response: st.SearchStrategy[bool],
) -> Counter[str]:
    """Call an action with every drawn input while the server does what is drawn.

    Each call either succeeds, or fails with Home Assistant's schema error or one
    of our translated errors; nothing is logged at ERROR. Return how often each
    outcome (``succeeded``, ``invalid`` or a translation key) occurred.
    """
    outcomes: Counter[str] = Counter()

    async def example(data: dict[str, Any], mode: str, wants_response: bool) -> None:
        server_failure["mode"] = mode
        first = len(caplog.records)
        try:
            await hass.services.async_call(
                DOMAIN, service, data, blocking=True, return_response=wants_response
            )
        except vol.Invalid:
            outcomes["invalid"] += 1  # Home Assistant's schema error
        except HomeAssistantError as err:
            _assert_translated(err)
            outcomes[str(err.translation_key)] += 1
        else:
            outcomes["succeeded"] += 1
        # Rounds queued without a response finish on this loop, before the next.
        while any(scheduler.busy for scheduler in _schedulers(hass)):  # noqa: ASYNC110
            await asyncio.sleep(0)
        await hass.async_block_till_done()
        server_failure["mode"] = "ok"
        errors = [
            record for record in caplog.records[first:] if record.levelno >= ERROR
        ]
        assert not errors, [record.getMessage() for record in errors]
        assert "non_finite" not in server_failure, server_failure.pop("non_finite")

    @FUZZ
    @given(calls, st.sampled_from(list(SERVER_FAILURES)), response)
    def run(data: dict[str, Any], mode: str, wants_response: bool) -> None:
        asyncio.run_coroutine_threadsafe(
            example(data, mode, wants_response), hass.loop
        ).result(timeout=60)

    await hass.async_add_executor_job(run)
    return outcomes


def _schedulers(hass: HomeAssistant) -> list[DeviceScheduler]:
    """Return the schedulers of every loaded entry."""
    return [
        scheduler
        for entry in hass.config_entries.async_entries(DOMAIN)
        if entry.state is ConfigEntryState.LOADED
        for scheduler in entry.runtime_data.schedulers.values()
    ]


def _device_fields(now: datetime) -> dict[str, dict[str, Field]]:
    """Return the optional fields of each device action."""
    targets = st.fixed_dictionaries(
        {
            "datetime": moment(now + timedelta(hours=6), minutes=6 * 60).good,
            "value": NUMBER.good,
        }
    )
    model = st.dictionaries(st.text(max_size=20), _JSON, max_size=3)
    return {
        "trigger_schedule": {
            "start": moment(now, minutes=60),
            "duration": DURATION,
            "soc_at_start": NUMBER,
            "soc_targets": Field(
                good=st.lists(targets, max_size=3),
                wide=st.lists(targets | _JUNK, max_size=3),
            ),
            "soc_min": NUMBER,
            "soc_max": NUMBER,
            "charge_power": NUMBER,
            "discharge_power": NUMBER,
            "flex_model": Field(good=model, wide=_JSON),
            "flex_context": Field(good=model, wide=_JSON),
            "force": Field(good=st.booleans(), wide=_JUNK),
        },
        "get_schedule": {},
        "s2_set_control_type": {},
    }


@pytest.mark.parametrize(
    ("service", "response"),
    [
        ("trigger_schedule", st.booleans()),
        ("get_schedule", st.just(True)),
        ("s2_set_control_type", st.just(False)),
    ],
)
async def test_fuzz_device_actions(
    hass: HomeAssistant,
    caplog: pytest.LogCaptureFixture,
    server_failure: dict[str, str],
    fuzz_entry: dict[str, Any],
    service: str,
    response: st.SearchStrategy[bool],
) -> None:
    """Any input to a device action succeeds or fails with a translated error."""
    battery, *others = fuzz_entry["devices"]
    required = {
        "device_id": Field(
            good=st.just(battery), wide=st.sampled_from(others) | st.text(max_size=40)
        )
    }
    if service == "s2_set_control_type":
        required["control_type"] = Field(
            good=st.sampled_from(S2_CONTROL_TYPES), wide=st.text(max_size=30)
        )
    outcomes = await _fuzz(
        hass,
        caplog,
        server_failure,
        service,
        _calls(required, _device_fields(dt_util.utcnow())[service]),
        response=response,
    )
    _assert_explored(outcomes)


@pytest.mark.usefixtures("recorder_mock")
@pytest.mark.parametrize(
    ("service", "response"),
    [("upload_history", st.booleans()), ("post_measurements", st.just(False))],
)
async def test_fuzz_entry_actions(
    hass: HomeAssistant,
    caplog: pytest.LogCaptureFixture,
    server_failure: dict[str, str],
    fuzz_entry: dict[str, Any],
    service: str,
    response: st.SearchStrategy[bool],
) -> None:
    """Any input to a measurement action succeeds or fails with a translated error."""
    loaded, *others = fuzz_entry["entries"]
    now = dt_util.utcnow()
    required = {
        "config_entry": Field(
            good=st.just(loaded), wide=st.sampled_from(others) | st.text(max_size=40)
        )
    }
    optional: dict[str, Field]
    if service == "upload_history":
        required |= {
            "entity_id": Field(
                good=st.just(POWER_ENTITY),
                wide=st.sampled_from([SOC_ENTITY, "sensor.nope", "nope"]),
            ),
            "start": moment(now - timedelta(days=1)),
        }
        optional = {"end": moment(now)}
    else:
        required |= {
            "sensor_id": Field(good=st.just(20), wide=st.integers() | st.just(30)),
            "start": moment(now),
            "values": Field(
                good=st.lists(NUMBER.good, min_size=1, max_size=5),
                wide=st.lists(NUMBER.good | NUMBER.wide, max_size=5) | NUMBER.wide,
            ),
            # One of the two is needed: the resolution, or the duration instead.
            "resolution": DURATION,
        }
        optional = {
            "duration": DURATION,
            "unit": Field(
                good=st.sampled_from(["kW", "W", "MW"]),
                wide=st.sampled_from(["°C", "", "kWh", "🔋"]),
            ),
        }
    with patch("custom_components.flexmeasures.uploader.HISTORY_CHUNK", MAX_HISTORY):
        outcomes = await _fuzz(
            hass,
            caplog,
            server_failure,
            service,
            _calls(required, optional),
            response=response,
        )
    _assert_explored(outcomes)


def _assert_explored(outcomes: Counter[str]) -> None:
    """Assert the examples got past the schema: some succeeded, some were refused."""
    print(outcomes)  # noqa: T201 - shown with -s: how deep the fuzzing reaches
    assert outcomes["succeeded"] > 0
    assert outcomes["invalid"] > 0
    assert sum(outcomes.values()) - outcomes["succeeded"] - outcomes["invalid"] > 0


@pytest.mark.parametrize(
    ("service", "data"),
    [
        ("trigger_schedule", {"soc_at_start": 10**400}),
        ("trigger_schedule", {"charge_power": "inf"}),
        ("trigger_schedule", {"duration": {"days": 10**10}}),
        ("trigger_schedule", {"soc_targets": [{"datetime": NOW, "value": 1e400}]}),
        ("trigger_schedule", {"flex_context": {"price": float("inf")}}),
        ("trigger_schedule", {"flex_model": {"at": NOW}}),
        ("trigger_schedule", {"flex_model": ["not", "an", "object"]}),
        ("post_measurements", {"values": [1.0, float("nan")]}),
        ("post_measurements", {"values": ["-inf"]}),
        ("post_measurements", {"sensor_id": float("inf")}),
        ("post_measurements", {"resolution": 10**20}),
    ],
)
async def test_out_of_range_numbers_are_invalid(
    hass: HomeAssistant, init_integration: MockConfigEntry, service: str, data: Any
) -> None:
    """Huge, infinite and NaN numbers are schema errors, never a crash or a post."""
    base: dict[str, Any] = (
        {"device_id": "x"}
        if service == "trigger_schedule"
        else {
            "config_entry": init_integration.entry_id,
            "sensor_id": 20,
            "start": NOW,
            "resolution": "00:15:00",
            "values": [1],
        }
    )
    with pytest.raises(vol.Invalid):
        await hass.services.async_call(DOMAIN, service, {**base, **data}, blocking=True)
