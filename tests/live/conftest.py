"""Fixtures for the live tier: the integration against a real FlexMeasures server.

The server is the one ``scripts/flexmeasures-server start`` runs on 127.0.0.1; it
writes what it seeded (URL, credentials, ids, the battery's flex-model) to
``$FLEXMEASURES_SERVER_DIR/seed.json``. These tests never skip: without a seed file
or a server that answers, every test fails and says why.

Sockets are allowed to 127.0.0.1 only: phcc allows that host before it disables
sockets, and ``socket_enabled`` turns socket creation back on while keeping that
host restriction. Home Assistant's shared aiohttp session talks to the server.

Fixtures to build on (one entry per test, set up against the real server):
``live_server`` (the seed), ``live_entry`` (an entry not set up yet) and
``loaded_entry`` (that entry, loaded), ``proxy`` (a loopback proxy to the server
that fails on purpose, see proxy.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import json
import os
from pathlib import Path
import socket
import time
from typing import Any
from unittest.mock import patch

from aiohttp import ClientError, ClientTimeout
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_EMAIL, CONF_PASSWORD, CONF_URL, CONF_VERIFY_SSL
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures.api import FlexMeasuresApi
from custom_components.flexmeasures.const import CONF_ACCOUNT_ID, DOMAIN
from custom_components.flexmeasures.data import FlexMeasuresConfigEntry
from custom_components.flexmeasures.identity import account_unique_id

from .proxy import LOOPBACK, FaultProxy

DEFAULT_SERVER_DIR = Path.home() / ".cache" / "flexmeasures-ha" / "server"
HOW_TO_START = (
    "Start it with `scripts/flexmeasures-server start` (or run "
    "`FLEXMEASURES_TEST_STAGES=live scripts/test`, which starts it and mounts "
    "$FLEXMEASURES_SERVER_DIR into the test environment)."
)


@dataclass(frozen=True, kw_only=True)
class Account:
    """A seeded FlexMeasures user and the account it belongs to."""

    email: str
    password: str
    account_id: int
    account_name: str


@dataclass(frozen=True, kw_only=True)
class LiveServer:
    """What scripts/flexmeasures-server seeded, read from its seed.json."""

    url: str
    version: str
    home: Account
    other: Account
    other_asset_ids: frozenset[int]
    other_sensor_ids: frozenset[int]
    assets: Mapping[str, int]
    sensors: Mapping[str, int]
    units: Mapping[str, str]
    battery_capacity_kwh: float
    battery_soc_min_kwh: float
    battery_power_kw: float
    battery_flex_model: Mapping[str, Any]
    site_flex_context: Mapping[str, Any]

    @property
    def unique_id(self) -> str:
        """Return the unique id the config flow gives the home account's entry."""
        return account_unique_id(self.home.account_id)

    def entry_data(self, account: Account | None = None) -> dict[str, Any]:
        """Return config entry data for an account (the home account by default)."""
        account = account or self.home
        return {
            CONF_URL: self.url,
            CONF_EMAIL: account.email,
            CONF_PASSWORD: account.password,
            CONF_VERIFY_SSL: False,
            CONF_ACCOUNT_ID: account.account_id,
        }

    def user_input(self, account: Account | None = None) -> dict[str, Any]:
        """Return what a user types into the config flow's user step."""
        data = self.entry_data(account)
        del data[CONF_ACCOUNT_ID]
        return data


def _seed_path() -> Path:
    """Return where the server script wrote its seed file."""
    server_dir = os.environ.get("FLEXMEASURES_SERVER_DIR") or DEFAULT_SERVER_DIR
    return Path(server_dir) / "seed.json"


def _read_seed(path: Path) -> LiveServer:
    """Parse seed.json; fail the test with the reason if that is impossible."""
    try:
        seed = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        pytest.fail(f"No FlexMeasures seed file at {path}. {HOW_TO_START}")
    except (OSError, ValueError) as err:
        pytest.fail(f"Unreadable FlexMeasures seed file {path}: {err}. {HOW_TO_START}")
    try:
        other = seed["other"]
        battery = seed["battery"]
        return LiveServer(
            url=seed["url"],
            version=seed["flexmeasures_version"],
            home=Account(
                email=seed["email"],
                password=seed["password"],
                account_id=int(seed["account_id"]),
                account_name=seed["account_name"],
            ),
            other=Account(
                email=other["email"],
                password=other["password"],
                account_id=int(other["account_id"]),
                account_name=other["account_name"],
            ),
            other_asset_ids=frozenset(int(i) for i in other["assets"].values()),
            other_sensor_ids=frozenset(int(i) for i in other["sensors"].values()),
            assets={key: int(value) for key, value in seed["assets"].items()},
            sensors={key: int(value) for key, value in seed["sensors"].items()},
            units=dict(seed["units"]),
            battery_capacity_kwh=float(battery["capacity_kwh"]),
            battery_soc_min_kwh=float(battery["soc_min_kwh"]),
            battery_power_kw=float(battery["power_kw"]),
            battery_flex_model=battery["flex_model"],
            site_flex_context=seed["site_flex_context"],
        )
    except (KeyError, TypeError, ValueError) as err:
        pytest.fail(f"Seed file {path} lacks {err}; restart the server. {HOW_TO_START}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this tier ``live``, with sockets limited to loopback."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.live)
            item.add_marker(pytest.mark.allow_hosts([LOOPBACK]))


@pytest.fixture(scope="session")
def live_server() -> LiveServer:
    """Return what the local FlexMeasures server seeded."""
    return _read_seed(_seed_path())


@pytest.fixture(autouse=True)
async def require_live_server(
    hass: HomeAssistant, socket_enabled: None, live_server: LiveServer
) -> None:
    """Fail (never skip) when the server does not answer on its health endpoint."""
    session = async_get_clientsession(hass, verify_ssl=False)
    url = f"{live_server.url}/api/v3_0/health/ready"
    try:
        async with session.get(url, timeout=ClientTimeout(total=10)) as response:
            status = response.status
    except (ClientError, TimeoutError) as err:
        pytest.fail(
            f"The FlexMeasures server at {live_server.url} does not answer "
            f"({type(err).__name__}: {err}). {HOW_TO_START}"
        )
    if status != 200:
        pytest.fail(f"{url} answered HTTP {status}, not 200. {HOW_TO_START}")


@pytest.fixture
def closed_port_url() -> str:
    """Return a loopback URL on which nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port = sock.getsockname()[1]
    return f"http://{LOOPBACK}:{port}"


@pytest.fixture
def live_entry(hass: HomeAssistant, live_server: LiveServer) -> MockConfigEntry:
    """Return an entry for the home account on the real server, not set up yet."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"{live_server.home.account_name} ({live_server.url})",
        unique_id=live_server.unique_id,
        data=live_server.entry_data(),
        version=1,
    )
    entry.add_to_hass(hass)
    return entry


@pytest.fixture
async def loaded_entry(
    hass: HomeAssistant, live_entry: MockConfigEntry
) -> FlexMeasuresConfigEntry:
    """Set the home account's entry up against the real server."""
    await hass.config_entries.async_setup(live_entry.entry_id)
    await hass.async_block_till_done()
    assert live_entry.state is ConfigEntryState.LOADED, live_entry.reason
    return live_entry


@pytest.fixture
async def proxy(live_server: LiveServer) -> AsyncIterator[FaultProxy]:
    """Return a running fault proxy to the live server; closed after the test."""
    proxy = FaultProxy(live_server.url)
    await proxy.up()
    yield proxy
    await proxy.close()


def quarter_floor(moment: datetime) -> datetime:
    """Return the start of the 15-minute slot ``moment`` falls in, in UTC."""
    moment = moment.astimezone(UTC)
    return moment.replace(
        minute=moment.minute - moment.minute % 15, second=0, microsecond=0
    )


def simulate_soc(
    *,
    soc_at_start: float,
    power_kw: Iterable[float],
    resolution: timedelta,
    roundtrip_efficiency: float,
) -> list[float]:
    """Return the state of charge (kWh) at every slot boundary of a power schedule.

    Power is positive when the battery charges (the seeded sensors count
    consumption positive). Like FlexMeasures' storage scheduler, the roundtrip
    efficiency is split evenly into a charging and a discharging efficiency.
    """
    hours = resolution / timedelta(hours=1)
    one_way = roundtrip_efficiency**0.5
    soc = [soc_at_start]
    for power in power_kw:
        energy = power * hours
        soc.append(soc[-1] + (energy * one_way if energy > 0 else energy / one_way))
    return soc


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """List the waits the fault tests measured (``fault_wait`` properties)."""
    lines = [
        str(value)
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, value in report.user_properties
        if name == "fault_wait"
    ]
    if lines:
        terminalreporter.section("measured waits under faults")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def real_time_job_waits() -> Iterator[None]:
    """Wait between ingestion-job look-ups in real time.

    Home Assistant's clock (and with it its event loop's) is frozen in these
    tests, so the uploader's asyncio.sleep would last until the test moves the
    clock; the server's worker meanwhile runs in real time.
    """

    async def pause(seconds: float) -> None:
        await asyncio.get_running_loop().run_in_executor(None, time.sleep, seconds)

    with patch("custom_components.flexmeasures.uploader._pause", pause):
        yield


# Real seconds to let the server's ingestion worker store what was posted (one RQ
# job per POST; it forks per job, ~0.45 s each on this machine).
INGESTION_WAIT = 180


async def until_stored(api: FlexMeasuresApi, job: str | None) -> None:
    """Wait (real seconds) until the ingestion job of a POST finished.

    A server without an ingestion worker stored the values at once (no job).
    """
    if job is None:
        return
    for _ in range(INGESTION_WAIT):
        document = await api.async_get_job_status(job)
        status = str(document.get("status", "")).upper()
        if status == "FINISHED":
            return
        assert status in ("QUEUED", "STARTED", "DEFERRED", "SCHEDULED"), document
        await asyncio.get_running_loop().run_in_executor(None, time.sleep, 1.0)
    pytest.fail(f"Ingestion job {job} still running after {INGESTION_WAIT} s")


async def follow_ingestion(entry: FlexMeasuresConfigEntry) -> int:
    """Ask about the uploader's ingestion jobs each real second until none runs.

    Stands in for the upload timer (every 30 s) while the test's clock stands
    still; a server without an ingestion worker never leaves a job. Return the
    seconds it took; a server that is down ends it at once.
    """
    uploader = entry.runtime_data.uploader
    for waited in range(INGESTION_WAIT):
        if uploader.server_down or not any(
            link.jobs for link in uploader.links.values()
        ):
            return waited
        await asyncio.get_running_loop().run_in_executor(None, time.sleep, 1.0)
        await uploader.async_flush()
    pytest.fail(f"Ingestion jobs still running after {INGESTION_WAIT} s")


@pytest.fixture
def posts() -> Iterator[list[tuple[int, datetime, int]]]:
    """Record every accepted POST of sensor data: (sensor id, start, values)."""
    accepted: list[tuple[int, datetime, int]] = []
    original = FlexMeasuresApi.async_post_sensor_data

    async def spy(self: FlexMeasuresApi, sensor_id: int, **kwargs: Any) -> str | None:
        job = await original(self, sensor_id, **kwargs)
        accepted.append((sensor_id, kwargs["start"], len(kwargs["values"])))
        return job

    with patch.object(FlexMeasuresApi, "async_post_sensor_data", spy):
        yield accepted


async def stored_values(
    api: FlexMeasuresApi,
    sensor_id: int,
    start: datetime,
    end: datetime,
    resolution: timedelta,
) -> dict[datetime, float]:
    """Return what the server holds for ``[start, end)`` in kW: slot start -> value."""
    read = await api.async_get_sensor_data(
        sensor_id, start=start, duration=end - start, resolution=resolution, unit="kW"
    )
    return {
        read.start + index * read.resolution: value
        for index, value in enumerate(read.values)
        if value is not None
    }
