"""Shared helpers of the S2 tests: the entry, its fixtures and a resource manager."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
import json
import math
from typing import Any
import uuid

from aiohttp import ClientWebSocketResponse, WSMessage, WSMsgType
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from s2python.common import (
    Commodity,
    CommodityQuantity,
    ControlType,
    Duration,
    EnergyManagementRole,
    Handshake,
    NumberRange,
    PowerRange,
    ReceptionStatus,
    ReceptionStatusValues,
    ResourceManagerDetails,
    Role,
    RoleType,
)
from s2python.frbc import (
    FRBCActuatorDescription,
    FRBCOperationMode,
    FRBCOperationModeElement,
    FRBCStorageDescription,
    FRBCSystemDescription,
)
from s2python.message import S2Message

from custom_components.flexmeasures.const import (
    CONF_S2,
    CONF_S2_ACTUATOR_STATUS_SENSOR,
    CONF_S2_ENABLED,
    CONF_S2_FILL_LEVEL_SENSOR,
    CONF_S2_POWER_SENSOR,
    CONF_S2_USAGE_FORECAST_SENSOR,
    DOMAIN,
    SUBENTRY_CONTROLLED_DEVICE,
)
from custom_components.flexmeasures.s2 import s2_path
from custom_components.flexmeasures.scheduling import DeviceScheduler, Schedule

from .conftest import (
    BATTERY_DATA as SCHEDULING_DATA,
    BATTERY_SENSOR_ID,
    ENTRY_DATA,
    SERVER_URL,
    UNIQUE_ID,
    FakeFlexMeasures,
    FakeScheduling,
)

POWER_SENSOR = 20
FILL_LEVEL_SENSOR = 21
# The battery's FlexMeasures power sensor, which its scheduler plans (and its
# resource manager's measured power goes to, as a home battery's often does).
SCHEDULE_SENSOR = BATTERY_SENSOR_ID
USAGE_FORECAST_SENSOR = 30
ACTUATOR_STATUS_SENSOR = 99  # not in the inventory: posted without a unit

# What the scheduling part of a controlled device needs, with S2 settings on top.
DEVICE_BASE: dict[str, Any] = {**SCHEDULING_DATA, "soc_entity": "sensor.s2_soc"}

BATTERY_DATA: dict[str, Any] = {
    **DEVICE_BASE,
    "name": "Battery",
    "power_sensor": SCHEDULE_SENSOR,
    CONF_S2: {
        CONF_S2_ENABLED: True,
        CONF_S2_POWER_SENSOR: POWER_SENSOR,
        CONF_S2_FILL_LEVEL_SENSOR: FILL_LEVEL_SENSOR,
        CONF_S2_USAGE_FORECAST_SENSOR: str(USAGE_FORECAST_SENSOR),
        CONF_S2_ACTUATOR_STATUS_SENSOR: ACTUATOR_STATUS_SENSOR,
    },
}

SUBENTRIES: list[dict[str, Any]] = [
    {
        "subentry_id": "battery",
        "subentry_type": SUBENTRY_CONTROLLED_DEVICE,
        "title": "Battery",
        "unique_id": "battery",
        "data": BATTERY_DATA,
    },
    {
        "subentry_id": "heat_pump",
        "subentry_type": SUBENTRY_CONTROLLED_DEVICE,
        "title": "Heat pump",
        "unique_id": "heat_pump",
        "data": {
            **DEVICE_BASE,
            "name": "Heat pump",
            "power_sensor": 22,
            CONF_S2: {CONF_S2_ENABLED: True},
        },
    },
    {
        "subentry_id": "charger",
        "subentry_type": SUBENTRY_CONTROLLED_DEVICE,
        "title": "Charger",
        "unique_id": "charger",
        "data": {
            **DEVICE_BASE,
            "name": "Charger",
            "power_sensor": 30,
            CONF_S2: {CONF_S2_ENABLED: False, CONF_S2_POWER_SENSOR: POWER_SENSOR},
        },
    },
]


@pytest.fixture
def mock_config_entry() -> MockConfigEntry:
    """Return an entry with controlled devices, two of them with S2 enabled."""
    return MockConfigEntry(
        domain=DOMAIN,
        entry_id="01JS2ENTRY",
        title=f"Home ({SERVER_URL})",
        unique_id=UNIQUE_ID,
        data=dict(ENTRY_DATA),
        version=1,
        subentries_data=SUBENTRIES,
    )


@pytest.fixture
def fake_s2_server(
    fake_server: FakeFlexMeasures, fake_scheduling: FakeScheduling
) -> FakeFlexMeasures:
    """Let the recorded server accept data and plan the battery."""
    for sensor_id in (
        POWER_SENSOR,
        FILL_LEVEL_SENSOR,
        USAGE_FORECAST_SENSOR,
        ACTUATOR_STATUS_SENSOR,
    ):
        fake_server.responses[f"POST /api/v3_0/sensors/{sensor_id}/data"] = {
            "message": "Request has been processed.",
            "status": "PROCESSED",
        }
    return fake_server


@pytest.fixture
async def s2_integration(
    hass: HomeAssistant,
    fake_s2_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
    fast_polling: None,
) -> MockConfigEntry:
    """Set up the integration with S2-enabled controlled devices."""
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    return mock_config_entry


def new_id() -> uuid.UUID:
    """Return a fresh S2 message id."""
    return uuid.uuid4()


async def wait_for(condition: Callable[[], bool]) -> None:
    """Let the event loop run until the condition holds (bounded)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def resource_manager_details() -> ResourceManagerDetails:
    """Return the details of a battery offering FRBC (and no selection)."""
    return ResourceManagerDetails(
        message_id=new_id(),
        resource_id=new_id(),
        name="Garage battery",
        manufacturer="Acme",
        model="B-10",
        serial_number="SN-SECRET-123",
        firmware_version="1.2.3",
        roles=[Role(role=RoleType.ENERGY_STORAGE, commodity=Commodity.ELECTRICITY)],
        instruction_processing_delay=Duration.from_milliseconds(1000),
        available_control_types=[
            ControlType.FILL_RATE_BASED_CONTROL,
            ControlType.NO_SELECTION,
        ],
        provides_forecast=True,
        provides_power_measurement_types=[
            CommodityQuantity.ELECTRIC_POWER_3_PHASE_SYMMETRIC
        ],
    )


class ResourceManager:
    """A minimal S2 resource manager sending s2-python messages over a websocket."""

    def __init__(self, ws: ClientWebSocketResponse) -> None:
        """Wrap an open websocket."""
        self.ws = ws
        self.received: list[dict[str, Any]] = []

    async def send(self, message: S2Message) -> None:
        """Send one S2 message."""
        await self.ws.send_str(message.model_dump_json())

    async def receive(self) -> dict[str, Any]:
        """Return the next message from the CEM."""
        frame = await self.ws.receive(timeout=5)
        assert frame.type is WSMsgType.TEXT, frame
        message: dict[str, Any] = json.loads(frame.data)
        self.received.append(message)
        return message

    async def expect(self, message_type: str) -> dict[str, Any]:
        """Return the next message of a type, skipping others."""
        while (message := await self.receive())["message_type"] != message_type:
            pass
        return message

    async def expect_status(
        self, subject: uuid.UUID | str | None = None
    ) -> dict[str, Any]:
        """Return the next reception status (about ``subject``, if given)."""
        while True:
            message = await self.expect("ReceptionStatus")
            if subject is None or message["subject_message_id"] == str(subject):
                return message

    async def closed(self) -> WSMessage:
        """Read until the CEM closes the socket; return the close frame."""
        while (frame := await self.ws.receive(timeout=5)).type is WSMsgType.TEXT:
            pass
        return frame

    async def handshake(self) -> dict[str, Any]:
        """Greet the CEM; return its handshake response."""
        await self.send(
            Handshake(
                message_id=new_id(),
                role=EnergyManagementRole.RM,
                supported_protocol_versions=["0.0.2-beta"],
            )
        )
        return await self.expect("HandshakeResponse")

    async def introduce(self) -> dict[str, Any]:
        """Send the details; accept the control type the CEM selects; return it."""
        await self.send(resource_manager_details())
        select = await self.expect("SelectControlType")
        await self.send(
            ReceptionStatus(
                subject_message_id=uuid.UUID(select["message_id"]),
                status=ReceptionStatusValues.OK,
            )
        )
        return select


async def connect(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    entry: MockConfigEntry,
    subentry_id: str = "battery",
) -> ResourceManager:
    """Open an authenticated websocket to a controlled device."""
    client = await hass_client()
    ws = await client.ws_connect(s2_path(entry.entry_id, subentry_id))
    return ResourceManager(ws)


async def connect_frbc(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    entry: MockConfigEntry,
    subentry_id: str = "battery",
) -> ResourceManager:
    """Connect, shake hands and wait until FRBC is the active control type."""
    rm = await connect(hass, hass_client, entry, subentry_id)
    await rm.handshake()
    await rm.introduce()
    hub = entry.runtime_data.s2
    await wait_for(
        lambda: hub.status[subentry_id].control_type == "fill_rate_based_control"
    )
    return rm


def entity_id(hass: HomeAssistant, platform: str, unique_id: str) -> str:
    """Return the entity id registered for a unique id."""
    found = er.async_get(hass).async_get_entity_id(platform, DOMAIN, unique_id)
    assert found is not None
    return found


def storage_description(
    valid_from: datetime,
    *,
    power: tuple[float, float] = (-5000, 5000),
    fill_level: tuple[float, float] = (1, 9),
) -> FRBCSystemDescription:
    """Return a battery of 0-10 kWh (by default: kept within 1-9 kWh, ±5 kW)."""
    return FRBCSystemDescription(
        message_id=new_id(),
        valid_from=valid_from,
        actuators=[
            FRBCActuatorDescription(
                id=new_id(),
                supported_commodities=[Commodity.ELECTRICITY],
                operation_modes=[
                    FRBCOperationMode(
                        id=new_id(),
                        diagnostic_label="charge and discharge",
                        abnormal_condition_only=False,
                        elements=[
                            FRBCOperationModeElement(
                                fill_level_range=NumberRange(
                                    start_of_range=0, end_of_range=10
                                ),
                                fill_rate=NumberRange(
                                    start_of_range=-5, end_of_range=5
                                ),
                                power_ranges=[
                                    PowerRange(
                                        start_of_range=power[0],
                                        end_of_range=power[1],
                                        commodity_quantity=CommodityQuantity.ELECTRIC_POWER_3_PHASE_SYMMETRIC,
                                    )
                                ],
                            )
                        ],
                    )
                ],
                transitions=[],
                timers=[],
            )
        ],
        storage=FRBCStorageDescription(
            provides_leakage_behaviour=False,
            provides_fill_level_target_profile=False,
            provides_usage_forecast=True,
            fill_level_range=NumberRange(
                start_of_range=fill_level[0], end_of_range=fill_level[1]
            ),
        ),
    )


@dataclass(frozen=True)
class InSlot:
    """Equal to any moment of a slot: the slot in progress starts "now"."""

    start: datetime
    end: datetime

    def __eq__(self, other: object) -> bool:
        """Return whether ``other`` is a moment in this slot."""
        return isinstance(other, datetime) and self.start <= other < self.end

    def __hash__(self) -> int:
        """Hash like the slot."""
        return hash((self.start, self.end))


def expected_instructions(
    schedule: Schedule, power: tuple[float, float], now: datetime
) -> list[tuple[datetime | InSlot, float]]:
    """Return (execution time, factor) per change of the plan's power from now on.

    The factor places the slot's power (kW) on the description's power range (W).
    The slot in progress is instructed from the moment the plan is sent.
    """
    expected: list[tuple[datetime | InSlot, float]] = []
    previous: float | None = None
    for index, value in enumerate(schedule.values):
        start = schedule.start + schedule.resolution * index
        if start + schedule.resolution <= now or (
            previous is not None and math.isclose(value, previous)
        ):
            continue
        previous = value
        factor = (value * 1000 - power[0]) / (power[1] - power[0])
        end = start + schedule.resolution
        expected.append((InSlot(start, end) if start < now else start, factor))
    return expected


async def received_instructions(
    rm: ResourceManager, count: int
) -> list[dict[str, Any]]:
    """Return the next ``count`` instructions the resource manager receives."""
    return [await rm.expect("FRBC.Instruction") for _ in range(count)]


def as_plan(instructions: list[dict[str, Any]]) -> list[tuple[datetime, Any]]:
    """Return (execution time, factor) of received instructions."""
    return [
        (
            datetime.fromisoformat(item["execution_time"]),
            pytest.approx(item["operation_mode_factor"]),
        )
        for item in instructions
    ]


def posts(server: FakeFlexMeasures, sensor_id: int) -> list[Any]:
    """Return the data posted to a sensor."""
    path = f"/api/v3_0/sensors/{sensor_id}/data"
    return [
        data for method, url, data in server.calls if (method, url) == ("POST", path)
    ]


def battery_scheduler(entry: MockConfigEntry) -> DeviceScheduler:
    """Return the battery's scheduler: the one planner of the device."""
    scheduler: DeviceScheduler = entry.runtime_data.schedulers["battery"]
    return scheduler


async def plan_of(entry: MockConfigEntry, job: str) -> Schedule:
    """Wait until the battery's plan is the one of ``job``; return it."""
    scheduler = battery_scheduler(entry)
    await wait_for(
        lambda: scheduler.schedule is not None and scheduler.schedule.job_id == job
    )
    assert scheduler.schedule is not None
    return scheduler.schedule
