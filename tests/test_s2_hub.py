"""Tests for the S2 hub: the endpoint, connections, plans followed, the action.

A real resource manager client talks to Home Assistant's HTTP server.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any
import uuid

from aiohttp import WSMsgType, WSServerHandshakeError
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from s2python.common import (
    EnergyManagementRole,
    Handshake,
    ReceptionStatus,
    ReceptionStatusValues,
)
from s2python.frbc import FRBCStorageStatus
from syrupy.assertion import SnapshotAssertion

from custom_components.flexmeasures.compat import vol
from custom_components.flexmeasures.const import DOMAIN, EVENT_SCHEDULE_UPDATED
from custom_components.flexmeasures.identity import controlled_device_identifier
from custom_components.flexmeasures.s2 import (
    MAX_MESSAGE_SIZE,
    async_get_s2_diagnostics,
    s2_path,
)
from custom_components.flexmeasures.scheduling import (
    Schedule,
    ScheduleStatus,
    simulate_soc,
)

from . import s2_helpers
from .conftest import FakeFlexMeasures, FakeScheduling, find_device, job_id
from .s2_helpers import (
    SCHEDULE_SENSOR,
    as_plan,
    battery_scheduler,
    connect,
    connect_frbc,
    entity_id,
    expected_instructions,
    new_id,
    plan_of,
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


def device_of(hass: HomeAssistant, subentry_id: str) -> str:
    """Return the device id of a controlled device's S2 entities."""
    entry = er.async_get(hass).async_get(
        entity_id(hass, "binary_sensor", f"{subentry_id}_s2_connected")
    )
    assert entry is not None
    assert entry.device_id is not None
    return entry.device_id


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


# --- Plans of the device's scheduler ------------------------------------------------


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


# --- Diagnostics --------------------------------------------------------------------


async def test_diagnostics_without_connections(
    hass: HomeAssistant, s2_integration: MockConfigEntry, snapshot: SnapshotAssertion
) -> None:
    """Diagnostics list the S2 devices, their sensors and endpoints."""
    diagnostics = async_get_s2_diagnostics(s2_integration)
    assert diagnostics == snapshot
