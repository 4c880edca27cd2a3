"""S2 against the real server: power reaches it, instructions follow the plan.

A resource manager's power measurements are stored (issue 8); its instructions
follow the device's one plan, however that plan was asked for (issue 15).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
import random
from typing import Any

from aiohttp import WSServerHandshakeError
from homeassistant.auth.models import TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from s2python.common import CommodityQuantity, PowerMeasurement, PowerValue
from s2python.frbc import FRBCStorageStatus

from custom_components.flexmeasures.api import TimeSeries
from custom_components.flexmeasures.const import (
    CONF_S2,
    CONF_S2_ENABLED,
    CONF_S2_POWER_SENSOR,
    DOMAIN,
    SUBENTRY_CONTROLLED_DEVICE,
)
from custom_components.flexmeasures.data import FlexMeasuresConfigEntry
from custom_components.flexmeasures.s2 import s2_path
from custom_components.flexmeasures.scheduling import DeviceScheduler, Schedule
from tests.s2_helpers import (
    ResourceManager,
    as_plan,
    expected_instructions,
    new_id,
    storage_description,
    wait_for,
)

from .conftest import LiveServer, quarter_floor
from .test_scheduling import device_id_of

SOC_ENTITY = "sensor.live_s2_battery_soc"
POST_TIMEOUT = 30.0  # seconds until the finished slot is on the server
POLL_INTERVAL = 0.25
PLAN_TIMEOUT = 90.0  # seconds; a real 24-hour battery job takes 4-6 s here


async def _add_s2_battery(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry, live_server: LiveServer
) -> str:
    """Add the seeded battery with S2 through the real subentry flow; return its id."""
    hass.states.async_set(SOC_ENTITY, "50", {"unit_of_measurement": "%"})
    battery_power = str(live_server.sensors["battery_power"])
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CONTROLLED_DEVICE), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            "name": "Live S2 battery",
            "kind": "battery",
            "power_sensor": battery_power,
            "soc_entity": SOC_ENTITY,
            "soc_unit": "percent",
            "capacity": live_server.battery_capacity_kwh,
            "charge_power": live_server.battery_power_kw,
            "discharge_power": live_server.battery_power_kw,
            "auto_reschedule": {},
            CONF_S2: {CONF_S2_ENABLED: True, CONF_S2_POWER_SENSOR: battery_power},
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    # A new controlled device reloads the entry, which creates a new S2 hub.
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    (subentry_id,) = (
        subentry.subentry_id
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_CONTROLLED_DEVICE
    )
    device = entry.runtime_data.s2.devices[subentry_id]
    assert device.power_sensor == live_server.sensors["battery_power"]
    return subentry_id


async def _revoked_token(hass: HomeAssistant) -> str:
    """Return a long-lived token of an administrator, revoked."""
    user = await hass.auth.async_create_user("Revoked", group_ids=["system-admin"])
    refresh_token = await hass.auth.async_create_refresh_token(
        user,
        client_name="revoked resource manager",
        token_type=TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN,
    )
    token = hass.auth.async_create_access_token(refresh_token)
    hass.auth.async_remove_refresh_token(refresh_token)
    return token


@pytest.mark.parametrize("credential", ["missing", "invalid", "revoked"])
async def test_refused_without_valid_token(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    hass_client_no_auth: ClientSessionGenerator,
    live_server: LiveServer,
    loaded_entry: FlexMeasuresConfigEntry,
    credential: str,
) -> None:
    """A resource manager without a valid token is refused before any S2."""
    subentry_id = await _add_s2_battery(hass, loaded_entry, live_server)
    if credential == "missing":
        client = await hass_client_no_auth()
    elif credential == "invalid":
        client = await hass_client("not-a-token")
    else:
        client = await hass_client(await _revoked_token(hass))
    with pytest.raises(WSServerHandshakeError) as err:
        await client.ws_connect(s2_path(loaded_entry.entry_id, subentry_id))
    assert err.value.status == 401
    status = loaded_entry.runtime_data.s2.status[subentry_id]
    assert not status.connected
    assert status.connections == 0


async def test_power_measurement_reaches_flexmeasures(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    live_server: LiveServer,
    loaded_entry: FlexMeasuresConfigEntry,
) -> None:
    """Power measured over S2 is on the server as the slot's mean, in kW."""
    subentry_id = await _add_s2_battery(hass, loaded_entry, live_server)
    sensor_id = live_server.sensors["battery_power"]
    resolution = loaded_entry.runtime_data.inventory.data.sensors[sensor_id].resolution
    assert resolution == timedelta(minutes=15)
    api = loaded_entry.runtime_data.api
    hub = loaded_entry.runtime_data.s2

    client = await hass_client()
    rm = ResourceManager(
        await client.ws_connect(s2_path(loaded_entry.entry_id, subentry_id))
    )
    response = await rm.handshake()
    assert response["selected_protocol_version"] == "0.0.2-beta"
    select = await rm.introduce()
    assert select["control_type"] == "FILL_RATE_BASED_CONTROL"
    await wait_for(
        lambda: hub.status[subentry_id].control_type == "fill_rate_based_control"
    )

    async def read(slot: datetime) -> TimeSeries:
        """Return what the server holds for the slot and the one after it."""
        return await api.async_get_sensor_data(
            sensor_id,
            start=slot,
            duration=2 * resolution,
            resolution=resolution,
            unit="kW",
        )

    # A past slot the server holds nothing about, with values (W) unique to this
    # run. The server outlives a run: this power sensor also carries the plans of
    # earlier runs (24 h or more from their moment), and FlexMeasures answers a
    # plan's belief for a slot it covers. Whole weeks back, nothing was planned.
    recent = quarter_floor(dt_util.utcnow()) - timedelta(hours=5)
    for weeks in range(52):
        slot = recent - timedelta(weeks=weeks)
        if all(value is None for value in (await read(slot)).values):
            break
    else:
        pytest.fail(f"every week back from {recent} holds beliefs of {sensor_id}")
    phases = [round(random.uniform(100, 1500), 1) for _ in range(3)]  # noqa: S311
    symmetric = round(random.uniform(-4000, 4000), 1)  # noqa: S311
    measurements: list[tuple[timedelta, list[tuple[CommodityQuantity, float]]]] = [
        (
            timedelta(minutes=1),
            [
                (CommodityQuantity.ELECTRIC_POWER_L1, phases[0]),
                (CommodityQuantity.ELECTRIC_POWER_L2, phases[1]),
                (CommodityQuantity.ELECTRIC_POWER_L3, phases[2]),
            ],
        ),
        (
            timedelta(minutes=7),
            [(CommodityQuantity.ELECTRIC_POWER_3_PHASE_SYMMETRIC, symmetric)],
        ),
        # The next slot starts: the first one is finished and posted.
        (
            resolution + timedelta(minutes=1),
            [(CommodityQuantity.ELECTRIC_POWER_3_PHASE_SYMMETRIC, 1234.5)],
        ),
    ]
    for offset, values in measurements:
        message_id = new_id()
        await rm.send(
            PowerMeasurement(
                message_id=message_id,
                measurement_timestamp=slot + offset,
                values=[
                    PowerValue(commodity_quantity=quantity, value=value)
                    for quantity, value in values
                ],
            )
        )
        assert (await rm.expect_status(message_id))["status"] == "OK"
    expected_kw = (sum(phases) + symmetric) / 2 / 1000

    # Posting is asynchronous: poll (bounded) until the slot's mean is stored.
    stored = await read(slot)
    for _ in range(int(POST_TIMEOUT / POLL_INTERVAL)):
        if stored.values[0] == pytest.approx(expected_kw, abs=1e-6):
            break
        await asyncio.sleep(POLL_INTERVAL)
        stored = await read(slot)
    assert stored.values[0] == pytest.approx(expected_kw, abs=1e-6)
    assert stored.start == slot
    assert stored.resolution == resolution
    assert stored.unit == "kW"
    # The slot still open is not posted: only finished slots are.
    assert stored.values[1] is None
    assert hub.status[subentry_id].connected

    await rm.ws.close()
    await wait_for(lambda: not hub.status[subentry_id].connected)


async def _next_plan(
    scheduler: DeviceScheduler, after: Schedule | None, start: Callable[[], Any]
) -> Schedule:
    """Run ``start`` and wait (real time, bounded) for a plan newer than ``after``."""
    changed = asyncio.Event()

    @callback
    def _changed() -> None:
        if scheduler.schedule is not None and scheduler.schedule is not after:
            changed.set()

    remove = scheduler.async_add_listener(_changed)
    try:
        await start()
        async with asyncio.timeout(PLAN_TIMEOUT):
            await changed.wait()
    finally:
        remove()
    assert scheduler.schedule is not None
    return scheduler.schedule


async def _instructions(rm: ResourceManager, count: int) -> list[dict[str, Any]]:
    """Return the next ``count`` instructions, bounded in real time."""
    async with asyncio.timeout(PLAN_TIMEOUT):
        return [await rm.expect("FRBC.Instruction") for _ in range(count)]


@pytest.mark.usefixtures("pandas_off_the_loop")
async def test_instructions_follow_the_plan(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    live_server: LiveServer,
    loaded_entry: FlexMeasuresConfigEntry,
) -> None:
    """A described battery is planned by the real server and followed.

    A plan from the action with a target then replaces those instructions
    (revoked) with its own.
    """
    subentry_id = await _add_s2_battery(hass, loaded_entry, live_server)
    scheduler = loaded_entry.runtime_data.schedulers[subentry_id]
    capacity = live_server.battery_capacity_kwh
    watts = live_server.battery_power_kw * 1000
    power = (-watts, watts)

    client = await hass_client()
    rm = ResourceManager(
        await client.ws_connect(s2_path(loaded_entry.entry_id, subentry_id))
    )
    await rm.handshake()
    assert (await rm.introduce())["control_type"] == "FILL_RATE_BASED_CONTROL"
    description = storage_description(
        dt_util.utcnow(), power=power, fill_level=(0.1 * capacity, 0.9 * capacity)
    )

    async def describe() -> None:
        await rm.send(description)
        await rm.send(
            FRBCStorageStatus(message_id=new_id(), present_fill_level=0.3 * capacity)
        )

    first = await _next_plan(scheduler, None, describe)
    expected = expected_instructions(first, power, dt_util.utcnow())
    before = await _instructions(rm, len(expected))
    assert as_plan(before) == expected
    assert len(before) > 1  # a day-ahead plan with prices is not flat
    assert first.soc_at_start_kwh == pytest.approx(0.3 * capacity)

    # The action plans the same device, with a target: new instructions follow,
    # and those of the first plan that lie ahead are revoked.
    target_at = quarter_floor(dt_util.utcnow()) + timedelta(hours=4)
    device_id = device_id_of(hass, loaded_entry, scheduler.device_identifier)

    async def trigger() -> None:
        await hass.services.async_call(
            DOMAIN,
            "trigger_schedule",
            {
                "device_id": device_id,
                "soc_targets": [{"datetime": target_at, "value": 90}],
                "force": True,
            },
            blocking=True,
        )

    second = await _next_plan(scheduler, first, trigger)
    assert second.job_id != first.job_id
    assert second.targets[0].at == target_at
    revoked: set[str] = set()
    async with asyncio.timeout(PLAN_TIMEOUT):
        while (message := await rm.receive())["message_type"] != "FRBC.Instruction":
            if message["message_type"] == "RevokeObject":
                assert message["object_type"] == "FRBC.Instruction"
                revoked.add(message["object_id"])
    now = dt_util.utcnow()
    ahead = {
        item["id"]
        for item in before
        if datetime.fromisoformat(item["execution_time"]) > now
    }
    assert ahead <= revoked <= {item["id"] for item in before}
    expected = expected_instructions(second, power, now)
    after = [message, *await _instructions(rm, len(expected) - 1)]
    assert as_plan(after) == expected

    await rm.ws.close()
    await wait_for(
        lambda: not loaded_entry.runtime_data.s2.status[subentry_id].connected
    )
