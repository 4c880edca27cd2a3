"""Tests for S2 when FlexMeasures is slow, refuses or is away: uploads and plans."""

from __future__ import annotations

import asyncio
from datetime import timedelta
import logging
from typing import Any

from aiohttp import ClientConnectionError
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from s2python.frbc import FRBCStorageStatus

from custom_components.flexmeasures.scheduling import RETRY_FIRST, FailureReason

from . import s2_helpers
from .conftest import BATTERY_ASSET_ID, FakeFlexMeasures, FakeScheduling, job_id
from .s2_helpers import (
    FILL_LEVEL_SENSOR,
    as_plan,
    battery_scheduler,
    connect_frbc,
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
