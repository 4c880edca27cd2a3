"""Tests for one resource manager's S2 conversation (the session and its CEM).

A real resource manager client talks to Home Assistant's HTTP server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import json
import math

from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from s2python.common import (
    CommodityQuantity,
    Duration,
    NumberRange,
    PowerMeasurement,
    PowerValue,
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

from custom_components.flexmeasures.s2 import (
    S2PlanSlot,
    async_get_s2_diagnostics,
    plan_slots,
)
from custom_components.flexmeasures.s2.session import _power_limits_kw
from custom_components.flexmeasures.scheduling import Schedule

from . import s2_helpers
from .conftest import PASSWORD, FakeFlexMeasures
from .s2_helpers import (
    ACTUATOR_STATUS_SENSOR,
    FILL_LEVEL_SENSOR,
    POWER_SENSOR,
    USAGE_FORECAST_SENSOR,
    connect,
    connect_frbc,
    entity_id,
    new_id,
    posts,
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


# --- Following a plan ---------------------------------------------------------------


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
