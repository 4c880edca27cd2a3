"""Slow and broken server answers (issue 9): bounded waits, clear errors, no blocking.

A ``FaultProxy`` (proxy.py) sits between the integration and the live server and
breaks the answers of chosen paths in every way ``Fault`` lists. For each fault and
each user-facing operation the tests assert a clear error (a config flow error key
or a translation key, never a traceback), that the operation ends under a guard and
that Home Assistant's blocking-call detection stays silent.

The API's waits are shortened here (api.py: 10 s per attempt, 20 s per call) so the
whole matrix runs in about a minute; the code paths are the same. Every operation
runs under ``GUARD``, far above what its calls may take, so a hang fails the test
instead of stalling it. Waits are measured and reported (``fault_wait`` lines in the
terminal summary), never asserted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
import logging
import random
import time
from typing import Any, Final
from unittest.mock import patch

from freezegun import freeze_time
from homeassistant import block_async_io
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_URL, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.update_coordinator import UpdateFailed
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures.aggregation import Aggregation
from custom_components.flexmeasures.api import FlexMeasuresApi
from custom_components.flexmeasures.const import CONF_EXCLUDED_SENSORS, DOMAIN, LOGGER
from custom_components.flexmeasures.data import FlexMeasuresConfigEntry
from custom_components.flexmeasures.identity import sensor_unique_id
from tests.series import aggregate

from .conftest import LiveServer, stored_values
from .proxy import Fault, FaultProxy
from .test_scheduling import SOC_ATTRIBUTES, SOC_ENTITY, SOC_NOW, _add_battery
from .test_uploader import STEP, _link

TIMEOUT: Final = 1.0  # seconds per attempt here (api.py: REQUEST_TIMEOUT = 10)
BUDGET: Final = 2.0  # seconds per call here (api.py: REQUEST_RETRY_BUDGET = 20)
# An operation makes a few calls one after the other, each ending within BUDGET.
GUARD: Final = 30.0
# HOLD is HANG until the fault is cleared: a tool to keep a request in flight.
FAULTS: Final[list[Fault]] = [
    fault for fault in Fault if fault not in (Fault.NONE, Fault.HOLD)
]
SENSOR_DATA: Final = r"GET /api/v3_0/sensors/\d+/data"
POST_DATA: Final = r"POST /api/v3_0/sensors/\d+/data"
SCHEDULE_TRIGGER: Final = r"POST .*/schedules/trigger"
JOB_STATUS: Final = r"GET /api/v3_0/jobs/"
# Loggers whose records count as the integration's (and its library's) own.
OWN_LOGGERS: Final = ("custom_components.", "homeassistant.", "flexmeasures_client")


@contextmanager
def _short_waits(api: FlexMeasuresApi) -> Iterator[None]:
    """Shorten an API's waits while a fault is on; the rest runs with api.py's."""
    client = api._client
    saved = client.request_timeout, client.request_retry_timeout
    client.request_timeout, client.request_retry_timeout = TIMEOUT, BUDGET
    try:
        yield
    finally:
        client.request_timeout, client.request_retry_timeout = saved


@contextmanager
def _short_waits_for_new_apis() -> Iterator[None]:
    """Shorten the waits of every API built meanwhile (the config flow builds one)."""
    with (
        patch.dict(
            FlexMeasuresApi.__init__.__kwdefaults__, {"request_timeout": TIMEOUT}
        ),
        patch("custom_components.flexmeasures.api.REQUEST_RETRY_BUDGET", BUDGET),
    ):
        yield


@pytest.fixture(autouse=True)
def detect_blocking_calls(disable_block_async_io: None) -> None:
    """Turn on Home Assistant's detection of blocking calls in the event loop."""
    block_async_io.enable()
    assert block_async_io._BLOCKED_CALLS.calls


@pytest.fixture
def faulty(proxy: FaultProxy) -> FaultProxy:
    """Return the proxy, with delays and drips longer than an attempt may take."""
    proxy.delay = 2 * TIMEOUT
    proxy.drip = 4 * TIMEOUT
    return proxy


async def _measure(awaitable: Awaitable[Any]) -> tuple[Any, float]:
    """Await under the guard; return the result (or the exception) and the wait."""
    start = time.monotonic()
    try:
        async with asyncio.timeout(GUARD):
            try:
                result = await awaitable
            except Exception as err:  # noqa: BLE001 - the caller checks what it is
                result = err
    except TimeoutError:
        pytest.fail(f"Still waiting after {GUARD} s: the wait is not bounded")
    return result, time.monotonic() - start


def _report(
    record_property: Any, step: str, fault: Fault, outcome: Any, wait: float
) -> None:
    """Record an observed outcome and its wait for the terminal summary."""
    if isinstance(outcome, HomeAssistantError):
        outcome = f"{type(outcome).__name__}({outcome.translation_key})"
    line = f"{step:<28} {fault:<13} {wait:6.2f} s  {outcome}"
    record_property("fault_wait", line)


def _assert_clean(caplog: pytest.LogCaptureFixture) -> None:
    """No traceback above debug level from our code, no blocking call."""
    tracebacks = [
        record.getMessage()
        for record in caplog.records
        if record.exc_info
        and record.levelno >= logging.INFO
        and record.name.startswith(OWN_LOGGERS)
    ]
    assert tracebacks == []
    assert "Detected blocking call" not in caplog.text


# The sensors entries here do not expose (all but two), looked up once per run.
_EXCLUDED: list[str] = []


async def _setup_entry(
    hass: HomeAssistant, live_server: LiveServer, proxy: FaultProxy
) -> FlexMeasuresConfigEntry:
    """Set the home account's entry up through the proxy, exposing two sensors."""
    if not _EXCLUDED:
        api = FlexMeasuresApi(
            session=async_get_clientsession(hass, verify_ssl=False),
            url=live_server.url,
            email=live_server.home.email,
            password=live_server.home.password,
        )
        keep = {live_server.sensors["price"], live_server.sensors["battery_power"]}
        _EXCLUDED.extend(
            str(sensor.id)
            for sensor in await api.async_get_sensors()
            if sensor.id not in keep
        )
    excluded = list(_EXCLUDED)
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Home (proxy)",
        unique_id=live_server.unique_id,
        data={**live_server.entry_data(), CONF_URL: proxy.url},
        options={CONF_EXCLUDED_SENSORS: excluded},
        version=1,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    return entry


@pytest.fixture
async def fault_entry(
    hass: HomeAssistant, live_server: LiveServer, faulty: FaultProxy
) -> FlexMeasuresConfigEntry:
    """Return the home account's entry, loaded through the proxy."""
    return await _setup_entry(hass, live_server, faulty)


@pytest.mark.parametrize("fault", FAULTS)
async def test_config_flow(
    hass: HomeAssistant,
    live_server: LiveServer,
    faulty: FaultProxy,
    fault: Fault,
    caplog: pytest.LogCaptureFixture,
    record_property: Any,
) -> None:
    """The user step says cannot_connect in bounded time, then succeeds."""
    user_input = {**live_server.user_input(), CONF_URL: faulty.url}
    flow = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    faulty.fail(fault)
    with _short_waits_for_new_apis():
        result, wait = await _measure(
            hass.config_entries.flow.async_configure(flow["flow_id"], user_input)
        )
    _report(
        record_property, "config flow: user step", fault, result.get("errors"), wait
    )
    assert faulty.hits[fault] >= 1
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}

    faulty.clear()
    with patch("custom_components.flexmeasures.async_setup_entry", return_value=True):
        result = await hass.config_entries.flow.async_configure(
            flow["flow_id"], user_input
        )
        await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    _assert_clean(caplog)


def _state(hass: HomeAssistant, entity_id: str) -> str:
    """Return an entity's state, which must exist."""
    state = hass.states.get(entity_id)
    assert state is not None
    return state.state


def _value_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Return what the sensor values coordinator logged."""
    return [
        record
        for record in caplog.records
        if record.name == LOGGER.name
        and record.levelno >= logging.INFO
        and "sensor values" in record.getMessage()
    ]


@pytest.mark.parametrize("fault", FAULTS)
async def test_refresh(
    hass: HomeAssistant,
    live_server: LiveServer,
    faulty: FaultProxy,
    fault_entry: FlexMeasuresConfigEntry,
    fault: Fault,
    caplog: pytest.LogCaptureFixture,
    record_property: Any,
) -> None:
    """Entities go unavailable and come back, with one log line each way."""
    coordinator = fault_entry.runtime_data.sensor_values
    entity_id = er.async_get(hass).async_get_entity_id(
        "sensor", DOMAIN, sensor_unique_id(fault_entry, live_server.sensors["price"])
    )
    assert entity_id is not None
    assert _state(hass, entity_id) != STATE_UNAVAILABLE

    faulty.fail(fault, SENSOR_DATA)
    caplog.clear()
    with _short_waits(coordinator.api):
        _, wait = await _measure(coordinator.async_refresh())
        await _measure(coordinator.async_refresh())  # still failing: no second line
    error = coordinator.last_exception
    _report(record_property, "refresh", fault, repr(error), wait)
    assert faulty.hits[fault] >= 2
    assert isinstance(error, UpdateFailed)
    assert error.translation_key == "communication_error"
    assert _state(hass, entity_id) == STATE_UNAVAILABLE
    (down,) = _value_lines(caplog)
    assert down.levelno == logging.ERROR
    assert "Error fetching" in down.getMessage()
    _assert_clean(caplog)

    faulty.clear()
    caplog.clear()
    await _measure(coordinator.async_refresh())
    assert coordinator.last_update_success
    assert _state(hass, entity_id) != STATE_UNAVAILABLE
    (up,) = _value_lines(caplog)
    assert "recovered" in up.getMessage()
    _assert_clean(caplog)


@pytest.mark.parametrize("fault", FAULTS)
async def test_trigger_schedule(
    hass: HomeAssistant,
    live_server: LiveServer,
    faulty: FaultProxy,
    fault_entry: FlexMeasuresConfigEntry,
    fault: Fault,
    caplog: pytest.LogCaptureFixture,
    record_property: Any,
) -> None:
    """Failed scheduling is a translated error; without waiting, a prompt return."""
    hass.states.async_set(SOC_ENTITY, str(SOC_NOW), SOC_ATTRIBUTES)
    subentry_id = await _add_battery(hass, fault_entry, live_server)
    scheduler = fault_entry.runtime_data.schedulers[subentry_id]
    (device,) = (
        device
        for device in dr.async_entries_for_config_entry(
            dr.async_get(hass), fault_entry.entry_id
        )
        if scheduler.device_identifier in device.identifiers
    )
    call = {"device_id": device.id, "duration": timedelta(hours=1)}

    async def trigger(*, wait: bool) -> Any:
        return await hass.services.async_call(
            DOMAIN,
            "trigger_schedule",
            call,
            blocking=True,
            return_response=wait,
        )

    # The trigger request fails: the action raises, get_schedule tells why.
    faulty.fail(fault, SCHEDULE_TRIGGER)
    with _short_waits(fault_entry.runtime_data.api):
        error, wait = await _measure(trigger(wait=False))
    _report(record_property, "trigger_schedule (trigger)", fault, error, wait)
    assert faulty.hits[fault] >= 1
    assert isinstance(error, HomeAssistantError)
    assert error.translation_key == "communication_error"
    response, wait = await _measure(
        hass.services.async_call(
            DOMAIN,
            "get_schedule",
            {"device_id": device.id},
            blocking=True,
            return_response=True,
        )
    )
    _report(record_property, "get_schedule", fault, response["failure_reason"], wait)
    assert response["status"] == "failed"
    assert response["failure_reason"] == "communication_error"

    # The job's status cannot be read: waiting raises, not waiting returns at once.
    faulty.clear()
    faulty.fail(fault, JOB_STATUS)
    with _short_waits(fault_entry.runtime_data.api):
        error, wait = await _measure(trigger(wait=True))
    _report(record_property, "trigger_schedule (wait)", fault, error, wait)
    assert isinstance(error, HomeAssistantError)
    assert error.translation_key == "communication_error"
    result, wait = await _measure(trigger(wait=False))
    _report(record_property, "trigger_schedule (no wait)", fault, result, wait)
    assert result is None
    _assert_clean(caplog)
    assert await hass.config_entries.async_unload(fault_entry.entry_id)


def _upload_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Return what the uploader said about the server being down or back."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == LOGGER.name
        and (
            "is unavailable" in record.getMessage()
            or "available again" in record.getMessage()
        )
    ]


@pytest.mark.parametrize("fault", FAULTS)
async def test_upload(
    hass: HomeAssistant,
    live_server: LiveServer,
    faulty: FaultProxy,
    fault: Fault,
    caplog: pytest.LogCaptureFixture,
    record_property: Any,
) -> None:
    """Measurements wait out the fault and then reach the server, exactly once."""
    # Three hours ago, on a whole minute, a stretch of its own for every fault. The
    # clock ticks (timeouts must expire) and jumps a minute at a time.
    now = dt_util.utcnow().replace(second=0, microsecond=0)
    begin = now - timedelta(hours=3) + FAULTS.index(fault) * 10 * STEP
    with freeze_time(begin + timedelta(seconds=5), tick=True) as clock:
        entry = await _setup_entry(hass, live_server, faulty)
        await _upload_through_fault(
            hass,
            clock,
            entry,
            live_server,
            faulty,
            fault,
            begin,
            caplog,
            record_property,
        )
        assert await hass.config_entries.async_unload(entry.entry_id)


async def _upload_through_fault(
    hass: HomeAssistant,
    clock: Any,
    entry: FlexMeasuresConfigEntry,
    live_server: LiveServer,
    faulty: FaultProxy,
    fault: Fault,
    begin: datetime,
    caplog: pytest.LogCaptureFixture,
    record_property: Any,
) -> None:
    """Link an entity, upload through the fault and after it, check the server."""
    entity_id = "sensor.live_fault_meter"
    offset = round(random.uniform(0.5, 1.5), 3)  # noqa: S311 - unique to the run
    points: list[tuple[float, float | None]] = []

    def record(value: float) -> None:
        hass.states.async_set(entity_id, str(value), {"unit_of_measurement": "kW"})
        state = hass.states.get(entity_id)
        assert state is not None
        points.append((state.last_updated_timestamp, value))

    def measure(minute: int) -> None:
        clock.move_to(begin + minute * STEP + timedelta(seconds=20))
        value = round(offset + minute * 1.5, 3)
        record(value)

    record(offset)
    sensor_id = await _link(
        hass, entry, entity_id, live_server.assets["site"], "Live fault meter"
    )
    uploader = entry.runtime_data.uploader
    measure(1)
    measure(2)

    faulty.fail(fault, POST_DATA)
    caplog.clear()
    with _short_waits(uploader.api):
        _, wait = await _measure(uploader.async_flush())
    _report(
        record_property, "upload", fault, f"down, {uploader.pending_count} kept", wait
    )
    assert faulty.hits[fault] >= 1
    assert uploader.server_down
    assert uploader.pending_count >= 2
    await _measure(uploader.async_flush())  # within the backoff: no request, no line
    assert [line.split(",")[0] for line in _upload_lines(caplog)] == [
        f"Uploads: FlexMeasures at {faulty.url} is unavailable"
    ]
    _assert_clean(caplog)

    faulty.clear()
    caplog.clear()
    measure(3)  # past the first backoff
    await _measure(uploader.async_flush())
    assert (uploader.server_down, uploader.pending_count) == (False, 0)
    assert _upload_lines(caplog) == [
        f"Uploads: FlexMeasures at {faulty.url} is available again"
    ]
    _assert_clean(caplog)

    end = dt_util.utcnow()
    expected = {
        datetime.fromtimestamp(slot, dt_util.UTC): value
        for slot, value in aggregate(
            Aggregation.MEAN, int(STEP.total_seconds()), points, end.timestamp()
        )
    }
    assert len(expected) == 3
    stored = await stored_values(
        entry.runtime_data.api, sensor_id, min(expected), max(expected) + STEP, STEP
    )
    assert stored == pytest.approx(expected)


async def test_proxy_holds_until_cleared(
    hass: HomeAssistant, live_server: LiveServer, proxy: FaultProxy
) -> None:
    """A held request reaches the server once the fault is cleared."""
    session = async_get_clientsession(hass, verify_ssl=False)
    proxy.fail(Fault.HOLD, "GET /api/v3_0/health/ready")
    request = hass.async_create_task(session.get(f"{proxy.url}/api/v3_0/health/ready"))
    async with asyncio.timeout(GUARD):
        await proxy.wait_for(Fault.HOLD)
    assert not request.done()
    proxy.clear()
    async with asyncio.timeout(GUARD):
        response = await request
    assert response.status == 200
    response.release()
