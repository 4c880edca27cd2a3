"""Tests for S2: a real resource manager client against Home Assistant's HTTP server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
import json
import logging
import math
from typing import Any
import uuid

from aiohttp import ClientConnectionError, WSMsgType, WSServerHandshakeError
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from s2python.common import (
    CommodityQuantity,
    Duration,
    EnergyManagementRole,
    Handshake,
    NumberRange,
    PowerMeasurement,
    PowerValue,
    ReceptionStatus,
    ReceptionStatusValues,
)
from s2python.frbc import (
    FRBCActuatorStatus,
    FRBCFillLevelTargetProfile,
    FRBCFillLevelTargetProfileElement,
    FRBCLeakageBehaviour,
    FRBCLeakageBehaviourElement,
    FRBCStorageStatus,
    FRBCSystemDescription,
    FRBCUsageForecast,
    FRBCUsageForecastElement,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.flexmeasures.compat import vol
from custom_components.flexmeasures.const import (
    CONF_S2,
    CONF_S2_ACTUATOR_STATUS_SENSOR,
    CONF_S2_ENABLED,
    CONF_S2_FILL_LEVEL_SENSOR,
    CONF_S2_POWER_SENSOR,
    CONF_S2_USAGE_FORECAST_SENSOR,
    DOMAIN,
    EVENT_SCHEDULE_UPDATED,
)
from custom_components.flexmeasures.identity import controlled_device_identifier
from custom_components.flexmeasures.s2 import (
    MAX_MESSAGE_SIZE,
    S2DeviceConfig,
    S2PlanSlot,
    async_get_s2_diagnostics,
    plan_slots,
    s2_path,
)
from custom_components.flexmeasures.s2.session import _power_limits_kw
from custom_components.flexmeasures.scheduling import (
    RETRY_FIRST,
    FailureReason,
    Schedule,
    ScheduleStatus,
    simulate_soc,
)

from . import s2_helpers
from .conftest import (
    BATTERY_ASSET_ID,
    PASSWORD,
    FakeFlexMeasures,
    FakeScheduling,
    entity_snapshot,
    find_device,
    job_id,
)
from .s2_helpers import (
    ACTUATOR_STATUS_SENSOR,
    FILL_LEVEL_SENSOR,
    POWER_SENSOR,
    SCHEDULE_SENSOR,
    USAGE_FORECAST_SENSOR,
    as_plan,
    battery_scheduler,
    connect,
    connect_frbc,
    entity_id,
    expected_instructions,
    new_id,
    plan_of,
    posts,
    received_instructions,
    storage_description,
    wait_for,
)

# Logs at debug level, asserted free of the password, token and e-mail.
pytestmark = pytest.mark.usefixtures("no_secrets_logged")

# The S2 entry's fixtures (s2_integration sets up this mock_config_entry,
# not the one of conftest.py).
fake_s2_server = s2_helpers.fake_s2_server
mock_config_entry = s2_helpers.mock_config_entry
s2_integration = s2_helpers.s2_integration

type Reported = (
    FRBCActuatorStatus
    | FRBCFillLevelTargetProfile
    | FRBCLeakageBehaviour
    | FRBCStorageStatus
    | FRBCSystemDescription
    | FRBCUsageForecast
    | PowerMeasurement
)

MESSAGE_ID = "5c3d7f1e-8f5b-4a7e-9d3c-2b1a0f9e8d7c"


def device_of(hass: HomeAssistant, subentry_id: str) -> str:
    """Return the device id of a controlled device's S2 entities."""
    entry = er.async_get(hass).async_get(
        entity_id(hass, "binary_sensor", f"{subentry_id}_s2_connected")
    )
    assert entry is not None
    assert entry.device_id is not None
    return entry.device_id


# --- Configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, S2DeviceConfig(subentry_id="s", name="n", enabled=False)),
        (
            {"power_sensor": 22, CONF_S2: None},
            S2DeviceConfig(
                subentry_id="s", name="n", enabled=False, schedule_sensor=22
            ),
        ),
        (
            {CONF_S2: {CONF_S2_ENABLED: True, CONF_S2_POWER_SENSOR: "20"}},
            S2DeviceConfig(subentry_id="s", name="n", enabled=True, power_sensor=20),
        ),
        (
            {
                "power_sensor": True,
                CONF_S2: {
                    CONF_S2_ENABLED: True,
                    CONF_S2_POWER_SENSOR: "",
                    CONF_S2_FILL_LEVEL_SENSOR: "abc",
                    CONF_S2_USAGE_FORECAST_SENSOR: None,
                    CONF_S2_ACTUATOR_STATUS_SENSOR: [1],
                },
            },
            S2DeviceConfig(subentry_id="s", name="n", enabled=True),
        ),
    ],
)
def test_device_config_from_subentry_data(
    data: dict[str, Any], expected: S2DeviceConfig
) -> None:
    """Subentry data is read leniently: unset or unusable sensor ids become None."""
    assert (
        S2DeviceConfig.from_subentry_data(data, subentry_id="s", name="n") == expected
    )


async def test_entities(
    hass: HomeAssistant,
    s2_integration: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """S2-enabled controlled devices get the S2 entities, on their own device."""
    assert entity_snapshot(hass, s2_integration.entry_id) == snapshot
    s2_entities = [
        entity
        for entity in er.async_entries_for_config_entry(
            er.async_get(hass), s2_integration.entry_id
        )
        if (entity.translation_key or "").startswith("s2_")
    ]
    assert sorted({str(entity.config_subentry_id) for entity in s2_entities}) == [
        "battery",
        "heat_pump",
    ]
    # The last-instruction time is a diagnostic, disabled until the user wants it.
    assert {entity.translation_key for entity in s2_entities if entity.disabled_by} == {
        "s2_last_instruction"
    }
    for entity in s2_entities:
        device = dr.async_get(hass).async_get(entity.device_id or "")
        assert device is not None
        assert entity.config_subentry_id is not None
        assert entity.unique_id.startswith(entity.config_subentry_id)
        assert (
            DOMAIN,
            f"controlled_device_{entity.config_subentry_id}",
        ) in device.identifiers


# --- Authentication -----------------------------------------------------------------


async def test_refused_without_token(
    hass: HomeAssistant,
    hass_client_no_auth: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
) -> None:
    """Nobody connects without an access token."""
    client = await hass_client_no_auth()
    with pytest.raises(WSServerHandshakeError) as err:
        await client.ws_connect(s2_path(s2_integration.entry_id, "battery"))
    assert err.value.status == 401
    assert not s2_integration.runtime_data.s2.status["battery"].connected


@pytest.mark.parametrize("token", ["not-a-token", "Bearer", ""])
async def test_refused_with_invalid_token(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
    token: str,
) -> None:
    """An invalid token is refused like no token."""
    client = await hass_client(token)
    with pytest.raises(WSServerHandshakeError) as err:
        await client.ws_connect(s2_path(s2_integration.entry_id, "battery"))
    assert err.value.status == 401


async def test_refused_for_non_admin(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    hass_read_only_access_token: str,
    s2_integration: MockConfigEntry,
) -> None:
    """Only administrators' tokens may connect a resource manager."""
    client = await hass_client(hass_read_only_access_token)
    with pytest.raises(WSServerHandshakeError) as err:
        await client.ws_connect(s2_path(s2_integration.entry_id, "battery"))
    assert err.value.status == 401


@pytest.mark.parametrize(
    "path",
    [
        s2_path("no-such-entry", "battery"),
        "{entry_id}/unknown",
        "{entry_id}/charger",
    ],
)
async def test_unknown_device(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
    path: str,
) -> None:
    """Unknown entries, unknown devices and devices without S2 are not found."""
    if path.startswith("{entry_id}"):
        path = s2_path(s2_integration.entry_id, path.split("/")[1])
    client = await hass_client()
    with pytest.raises(WSServerHandshakeError) as err:
        await client.ws_connect(path)
    assert err.value.status == 404


async def test_not_loaded_entry(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
) -> None:
    """An unloaded entry accepts no connections."""
    assert await hass.config_entries.async_unload(s2_integration.entry_id)
    client = await hass_client()
    with pytest.raises(WSServerHandshakeError) as err:
        await client.ws_connect(s2_path(s2_integration.entry_id, "battery"))
    assert err.value.status == 404


# --- The S2 conversation ------------------------------------------------------------


async def test_handshake_and_frbc(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
) -> None:
    """The CEM answers the handshake, selects FRBC, and the entities follow."""
    connected = entity_id(hass, "binary_sensor", "battery_s2_connected")
    control_type = entity_id(hass, "sensor", "battery_s2_control_type")
    assert hass.states.get(connected).state == STATE_OFF  # type: ignore[union-attr]

    rm = await connect(hass, hass_client, s2_integration)
    response = await rm.handshake()
    assert response["selected_protocol_version"] == "0.0.2-beta"
    assert rm.received[0]["message_type"] == "ReceptionStatus"
    assert rm.received[0]["status"] == "OK"
    await wait_for(lambda: hass.states.get(connected).state == STATE_ON)  # type: ignore[union-attr]
    assert hass.states.get(control_type).state == STATE_UNKNOWN  # type: ignore[union-attr]

    select = await rm.introduce()
    assert select["control_type"] == "FILL_RATE_BASED_CONTROL"
    await wait_for(
        lambda: (
            hass.states.get(control_type).state  # type: ignore[union-attr]
            == "fill_rate_based_control"
        )
    )

    # The FRBC handler now takes FRBC messages.
    status_id = new_id()
    await rm.send(FRBCStorageStatus(message_id=status_id, present_fill_level=4.0))
    assert (await rm.expect_status(status_id))["status"] == "OK"

    diagnostics = async_get_s2_diagnostics(s2_integration)
    battery = diagnostics["devices"]["battery"]
    assert battery["connected"] is True
    assert battery["control_type"] == "fill_rate_based_control"
    assert battery["resource_manager"]["manufacturer"] == "Acme"
    assert battery["resource_manager"]["control_types"] == [
        "fill_rate_based_control",
        "no_selection",
    ]
    assert diagnostics["devices"]["heat_pump"]["resource_manager"] is None
    text = json.dumps(diagnostics)
    assert "SN-SECRET-123" not in text
    assert PASSWORD not in text

    await rm.ws.close()
    await wait_for(lambda: hass.states.get(connected).state == STATE_OFF)  # type: ignore[union-attr]
    assert hass.states.get(control_type).state == STATE_UNKNOWN  # type: ignore[union-attr]


async def test_power_measurement_reaches_flexmeasures(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
    fake_s2_server: FakeFlexMeasures,
) -> None:
    """Power is averaged per sensor slot and posted in kW when the slot is over."""
    rm = await connect(hass, hass_client, s2_integration)
    await rm.handshake()
    slot = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    measurements = [
        (
            slot + timedelta(minutes=1),
            [
                (CommodityQuantity.ELECTRIC_POWER_L1, 1000.0),
                (CommodityQuantity.ELECTRIC_POWER_L2, 1000.0),
                (CommodityQuantity.ELECTRIC_POWER_L3, 1000.0),
            ],
        ),
        (
            slot + timedelta(minutes=7),
            [(CommodityQuantity.ELECTRIC_POWER_3_PHASE_SYMMETRIC, 6000.0)],
        ),
        # Not electric power: ignored.
        (slot + timedelta(minutes=8), [(CommodityQuantity.HEAT_TEMPERATURE, 60.0)]),
        # Late sample for an earlier slot: ignored.
        (
            slot - timedelta(minutes=1),
            [(CommodityQuantity.ELECTRIC_POWER_3_PHASE_SYMMETRIC, 9999.0)],
        ),
        # The next slot starts: the first one is posted.
        (
            slot + timedelta(minutes=16),
            [(CommodityQuantity.ELECTRIC_POWER_3_PHASE_SYMMETRIC, -2000.0)],
        ),
    ]
    for timestamp, values in measurements:
        message_id = new_id()
        await rm.send(
            PowerMeasurement(
                message_id=message_id,
                measurement_timestamp=timestamp,
                values=[
                    PowerValue(commodity_quantity=quantity, value=value)
                    for quantity, value in values
                ],
            )
        )
        assert (await rm.expect_status(message_id))["status"] == "OK"

    await wait_for(lambda: len(posts(fake_s2_server, POWER_SENSOR)) == 1)
    (payload,) = posts(fake_s2_server, POWER_SENSOR)
    assert payload["values"] == [4.5]
    assert payload["unit"] == "kW"
    assert dt_util.parse_duration(payload["duration"]) == timedelta(minutes=15)
    assert datetime.fromisoformat(payload["start"]) == slot


@pytest.mark.usefixtures("entity_registry_enabled_by_default", "pandas_off_the_loop")
async def test_description_is_planned_by_the_device_scheduler(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
    fake_scheduling: FakeScheduling,
) -> None:
    """A described storage is a normal round of the device's scheduler.

    The job is waited for, the plan kept and announced; the resource manager
    gets instructions whose factors put each slot's planned power on its range.
    """
    last_instruction = entity_id(hass, "sensor", "battery_s2_last_instruction")
    assert hass.states.get(last_instruction).state == STATE_UNKNOWN  # type: ignore[union-attr]
    events = async_capture_events(hass, EVENT_SCHEDULE_UPDATED)
    fake_scheduling.pending_polls = 3
    rm = await connect_frbc(hass, hass_client, s2_integration)

    # Described before the fill level is known: planned once it is. The device
    # reports less than the subentry allows (1-9 kWh, 5 kW): that narrows the plan.
    power = (-3000.0, 4000.0)
    description = storage_description(dt_util.utcnow(), power=power, fill_level=(2, 8))
    await rm.send(description)
    assert (await rm.expect_status(str(description.message_id)))["status"] == "OK"
    assert fake_scheduling.triggers == []
    await rm.send(FRBCStorageStatus(message_id=new_id(), present_fill_level=4.0))

    schedule = await plan_of(s2_integration, job_id(1))
    expected = expected_instructions(schedule, power, dt_util.utcnow())
    instructions = await received_instructions(rm, len(expected))
    assert as_plan(instructions) == expected
    actuator = description.actuators[0]
    assert {item["actuator_id"] for item in instructions} == {str(actuator.id)}
    assert {item["operation_mode"] for item in instructions} == {
        str(actuator.operation_modes[0].id)
    }

    # One trigger, by the scheduler, with what the resource manager reported.
    assert len(fake_scheduling.triggers) == 1
    model = fake_scheduling.last_flex_model
    assert model["sensor"] == SCHEDULE_SENSOR
    assert model["soc-at-start"] == "4 kWh"
    assert (model["soc-min"], model["soc-max"]) == ("2 kWh", "8 kWh")
    assert model["consumption-capacity"] == "4 kW"
    assert model["production-capacity"] == "3 kW"
    # The scheduler waited for the job (3 polls still running) and announced it.
    assert fake_scheduling.polls[job_id(1)] == 4
    scheduler = battery_scheduler(s2_integration)
    assert scheduler.status is ScheduleStatus.READY
    assert [event.data["start"] for event in events] == [schedule.start.isoformat()]
    await wait_for(
        lambda: hass.states.get(last_instruction).state != STATE_UNKNOWN  # type: ignore[union-attr]
    )


@pytest.mark.usefixtures("pandas_off_the_loop")
async def test_trigger_schedule_action_reaches_the_resource_manager(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
    fake_scheduling: FakeScheduling,
) -> None:
    """A plan from the action replaces the instructions of the plan before it."""
    rm = await connect_frbc(hass, hass_client, s2_integration)
    power = (-5000.0, 5000.0)
    await rm.send(storage_description(dt_util.utcnow()))
    await rm.send(FRBCStorageStatus(message_id=new_id(), present_fill_level=4.0))
    first = await plan_of(s2_integration, job_id(1))
    before = await received_instructions(
        rm, len(expected_instructions(first, power, dt_util.utcnow()))
    )

    fake_scheduling.values = [1.0, 3.0, 3.0, -2.0, 0.5]
    hass.states.async_set("sensor.s2_soc", "40", {"unit_of_measurement": "%"})
    target_at = first.start + timedelta(hours=2)
    await hass.services.async_call(
        DOMAIN,
        "trigger_schedule",
        {
            "device_id": device_of(hass, "battery"),
            "soc_targets": [{"datetime": target_at.isoformat(), "value": 80}],
        },
        blocking=True,
        return_response=True,
    )
    second = await plan_of(s2_integration, job_id(2))
    assert fake_scheduling.last_flex_model["soc-targets"] == [
        {"datetime": target_at.isoformat(), "value": "8 kWh"}
    ]
    # Instructions that have started (the slot in progress) stay; later ones go.
    started = dt_util.utcnow()
    ahead = [
        item
        for item in before
        if datetime.fromisoformat(item["execution_time"]) > started
    ]
    assert 0 < len(ahead) < len(before)
    revoked = [await rm.expect("RevokeObject") for _ in ahead]
    assert {item["object_id"] for item in revoked} == {item["id"] for item in ahead}
    assert {item["object_type"] for item in revoked} == {"FRBC.Instruction"}
    expected = expected_instructions(second, power, dt_util.utcnow())
    assert as_plan(await received_instructions(rm, len(expected))) == expected

    # A storage status alone plans nothing: the plan stays the action's.
    await rm.send(FRBCStorageStatus(message_id=new_id(), present_fill_level=5.0))
    assert (await rm.handshake())["message_type"] == "HandshakeResponse"
    assert len(fake_scheduling.triggers) == 2


@pytest.mark.usefixtures("pandas_off_the_loop")
async def test_connect_with_a_plan_from_before_a_restart(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    hass_client: ClientSessionGenerator,
    fake_s2_server: FakeFlexMeasures,
    fake_scheduling: FakeScheduling,
    mock_config_entry: MockConfigEntry,
) -> None:
    """A resource manager that connects gets instructions for the rest of the plan.

    The plan began an hour ago: ended slots are left out, the slot in progress
    is carried out from now on.
    """
    now = dt_util.utcnow()
    resolution = timedelta(minutes=15)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    pattern = (4.0, -4.0, 2.0, 2.0, 1.0, 1.0, 0.0, -1.0, -1.0, 0.0)
    slots = int((now - start) / resolution) + len(pattern) - 6
    values = (pattern * 3)[:slots]
    stored = Schedule(
        job_id="stored-job",
        start=start,
        resolution=resolution,
        values=values,
        soc_at_start_kwh=5.0,
        soc=tuple(simulate_soc(5.0, values, resolution)),
        targets=(),
        computed_at=start,
    )
    key = f"{DOMAIN}.schedule.battery"
    hass_storage[key] = {
        "version": 1,
        "minor_version": 2,
        "key": key,
        "data": {"schedule": stored.as_dict(), "pending_job": None},
    }
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()

    rm = await connect_frbc(hass, hass_client, mock_config_entry)
    power = (-5000.0, 5000.0)
    await rm.send(storage_description(now))
    connected_at = dt_util.utcnow()
    instructions = await received_instructions(
        rm, len(expected_instructions(stored, power, connected_at))
    )
    received = as_plan(instructions)
    # The first one is for the slot in progress, from the moment it was sent.
    assert connected_at <= received[0][0] <= dt_util.utcnow()
    assert received[1:] == expected_instructions(stored, power, connected_at)[1:]
    assert fake_scheduling.triggers == []


@pytest.mark.usefixtures("pandas_off_the_loop")
async def test_frbc_data_reaches_flexmeasures(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
    fake_s2_server: FakeFlexMeasures,
) -> None:
    """Fill level, usage forecast and actuator status are posted to their sensors."""
    rm = await connect_frbc(hass, hass_client, s2_integration)
    start = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    description = storage_description(start)
    messages: list[Reported] = [
        FRBCStorageStatus(message_id=new_id(), present_fill_level=4.0),
        FRBCUsageForecast(
            message_id=new_id(),
            start_time=start,
            elements=[
                FRBCUsageForecastElement(
                    duration=Duration.from_milliseconds(3_600_000),
                    usage_rate_expected=0.001,
                ),
                FRBCUsageForecastElement(
                    duration=Duration.from_milliseconds(3_600_000),
                    usage_rate_expected=0.002,
                ),
            ],
        ),
        FRBCActuatorStatus(
            message_id=new_id(),
            actuator_id=description.actuators[0].id,
            active_operation_mode_id=description.actuators[0].operation_modes[0].id,
            operation_mode_factor=0.75,
            transition_timestamp=start + timedelta(minutes=7),
        ),
        FRBCLeakageBehaviour(
            message_id=new_id(),
            valid_from=start,
            elements=[
                FRBCLeakageBehaviourElement(
                    fill_level_range=NumberRange(start_of_range=0, end_of_range=10),
                    leakage_rate=0.0,
                )
            ],
        ),
        FRBCFillLevelTargetProfile(
            message_id=new_id(),
            start_time=start,
            elements=[
                FRBCFillLevelTargetProfileElement(
                    duration=Duration.from_milliseconds(3_600_000),
                    fill_level_range=NumberRange(start_of_range=8, end_of_range=9),
                )
            ],
        ),
    ]
    for message in messages:
        await rm.send(message)
        status = await rm.expect_status(str(message.message_id))
        assert status["status"] == "OK"

    await wait_for(
        lambda: all(
            posts(fake_s2_server, sensor)
            for sensor in (
                FILL_LEVEL_SENSOR,
                USAGE_FORECAST_SENSOR,
                ACTUATOR_STATUS_SENSOR,
            )
        )
    )
    (fill_level,) = posts(fake_s2_server, FILL_LEVEL_SENSOR)
    assert fill_level["values"] == [4.0]
    assert fill_level["unit"] == "%"
    (usage,) = posts(fake_s2_server, USAGE_FORECAST_SENSOR)
    assert usage["values"] == pytest.approx([3.6, 7.2])
    assert usage["unit"] == "EUR/MWh"  # the sensor's unit, as the inventory says
    assert datetime.fromisoformat(usage["start"]) == start
    (actuator,) = posts(fake_s2_server, ACTUATOR_STATUS_SENSOR)
    assert actuator["values"] == [0.75]
    assert datetime.fromisoformat(actuator["start"]) == start + timedelta(minutes=5)


@pytest.mark.parametrize("expected_lingering_timers", [True])
async def test_flexmeasures_failures_keep_the_connection(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
    fake_scheduling: FakeScheduling,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A plan the server was away for is the scheduler's to take up again."""
    caplog.set_level(logging.INFO, logger="custom_components.flexmeasures")
    trigger = f"POST /api/v3_0/assets/{BATTERY_ASSET_ID}/schedules/trigger"
    fake_scheduling.server.errors[trigger] = ClientConnectionError("refused")
    fill_level = f"POST /api/v3_0/sensors/{FILL_LEVEL_SENSOR}/data"
    fake_scheduling.server.errors[fill_level] = ClientConnectionError("refused")
    rm = await connect_frbc(hass, hass_client, s2_integration)
    await rm.send(FRBCStorageStatus(message_id=new_id(), present_fill_level=4.0))
    await rm.send(storage_description(dt_util.utcnow()))
    scheduler = battery_scheduler(s2_integration)
    await wait_for(lambda: scheduler.failure_reason is not None)
    assert scheduler.failure_reason is FailureReason.COMMUNICATION_ERROR
    await wait_for(lambda: "S2 data for sensor 21 is not kept" in caplog.text)
    assert (await rm.handshake())["message_type"] == "HandshakeResponse"

    # The server answers again: the scheduler's retry plans, and S2 follows.
    del fake_scheduling.server.errors[trigger]
    del fake_scheduling.server.errors[fill_level]
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=RETRY_FIRST))
    schedule = await plan_of(s2_integration, job_id(1))
    expected = expected_instructions(schedule, (-5000, 5000), dt_util.utcnow())
    assert as_plan(await received_instructions(rm, len(expected))) == expected
    assert "is available again" in caplog.text


async def test_refusals_are_warnings(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
    fake_s2_server: FakeFlexMeasures,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused upload, plan or fill level is a warning; the connection stays."""
    fake_s2_server.statuses[f"POST /api/v3_0/sensors/{FILL_LEVEL_SENSOR}/data"] = 422
    fake_s2_server.responses[f"POST /api/v3_0/sensors/{FILL_LEVEL_SENSOR}/data"] = {
        "message": {"json": {"values": ["Not a number."]}},
        "status": 422,
    }
    trigger = f"POST /api/v3_0/assets/{BATTERY_ASSET_ID}/schedules/trigger"
    del fake_s2_server.handlers[trigger]
    fake_s2_server.statuses[trigger] = 422
    fake_s2_server.responses[trigger] = {
        "message": {"json": {"flex-model": ["Unknown field."]}},
        "status": 422,
    }
    rm = await connect_frbc(hass, hass_client, s2_integration)
    await rm.send(FRBCStorageStatus(message_id=new_id(), present_fill_level=4.0))
    description = storage_description(dt_util.utcnow())
    await rm.send(description)
    assert (await rm.expect_status(str(description.message_id)))["status"] == "OK"
    await wait_for(lambda: "Scheduling Battery failed" in caplog.text)
    await wait_for(lambda: "Could not post S2 data to sensor 21" in caplog.text)
    assert "is unavailable" not in caplog.text

    # More than the battery holds: not planned, and said why.
    await rm.send(FRBCStorageStatus(message_id=new_id(), present_fill_level=12.0))
    await rm.send(storage_description(dt_util.utcnow()))
    await wait_for(
        lambda: "Cannot plan Battery with what its S2 resource manager reported: 120 %"
        in caplog.text
    )
    assert (await rm.handshake())["message_type"] == "HandshakeResponse"


async def test_uploads_are_bounded(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
    fake_s2_server: FakeFlexMeasures,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A slow FlexMeasures makes a connection drop data, not queue it without end."""
    release = asyncio.Event()

    async def slow(*_: Any, **__: Any) -> None:
        await release.wait()

    hub = s2_integration.runtime_data.s2
    rm = await connect_frbc(hass, hass_client, s2_integration)
    session = hub.session("battery")
    assert session is not None
    session._uploads._api.async_post_sensor_data = slow
    for _ in range(40):
        await rm.send(FRBCStorageStatus(message_id=new_id(), present_fill_level=4.0))
    await wait_for(lambda: "dropped S2 data for sensor 21" in caplog.text)
    release.set()
    assert (await rm.handshake())["message_type"] == "HandshakeResponse"


@pytest.mark.parametrize(
    ("frame", "status", "label"),
    [
        ("{not json", "INVALID_MESSAGE", "The frame is not JSON"),
        ("[1, 2]", "INVALID_MESSAGE", "The frame is not an S2 message"),
        ('{"message_id": "x"}', "INVALID_MESSAGE", "The frame is not an S2 message"),
        ('{"message_type": "Handshake"}', "INVALID_MESSAGE", "without a valid"),
        (
            json.dumps({"message_type": "Handshake", "message_id": "abc"}),
            "INVALID_MESSAGE",
            "Handshake without a valid message id",
        ),
        (
            json.dumps({"message_type": "Gibberish", "message_id": MESSAGE_ID}),
            "INVALID_CONTENT",
            "Unsupported message type Gibberish",
        ),
        (
            json.dumps({"message_type": "Handshake", "message_id": MESSAGE_ID}),
            "INVALID_DATA",
            "validation error",
        ),
        (
            json.dumps(
                {
                    "message_type": "ReceptionStatus",
                    "subject_message_id": MESSAGE_ID,
                    "status": "NOPE",
                }
            ),
            "PERMANENT_ERROR",
            "Could not handle ReceptionStatus",
        ),
        (b"\x00\x01", "INVALID_MESSAGE", "Binary frames are not S2"),
    ],
)
async def test_malformed_messages_are_answered(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
    frame: str | bytes,
    status: str,
    label: str,
) -> None:
    """Unusable frames get an error reception status; the connection survives."""
    rm = await connect(hass, hass_client, s2_integration)
    if isinstance(frame, bytes):
        await rm.ws.send_bytes(frame)
    else:
        await rm.ws.send_str(frame)
    answer = await rm.expect("ReceptionStatus")
    assert answer["status"] == status
    assert label in answer.get("diagnostic_label", "")
    assert (await rm.handshake())["message_type"] == "HandshakeResponse"
    assert not rm.ws.closed


async def test_frbc_message_before_frbc_is_active(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
) -> None:
    """FRBC messages before FRBC is selected get a temporary error."""
    rm = await connect(hass, hass_client, s2_integration)
    message_id = new_id()
    await rm.send(FRBCStorageStatus(message_id=message_id, present_fill_level=1.0))
    assert (await rm.expect_status(message_id))["status"] == "TEMPORARY_ERROR"


# --- Robustness ---------------------------------------------------------------------


async def test_one_client_cannot_affect_another(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
) -> None:
    """A peer sending an oversized frame is cut off; another device carries on."""
    good = await connect_frbc(hass, hass_client, s2_integration, "battery")
    bad = await connect(hass, hass_client, s2_integration, "heat_pump")
    await bad.handshake()
    await bad.ws.send_str("x" * (MAX_MESSAGE_SIZE + 1))
    frame = await bad.ws.receive(timeout=5)
    assert frame.type is WSMsgType.CLOSE
    assert frame.data == 1009  # message too big
    hub = s2_integration.runtime_data.s2
    await wait_for(lambda: not hub.status["heat_pump"].connected)

    assert hub.status["battery"].connected
    message_id = new_id()
    await good.send(FRBCStorageStatus(message_id=message_id, present_fill_level=2.0))
    assert (await good.expect_status(message_id))["status"] == "OK"


async def test_reconnect_replaces_the_old_connection(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
) -> None:
    """A resource manager that reconnects is served on the new socket only."""
    hub = s2_integration.runtime_data.s2
    old = await connect_frbc(hass, hass_client, s2_integration)
    new = await connect(hass, hass_client, s2_integration)
    frame = await old.closed()
    assert frame.type is WSMsgType.CLOSE
    assert frame.extra == "Replaced"
    await new.handshake()
    assert hub.status["battery"].connected
    assert hub.status["battery"].connections == 2
    # The new connection has not been told its details yet.
    assert hub.status["battery"].control_type is None


@pytest.mark.parametrize("expected_lingering_timers", [True])
async def test_peer_that_stops_reading_is_disconnected(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When sending fails, the connection ends and the device shows disconnected."""
    hub = s2_integration.runtime_data.s2
    rm = await connect(hass, hass_client, s2_integration)
    await rm.handshake()

    async def broken(*_: Any) -> None:
        raise ConnectionResetError("peer gone")

    connection = hub._connections["battery"]
    monkeypatch.setattr(connection.ws, "send_str", broken)
    await rm.send(
        Handshake(
            message_id=new_id(),
            role=EnergyManagementRole.RM,
            supported_protocol_versions=["0.0.2-beta"],
        )
    )
    await wait_for(lambda: not hub.status["battery"].connected)
    assert (await rm.closed()).type is WSMsgType.CLOSE


async def test_unload_closes_the_socket(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
) -> None:
    """Unloading the entry closes every resource manager's socket cleanly."""
    rm = await connect_frbc(hass, hass_client, s2_integration)
    hub = s2_integration.runtime_data.s2
    planning = asyncio.Event()

    async def never(**_: Any) -> str:
        planning.set()
        await asyncio.Event().wait()
        raise AssertionError("not reached")

    api = s2_integration.runtime_data.api
    api.async_trigger_schedule = never
    await rm.send(FRBCStorageStatus(message_id=new_id(), present_fill_level=4.0))
    await rm.send(storage_description(dt_util.utcnow()))
    await asyncio.wait_for(planning.wait(), 5)
    receive = asyncio.ensure_future(rm.closed())
    assert await hass.config_entries.async_unload(s2_integration.entry_id)
    await hass.async_block_till_done()
    frame = await receive
    assert frame.type is WSMsgType.CLOSE
    assert frame.data == 1001  # going away
    assert frame.extra == "Unloading"
    assert s2_integration.state is ConfigEntryState.NOT_LOADED
    assert not hub.status["battery"].connected
    # Closing the CEM left Home Assistant's shared HTTP session open.
    assert not async_get_clientsession(hass).closed


# --- The action ---------------------------------------------------------------------


async def test_set_control_type(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
) -> None:
    """The action asks the resource manager to switch; the sensor follows its OK."""
    rm = await connect_frbc(hass, hass_client, s2_integration)
    device_id = device_of(hass, "battery")
    await hass.services.async_call(
        DOMAIN,
        "s2_set_control_type",
        {"device_id": device_id, "control_type": "no_selection"},
        blocking=True,
    )
    select = await rm.expect("SelectControlType")
    assert select["control_type"] == "NO_SELECTION"
    await rm.send(
        ReceptionStatus(
            subject_message_id=uuid.UUID(select["message_id"]),
            status=ReceptionStatusValues.OK,
        )
    )
    control_type = entity_id(hass, "sensor", "battery_s2_control_type")
    await wait_for(
        lambda: hass.states.get(control_type).state == "no_selection"  # type: ignore[union-attr]
    )


@pytest.mark.parametrize(
    ("device", "control_type", "connect_first", "translation_key"),
    [
        ("unknown", "no_selection", False, "device_not_found"),
        ("not_ours", "no_selection", False, "not_a_controlled_device"),
        ("charger", "no_selection", False, "s2_not_enabled"),
        ("battery", "no_selection", False, "s2_not_connected"),
        (
            "battery",
            "power_envelope_based_control",
            True,
            "s2_control_type_unsupported",
        ),
        ("battery", "no_selection", None, "s2_control_type_unsupported"),
    ],
)
async def test_set_control_type_errors(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
    device: str,
    control_type: str,
    connect_first: bool | None,
    translation_key: str,
) -> None:
    """Unknown devices, absent resource managers and unoffered types are refused."""
    registry = dr.async_get(hass)
    if device == "unknown":
        device_id = "no-such-device"
    elif device == "not_ours":
        other = MockConfigEntry(domain="other")
        other.add_to_hass(hass)
        device_id = registry.async_get_or_create(
            config_entry_id=other.entry_id, identifiers={("other", "x")}
        ).id
    elif device == "charger":  # a controlled device without S2
        charger = find_device(
            hass,
            s2_integration.entry_id,
            controlled_device_identifier("charger"),
        )
        assert charger is not None
        device_id = charger.id
    else:
        device_id = device_of(hass, device)
    if connect_first:
        await connect_frbc(hass, hass_client, s2_integration)
    elif connect_first is None:  # connected, but without details yet
        rm = await connect(hass, hass_client, s2_integration)
        await rm.handshake()
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "s2_set_control_type",
            {"device_id": device_id, "control_type": control_type},
            blocking=True,
        )
    assert err.value.translation_domain == DOMAIN
    assert err.value.translation_key == translation_key


async def test_set_control_type_entry_not_loaded(
    hass: HomeAssistant, s2_integration: MockConfigEntry
) -> None:
    """A device of an unloaded entry is refused with a translated error."""
    device_id = device_of(hass, "battery")
    assert await hass.config_entries.async_unload(s2_integration.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "s2_set_control_type",
            {"device_id": device_id, "control_type": "no_selection"},
            blocking=True,
        )
    assert err.value.translation_key == "entry_not_loaded"
    assert err.value.translation_placeholders == {"entry": s2_integration.title}


@pytest.mark.parametrize(
    "data",
    [
        {"device_id": "x", "control_type": "warp_drive"},
        {"control_type": "no_selection"},
        {"device_id": "x"},
    ],
)
async def test_set_control_type_schema(
    hass: HomeAssistant, s2_integration: MockConfigEntry, data: dict[str, Any]
) -> None:
    """The action's fields are validated before anything else happens."""
    with pytest.raises(vol.Invalid):
        await hass.services.async_call(
            DOMAIN, "s2_set_control_type", data, blocking=True
        )


async def test_diagnostics_without_connections(
    hass: HomeAssistant, s2_integration: MockConfigEntry, snapshot: SnapshotAssertion
) -> None:
    """Diagnostics list the S2 devices, their sensors and endpoints."""
    diagnostics = async_get_s2_diagnostics(s2_integration)
    assert diagnostics == snapshot


@pytest.mark.parametrize("expected_lingering_timers", [True])
async def test_connection_during_unload_is_turned_away(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
) -> None:
    """A resource manager connecting while the hub closes is sent away at once."""
    s2_integration.runtime_data.s2._closing = True
    rm = await connect(hass, hass_client, s2_integration)
    frame = await rm.closed()
    assert frame.data == 1001
    assert not s2_integration.runtime_data.s2.status["battery"].connected


async def test_device_without_sensors(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
    fake_s2_server: FakeFlexMeasures,
) -> None:
    """A device with S2 but no measurement sensors is served and posts nothing."""
    rm = await connect_frbc(hass, hass_client, s2_integration, "heat_pump")
    start = dt_util.utcnow()
    description = storage_description(start)
    messages: list[Reported] = [
        FRBCStorageStatus(message_id=new_id(), present_fill_level=4.0),
        description,
        FRBCActuatorStatus(
            message_id=new_id(),
            actuator_id=description.actuators[0].id,
            active_operation_mode_id=description.actuators[0].operation_modes[0].id,
            operation_mode_factor=0.5,
        ),
        FRBCUsageForecast(
            message_id=new_id(),
            start_time=start,
            elements=[
                FRBCUsageForecastElement(
                    duration=Duration.from_milliseconds(900_000),
                    usage_rate_expected=0.001,
                )
            ],
        ),
        PowerMeasurement(
            message_id=new_id(),
            measurement_timestamp=start,
            values=[
                PowerValue(
                    commodity_quantity=CommodityQuantity.ELECTRIC_POWER_L1, value=1.0
                )
            ],
        ),
    ]
    calls = len(fake_s2_server.calls)
    for message in messages:
        await rm.send(message)
        status = await rm.expect_status(str(message.message_id))
        assert status["status"] == "OK"
    # Only the schedule of the device's power sensor is read; nothing is posted.
    assert [call for call in fake_s2_server.calls[calls:] if call[0] != "GET"] == []


async def test_usage_forecast_without_numbers(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
    fake_s2_server: FakeFlexMeasures,
) -> None:
    """A usage forecast of NaN (JSON allows it in Python) posts nothing."""
    rm = await connect_frbc(hass, hass_client, s2_integration)
    message_id = new_id()
    await rm.ws.send_str(
        json.dumps(
            {
                "message_type": "FRBC.UsageForecast",
                "message_id": str(message_id),
                "start_time": "2026-01-15T10:00:00+00:00",
                "elements": [{"duration": 900000, "usage_rate_expected": math.nan}],
            }
        )
    )
    assert (await rm.expect_status(message_id))["status"] == "OK"
    # A later message is still handled, after the forecast's task has finished.
    assert (await rm.handshake())["message_type"] == "HandshakeResponse"
    assert not posts(fake_s2_server, USAGE_FORECAST_SENSOR)


@pytest.mark.usefixtures("pandas_off_the_loop")
async def test_plan_edge_cases(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    s2_integration: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Plans are followed only with a description and slots still ahead."""
    hub = s2_integration.runtime_data.s2
    rm = await connect_frbc(hass, hass_client, s2_integration)
    session = hub.session("battery")
    assert session is not None
    now = dt_util.utcnow()
    resolution = timedelta(minutes=15)

    def plan(start: datetime, *values: float) -> list[S2PlanSlot]:
        return [
            S2PlanSlot(
                start=start + resolution * index,
                end=start + resolution * (index + 1),
                power_kw=value,
                fill_level=5,
            )
            for index, value in enumerate(values)
        ]

    # No system description yet: kept, and followed once one arrives.
    assert await session.async_follow_plan(plan(now, 1.0)) == 0
    await rm.send(storage_description(now))
    first = await rm.expect("FRBC.Instruction")
    assert first["operation_mode_factor"] == pytest.approx(0.6)
    # A plan that has ended sends nothing and revokes nothing.
    assert await session.async_follow_plan(plan(now - 2 * resolution, 1.0)) == 0
    assert await session.async_follow_plan([]) == 0
    # An instruction whose time has come is replaced without a revocation.
    assert await session.async_follow_plan(plan(now - resolution / 2, 1.0, 2.0)) == 2
    await rm.expect("FRBC.Instruction")
    await rm.expect("FRBC.Instruction")
    assert all(message["message_type"] != "RevokeObject" for message in rm.received)

    # More than one actuator is beyond what can be followed.
    two_actuators = storage_description(now)
    two_actuators.actuators.append(storage_description(now).actuators[0])
    await rm.send(two_actuators)
    assert (await rm.expect_status(str(two_actuators.message_id)))["status"] == "OK"
    assert await session.async_follow_plan(plan(now, 1.0)) == 0
    assert "Cannot follow the plan: 2 actuators" in caplog.text


def test_plan_slots_and_power_limits() -> None:
    """A plan's slots start from its SoC; limits come from the power ranges."""
    start = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    resolution = timedelta(minutes=30)
    schedule = Schedule(
        job_id="job",
        start=start,
        resolution=resolution,
        values=(2.0, -1.0),
        soc_at_start_kwh=3.0,
        soc=(4.0, 3.5),
        targets=(),
        computed_at=start,
    )
    assert plan_slots(schedule) == [
        S2PlanSlot(start=start, end=start + resolution, power_kw=2.0, fill_level=3.0),
        S2PlanSlot(
            start=start + resolution,
            end=start + 2 * resolution,
            power_kw=-1.0,
            fill_level=4.0,
        ),
    ]
    assert _power_limits_kw(storage_description(start)) == (5.0, 5.0)
    assert _power_limits_kw(storage_description(start, power=(0, 2000))) == (
        2.0,
        None,
    )
    assert _power_limits_kw(storage_description(start, power=(-1500, 0))) == (
        None,
        1.5,
    )
