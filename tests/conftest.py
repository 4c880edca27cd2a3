"""Shared fixtures: a recorded FlexMeasures server behind HA's aiohttp mock."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http import HTTPStatus
from itertools import repeat
import json
import logging
from pathlib import Path
import re
import sys
from types import FrameType
from typing import Any
from unittest.mock import PropertyMock, patch

from homeassistant import block_async_io
from homeassistant.config_entries import ConfigSubentryData, ConfigSubentryDataWithId
from homeassistant.const import CONF_EMAIL, CONF_PASSWORD, CONF_URL, CONF_VERIFY_SSL
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.util import dt as dt_util
import pandas as pd
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.test_util.aiohttp import (
    AiohttpClientMocker,
    AiohttpClientMockResponse,
)
from yarl import URL

from custom_components.flexmeasures.api import REDACTED
from custom_components.flexmeasures.const import (
    CONF_ACCOUNT_ID,
    CONFIG_ENTRY_MINOR_VERSION,
    DOMAIN,
)

FIXTURES = Path(__file__).parent / "fixtures"

SERVER_URL = "https://fm.example.com"
EMAIL = "ha@example.com"
PASSWORD = "correct horse battery staple"  # noqa: S105
TOKEN = "secret-token-abc123"  # noqa: S105
ACCOUNT_ID = 3
UNIQUE_ID = f"account_{ACCOUNT_ID}"
# The unique id version 1.2 gave the entry (and so its devices and entities).
OLD_UNIQUE_ID = f"{SERVER_URL}_{ACCOUNT_ID}"
# When tests/fixtures/sensor_data.json was recorded; freeze time here for values.
RECORDED_AT = "2026-11-02T10:07:30+00:00"

ENTRY_DATA: dict[str, Any] = {
    CONF_URL: SERVER_URL,
    CONF_EMAIL: EMAIL,
    CONF_PASSWORD: PASSWORD,
    CONF_VERIFY_SSL: True,
    CONF_ACCOUNT_ID: ACCOUNT_ID,
}

JSON_HEADERS = {"Content-Type": "application/json"}

type Handler = Callable[[str, URL, Any], Any]
# Look-ups of jobs and schedules the server does not know (recorded answers).
UNKNOWN_SCHEDULE = re.compile(r"GET /api/v3_0/sensors/\d+/schedules/[^/]+")
UNKNOWN_JOB = re.compile(r"GET /api/v3_0/jobs/[^/]+")


def load_fixture(name: str) -> Any:
    """Load a recorded API response from tests/fixtures."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


# Placeholders scripts/fmserver/record.py puts where the real answer was volatile.
UUID_MARK = "<uuid>"
TIMESTAMP_MARK = "<timestamp>"
TOKEN_MARK = "<token>"  # noqa: S105 - a placeholder


def _fill(value: Any, values: dict[str, str]) -> Any:
    """Replace recording placeholders by ``values`` (mark -> text), keeping types."""
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    if isinstance(value, str):
        for mark, text in values.items():
            value = value.replace(mark, text)
    return value


def recorded(
    name: str, *, uuid: str = "", timestamp: str = "", **body: Any
) -> tuple[int, Any]:
    """Return the status and body FlexMeasures 1.0.1 really answered (record.py).

    Placeholders get ``uuid``, ``timestamp`` (or now) and the test's token;
    ``body`` overrides top-level fields (a message, say), keeping the shape.
    """
    document = load_fixture(f"recorded/{name}.json")
    answer = _fill(
        document["body"],
        {
            UUID_MARK: uuid,
            TIMESTAMP_MARK: timestamp or dt_util.utcnow().isoformat(),
            TOKEN_MARK: TOKEN,
        },
    )
    if body:
        assert isinstance(answer, dict)
        assert set(body) <= set(answer), f"{name} has no {set(body) - set(answer)}"
        answer.update(body)
    return int(document["status"]), answer


class RouteError(Exception):
    """Marker for a route configured to raise instead of answering."""


@dataclass
class FakeFlexMeasures:
    """A FlexMeasures server answering from recorded responses.

    Tests change ``responses`` (JSON per "METHOD path"), ``statuses`` (HTTP status
    per "METHOD path") or ``errors`` (an exception to raise per "METHOD path", or
    ``"*"`` for every request) and inspect ``calls``.
    """

    password: str = PASSWORD
    emails: set[str] = field(default_factory=lambda: {EMAIL})
    responses: dict[str, Any] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)
    handlers: dict[str, Handler] = field(default_factory=dict)
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    unauthorized_requests: int = 0

    def __post_init__(self) -> None:
        """Load the recorded responses."""
        self.responses.update(
            {
                "GET /api/": load_fixture("versions.json"),
                "POST /api/requestAuthToken": load_fixture("auth_token.json"),
                "GET /api/v3_0/users": load_fixture("users.json"),
                f"GET /api/v3_0/accounts/{ACCOUNT_ID}": load_fixture("account.json"),
                "GET /api/v3_0/assets": load_fixture("assets.json"),
                "GET /api/v3_0/sensors": load_fixture("sensors.json"),
            }
        )
        # Sensor values, recorded for a refresh at RECORDED_AT (issue 4).
        self.responses.update(
            {
                f"GET /api/v3_0/sensors/{sensor_id}/data": series
                for sensor_id, series in load_fixture("sensor_data.json").items()
            }
        )

    def count(self, key: str) -> int:
        """Return how often "METHOD path" was requested."""
        return sum(1 for method, path, _ in self.calls if f"{method} {path}" == key)

    async def __call__(
        self, method: str, url: URL, data: Any
    ) -> AiohttpClientMockResponse:
        """Answer one request."""
        method = method.upper()
        key = f"{method} {url.path}"
        self.calls.append((method, url.path, data))
        error = self.errors.get(key) or self.errors.get("*")
        if error is not None:
            raise error
        if key == "POST /api/requestAuthToken":
            if not data or data.get("email") not in self.emails:
                return self._respond(method, url, *recorded("auth_token_unknown_email"))
            if data.get("password") != self.password:
                return self._respond(
                    method, url, *recorded("auth_token_wrong_password")
                )
        elif url.path.startswith("/api/v3_0/") and self.unauthorized_requests > 0:
            self.unauthorized_requests -= 1
            return self._respond(method, url, *recorded("unauthorized"))
        if key in self.handlers:
            # A handler answers (status, body) or (status, body, extra headers).
            status, body, *headers = self.handlers[key](method, url, data)
            return self._respond(method, url, status, body, *headers)
        if key not in self.responses:
            if UNKNOWN_SCHEDULE.fullmatch(key):
                uuid = url.path.rsplit("/", 1)[1]
                return self._respond(
                    method, url, *recorded("schedule_unknown", uuid=uuid)
                )
            if UNKNOWN_JOB.fullmatch(key):
                uuid = url.path.rsplit("/", 1)[1]
                return self._respond(method, url, *recorded("job_unknown", uuid=uuid))
            return self._respond(
                method, url, HTTPStatus.NOT_FOUND, {"message": "Not found"}
            )
        return self._respond(
            method, url, self.statuses.get(key, HTTPStatus.OK), self.responses[key]
        )

    @staticmethod
    def _respond(
        method: str,
        url: URL,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> AiohttpClientMockResponse:
        """Build a JSON response the way FlexMeasures sends it."""
        return AiohttpClientMockResponse(
            method,
            url,
            status=status,
            text=json.dumps(body),
            headers={
                **JSON_HEADERS,
                "FlexMeasures-Version": "1.0.1",
                **(headers or {}),
            },
        )


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(request: pytest.FixtureRequest) -> None:
    """Enable the custom integration in every test.

    A test that uses the recorder (``recorder_mock``, also through a fixture
    such as ``tibber_entry``) gets it before Home Assistant starts, as it must.
    """
    if "recorder_mock" in request.fixturenames:
        request.getfixturevalue("recorder_mock")
    request.getfixturevalue("enable_custom_integrations")


@pytest.fixture
def entity_registry_enabled_by_default() -> Generator[None]:
    """Create entities that are disabled by default as enabled."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        new_callable=PropertyMock,
        return_value=True,
    ):
        yield


@pytest.fixture
def fake_server(aioclient_mock: AiohttpClientMocker) -> FakeFlexMeasures:
    """Serve the recorded FlexMeasures API on every URL."""
    server = FakeFlexMeasures()
    everything = re.compile(".*")
    for method in ("get", "post", "patch", "delete"):
        aioclient_mock.request(  # type: ignore[no-untyped-call]
            method, everything, side_effect=server
        )
    return server


@pytest.fixture
def mock_config_entry() -> MockConfigEntry:
    """Return the entry a successful set-up creates."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"Home ({SERVER_URL})",
        unique_id=UNIQUE_ID,
        data=dict(ENTRY_DATA),
        version=1,
        minor_version=CONFIG_ENTRY_MINOR_VERSION,
    )


@pytest.fixture
async def init_integration(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
) -> MockConfigEntry:
    """Set up the integration against the recorded server."""
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    return mock_config_entry


async def setup_entry(hass: HomeAssistant, entry: MockConfigEntry) -> MockConfigEntry:
    """Set up an entry against the fake server (after freezing time, say)."""
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


@pytest.fixture
def mock_setup_entry() -> Generator[None]:
    """Keep config-flow tests from setting the entry up."""
    with patch("custom_components.flexmeasures.async_setup_entry", return_value=True):
        yield


def entity_snapshot(hass: HomeAssistant, entry_id: str) -> dict[str, Any]:
    """Return the entry's entities as a dict that reads the same on every HA target.

    Registry entries gain fields between Home Assistant releases, so snapshots hold
    only what this integration decides: ids, names, classes, units, state and
    attributes.
    """
    entity_registry = er.async_get(hass)
    device_registry = dr.async_get(hass)
    result: dict[str, Any] = {}
    for entity in sorted(
        er.async_entries_for_config_entry(entity_registry, entry_id),
        key=lambda item: item.entity_id,
    ):
        state = hass.states.get(entity.entity_id)
        device = device_registry.async_get(entity.device_id or "")
        result[entity.entity_id] = {
            "unique_id": entity.unique_id,
            "translation_key": entity.translation_key,
            "original_name": entity.original_name,
            "device_class": entity.original_device_class,
            "entity_category": entity.entity_category,
            "disabled_by": entity.disabled_by,
            "unit": entity.unit_of_measurement,
            "device": device.name if device else None,
            "state": state.state if state else None,
            "attributes": (
                {str(key): value for key, value in state.attributes.items()}
                if state
                else None
            ),
        }
    return result


def find_device(
    hass: HomeAssistant, entry_id: str, identifier: tuple[str, str]
) -> dr.DeviceEntry | None:
    """Return the entry's device with this identifier (lookup that every HA has)."""
    return next(
        (
            device
            for device in dr.async_entries_for_config_entry(
                dr.async_get(hass), entry_id
            )
            if identifier in device.identifiers
        ),
        None,
    )


# --- Scheduling: controlled devices and the scheduling endpoints -------------

BATTERY_SUBENTRY_ID = "battery01subentry"
BATTERY_SENSOR_ID = 20
BATTERY_ASSET_ID = 11
SOC_ENTITY = "sensor.home_battery_soc"

BATTERY_DATA: dict[str, Any] = {
    "name": "Home battery",
    "kind": "battery",
    "power_sensor": BATTERY_SENSOR_ID,
    "soc_entity": SOC_ENTITY,
    "soc_unit": "percent",
    "capacity": 10.0,
    "soc_min": 10.0,
    "soc_max": 90.0,
    "charge_power": 5.0,
    "discharge_power": 5.0,
    "roundtrip_efficiency": 81.0,
    "consumption_price_sensor": 30,
    "horizon": 12.0,
    "auto_reschedule": {"interval": 0, "soc_drift": 0},
}


def job_id(number: int) -> str:
    """Return the deterministic job uuid the fake server hands out."""
    return f"00000000-0000-4000-8000-{number:012d}"


@dataclass
class FakeScheduling:
    """The scheduling endpoints: trigger, job status and schedule.

    Every answer is a recorded one (tests/fixtures/recorded). A job answers
    ``pending_polls`` times (and as long as ``hold`` is set) with 202/STARTED,
    then with ``final_status`` (FINISHED 200, FAILED 422, CANCELED or STOPPED
    202; ``ended_at`` False drops ``ended-at``, as the server sometimes does).
    A FINISHED job with ``unmet`` (target moment, deviation in kWh) answers as
    one whose plan misses those targets (``job_unmet_target``). With ``fallback``
    a FAILED job's schedule redirects to a fallback job, which answers like any
    job (``pending_polls`` times STARTED), ending with ``fallback_status``.
    The schedule has ``values`` (or a default pattern: two slots charging 2 kW,
    two idle, one discharging 1 kW, then idle).
    """

    server: FakeFlexMeasures
    pending_polls: int = 1
    final_status: str = "FINISHED"
    failure_message: str = "Scheduling job failed: infeasible problem"
    values: list[float] | None = None
    hold: bool = False
    ended_at: bool = True
    triggers: list[dict[str, Any]] = field(default_factory=list)
    polls: dict[str, int] = field(default_factory=dict)
    enqueued: dict[str, str] = field(default_factory=dict)
    fallback: bool = False
    fallback_status: str = "FINISHED"
    fallbacks: dict[str, str] = field(default_factory=dict)
    unmet: list[tuple[datetime, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Register the routes on the fake server."""
        self.server.responses[f"GET /api/v3_0/sensors/{BATTERY_SENSOR_ID}"] = next(
            sensor
            for sensor in load_fixture("sensors.json")
            if sensor["id"] == BATTERY_SENSOR_ID
        )
        self.server.handlers[
            f"POST /api/v3_0/assets/{BATTERY_ASSET_ID}/schedules/trigger"
        ] = self._trigger

    @property
    def last_flex_model(self) -> dict[str, Any]:
        """Return the flex-model of the latest trigger."""
        model: list[dict[str, Any]] = self.triggers[-1]["flex-model"]
        return model[0]

    def _trigger(self, method: str, url: URL, data: Any) -> tuple[int, Any]:
        """Queue a job: 202 with ``job`` and ``job-url``, as 1.0.1 answers."""
        self.triggers.append(data)
        uuid = job_id(len(self.triggers))
        self.polls[uuid] = 0
        self.enqueued[uuid] = dt_util.utcnow().isoformat()
        self.server.handlers[f"GET /api/v3_0/jobs/{uuid}"] = self._job
        self.server.handlers[
            f"GET /api/v3_0/sensors/{BATTERY_SENSOR_ID}/schedules/{uuid}"
        ] = self._schedule
        return recorded("schedule_trigger", uuid=uuid)

    def _job(self, method: str, url: URL, data: Any) -> tuple[int, Any]:
        """Answer a job-status look-up with the recorded answer for its status."""
        uuid = url.path.rsplit("/", 1)[1]
        self.polls[uuid] += 1
        enqueued = self.enqueued[uuid]
        final = self.fallback_status if uuid in self.fallbacks else self.final_status
        if self.hold or self.polls[uuid] <= self.pending_polls:
            status, body = recorded("job_started", uuid=uuid, timestamp=enqueued)
        elif final == "FINISHED":
            status, body = recorded(
                "job_unmet_target" if self.unmet else "job_finished", uuid=uuid
            )
            body["enqueued-at"] = body["enqueued_at"] = enqueued
            if self.unmet:
                # The recorded result, one missed target per item of ``unmet``.
                (entry,) = body["result"]["unresolved"]
                template = entry["soc-targets"][0]
                entry["soc-targets"] = [
                    {**template, "datetime": at.isoformat(), "violation": f"{kwh} kWh"}
                    for at, kwh in self.unmet
                ]
            if not self.ended_at:
                # The real server sometimes answers FINISHED without ended-at.
                body["ended-at"] = body["ended_at"] = None
        elif final == "FAILED":
            status, body = recorded(
                "job_no_prices_failed", uuid=uuid, message=self.failure_message
            )
        else:
            status, body = recorded(f"job_{final.lower()}", uuid=uuid)
        return status, body

    def _schedule(self, method: str, url: URL, data: Any) -> tuple[Any, ...]:
        """Return the computed power schedule, shaped as 1.0.1 answers it.

        A FAILED job has no schedule (400), or with ``fallback`` a 303 to the plan
        of the fallback job FlexMeasures queued (recorded answers both).
        """
        uuid = url.path.rsplit("/", 1)[1]
        if uuid in self.fallbacks:
            uuid = self.fallbacks[uuid]
        elif self.final_status == "FAILED":
            if not self.fallback:
                return recorded("schedule_failed_job")
            fallback = job_id(1000 + len(self.fallbacks) + 1)
            self.fallbacks[fallback] = uuid
            self.polls[fallback] = 0
            self.enqueued[fallback] = dt_util.utcnow().isoformat()
            self.server.handlers[f"GET /api/v3_0/jobs/{fallback}"] = self._job
            path = f"/api/v3_0/sensors/{BATTERY_SENSOR_ID}/schedules/{fallback}"
            self.server.handlers[f"GET {path}"] = self._schedule
            location = f"{SERVER_URL}{path}?{url.query_string}"
            return (
                *recorded("schedule_fallback_redirect", uuid=fallback),
                {"Location": location},
            )
        payload = self.triggers[int(uuid.rsplit("-", 1)[1]) - 1]
        duration = dt_util.parse_duration(url.query["duration"])
        assert duration is not None
        slots = int(duration / timedelta(minutes=15))
        values = self.values
        if values is None:
            values = [2.0, 2.0, 0.0, 0.0, -1.0] + [0.0] * max(slots - 5, 0)
        return recorded(
            "schedule",
            values=values[:slots],
            start=payload["start"],
            duration=url.query["duration"],
            unit=url.query.get("unit", "kW"),
        )


@pytest.fixture
def fake_scheduling(fake_server: FakeFlexMeasures) -> FakeScheduling:
    """Serve the scheduling endpoints."""
    return FakeScheduling(fake_server)


@pytest.fixture
def fast_polling() -> Generator[None]:
    """Poll jobs without waiting, so tests do not sleep."""
    with patch(
        "custom_components.flexmeasures.scheduling.waiting.poll_delays",
        lambda *_: repeat(0.0),
    ):
        yield


@pytest.fixture
def battery_subentry() -> ConfigSubentryDataWithId:
    """Return the controlled-device subentry of the home battery."""
    return ConfigSubentryDataWithId(
        data=dict(BATTERY_DATA),
        subentry_id=BATTERY_SUBENTRY_ID,
        subentry_type="controlled_device",
        title="Home battery",
        unique_id=f"controlled_device_{BATTERY_SENSOR_ID}",
    )


@pytest.fixture
def battery_entry(battery_subentry: ConfigSubentryDataWithId) -> MockConfigEntry:
    """Return the entry with one controlled device, the home battery."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"Home ({SERVER_URL})",
        unique_id=UNIQUE_ID,
        data=dict(ENTRY_DATA),
        version=1,
        minor_version=CONFIG_ENTRY_MINOR_VERSION,
        subentries_data=[battery_subentry],
    )


@pytest.fixture
async def init_battery(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    battery_entry: MockConfigEntry,
) -> MockConfigEntry:
    """Set up the integration with the home battery, its SoC at 50 %."""
    hass.states.async_set(SOC_ENTITY, "50", {"unit_of_measurement": "%"})
    battery_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(battery_entry.entry_id)
    await hass.async_block_till_done()
    return battery_entry


def battery_device(hass: HomeAssistant) -> dr.DeviceEntry:
    """Return the device registry entry of the home battery."""
    registry = dr.async_get(hass)
    return next(
        device
        for entry in hass.config_entries.async_entries(DOMAIN)
        for device in dr.async_entries_for_config_entry(registry, entry.entry_id)
        if (DOMAIN, f"controlled_device_{BATTERY_SUBENTRY_ID}") in device.identifiers
    )


# Measurement links: an entry with links, and a server that accepts measurements.

POWER_ENTITY = "sensor.battery_power"
LINK_DATA: dict[str, Any] = {
    "entity_id": POWER_ENTITY,
    "sensor_id": 20,
    "sensor_unit": "kW",
    "sensor_resolution": 900,
    "invert": False,
    "aggregation": "mean",
    "upload_interval": {"hours": 0, "minutes": 5, "seconds": 0},
}


def link_subentry(**changes: Any) -> ConfigSubentryData:
    """Return a measurement link subentry, by default battery power -> sensor 20."""
    data = {**LINK_DATA, **changes}
    return ConfigSubentryData(
        data=data,
        subentry_type="measurement_link",
        title=f"{data['entity_id']} -> {data['sensor_id']}",
        unique_id=f"measurement_link_{data['sensor_id']}",
    )


@pytest.fixture
def measurement_links() -> list[ConfigSubentryData]:
    """Return the links the linked entry has; override to vary."""
    return [link_subentry()]


@pytest.fixture
def linked_entry(
    fake_server: FakeFlexMeasures, measurement_links: list[ConfigSubentryData]
) -> MockConfigEntry:
    """Return an entry with measurement links, on a server that takes measurements."""
    for link in measurement_links:
        path = f"POST /api/v3_0/sensors/{link['data']['sensor_id']}/data"
        fake_server.responses[path] = recorded("sensor_data_post")[1]
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"Home ({SERVER_URL})",
        unique_id=UNIQUE_ID,
        data=dict(ENTRY_DATA),
        version=1,
        minor_version=CONFIG_ENTRY_MINOR_VERSION,
        subentries_data=measurement_links,
    )


def posted(server: FakeFlexMeasures, sensor_id: int) -> list[dict[str, Any]]:
    """Return the bodies of the measurement POSTs that reached a sensor."""
    path = f"/api/v3_0/sensors/{sensor_id}/data"
    return [
        data for method, url, data in server.calls if (method, url) == ("POST", path)
    ]


# --- Secrets: logs never show the password, the access token or the e-mail ----

SECRETS: tuple[str, ...] = (PASSWORD, TOKEN, EMAIL)
# Every logger a request passes through; "" is the root logger.
DEBUG_LOGGERS = (
    "",
    "homeassistant",
    "custom_components.flexmeasures",
    "flexmeasures_client",
    "aiohttp",
)


@pytest.fixture
def no_secrets_logged(caplog: pytest.LogCaptureFixture) -> Generator[None]:
    """Log everything at debug level; afterwards, assert no secret was logged."""
    # Distinct values that occur nowhere else, so a leak cannot hide.
    assert all(len(secret) >= 12 for secret in SECRETS)
    for name in DEBUG_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    yield
    # At teardown caplog.text holds teardown records only: format the test's own.
    formatter = logging.Formatter()
    records = [*caplog.get_records("setup"), *caplog.get_records("call")]
    text = "\n".join(formatter.format(record) for record in records)
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} was logged"
    if "requestAuthToken" in text:  # the library dumped a login: it was redacted
        assert REDACTED in text


@pytest.fixture
def pandas_off_the_loop(
    disable_block_async_io: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[None]:
    """Fail when pandas runs in the event loop, or a blocking call is reported.

    Home Assistant's detector is on as in production (tests skip the import
    check), with tzdata not imported yet: the lazy import pandas makes on its
    first time-zone aware index is what it reported. A profiler on the event
    loop's thread catches any pandas call, whether it imports anything or not.
    """
    monkeypatch.setattr(block_async_io, "_IN_TESTS", False)
    block_async_io.enable()
    monkeypatch.delitem(sys.modules, "tzdata", raising=False)
    pandas_dir = str(Path(pd.__file__).parent)
    calls: list[str] = []

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(pandas_dir):
            calls.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")

    sys.setprofile(profile)
    try:
        yield
    finally:
        sys.setprofile(None)
    assert calls == []
    assert "Detected blocking call" not in caplog.text


# Real source integrations for forecast links (Nord Pool, Tibber, a solar
# forecast): fixtures any test can ask for.
from .forecast_sources import (  # noqa: E402
    nordpool_api,
    nordpool_currency,
    nordpool_entry,
    nordpool_published,
    sample_solar,
    solar_entry,
    sources_clock,
    tibber_client,
    tibber_entry,
)

__all__ = [
    "nordpool_api",
    "nordpool_currency",
    "nordpool_entry",
    "nordpool_published",
    "sample_solar",
    "solar_entry",
    "sources_clock",
    "tibber_client",
    "tibber_entry",
]


# --- Sites: the battery and the EV charger planned together (issue 16) ---------

EV_SUBENTRY_ID = "evcharger01subentry"
EV_SENSOR_ID = 22
EV_SOC_ENTITY = "sensor.ev_energy"
SITE_SUBENTRY_ID = "site01subentry"
SITE_ASSET_ID = 10
PRICE_SENSOR_ID = 30
INFLEXIBLE_SENSOR_ID = 31

EV_DATA: dict[str, Any] = {
    "name": "EV charger",
    "kind": "ev_charger",
    "power_sensor": EV_SENSOR_ID,
    "soc_entity": EV_SOC_ENTITY,
    "soc_unit": "kwh",
    "capacity": 60.0,
    "soc_min": 0.0,
    "soc_max": 60.0,
    "charge_power": 11.0,
    "discharge_power": 0.0,
    "horizon": 12.0,
    "auto_reschedule": {"interval": 0, "soc_drift": 0},
}

SITE_DATA: dict[str, Any] = {
    "name": "Home site",
    "devices": [BATTERY_SUBENTRY_ID, EV_SUBENTRY_ID],
    "asset_id": SITE_ASSET_ID,
    "site_power_capacity": 10.0,
    "consumption_price_sensor": PRICE_SENSOR_ID,
    "inflexible_sensors": [INFLEXIBLE_SENSOR_ID],
    "replan_on_prices": True,
}


def ev_subentry() -> ConfigSubentryDataWithId:
    """Return the controlled-device subentry of the EV charger."""
    return ConfigSubentryDataWithId(
        data=dict(EV_DATA),
        subentry_id=EV_SUBENTRY_ID,
        subentry_type="controlled_device",
        title="EV charger",
        unique_id=f"controlled_device_{EV_SENSOR_ID}",
    )


def site_subentry(**changes: Any) -> ConfigSubentryDataWithId:
    """Return the site subentry of the battery and the EV charger."""
    data = {**SITE_DATA, **changes}
    return ConfigSubentryDataWithId(
        data=data,
        subentry_id=SITE_SUBENTRY_ID,
        subentry_type="site",
        title=data["name"],
        unique_id=None,
    )


@dataclass
class FakeSiteScheduling:
    """The asset-level trigger of the site and its job, as FlexMeasures 1.0.1 answers.

    Recorded answers (``record.py --only site``): the trigger, the job statuses
    and each device's schedule of the one job. A job answers STARTED while
    ``hold`` is set, then ``final_status`` (FINISHED, or FAILED without a plan);
    a job in ``failed_jobs`` fails whatever ``final_status`` says.
    """

    server: FakeFlexMeasures
    hold: bool = False
    final_status: str = "FINISHED"
    triggers: list[dict[str, Any]] = field(default_factory=list)
    # Jobs that fail whatever ``final_status`` says.
    failed_jobs: set[str] = field(default_factory=set)
    # A finished job misses the battery's target at this moment (recorded).
    unmet_at: datetime | None = None

    def __post_init__(self) -> None:
        """Register the site's trigger route."""
        self.server.handlers[
            f"POST /api/v3_0/assets/{SITE_ASSET_ID}/schedules/trigger"
        ] = self._trigger

    def _trigger(self, method: str, url: URL, data: Any) -> tuple[int, Any]:
        """Queue a site job: 202 with ``job``, as recorded."""
        self.triggers.append(data)
        uuid = job_id(5000 + len(self.triggers))
        self.register(uuid)
        return recorded("site_schedule_trigger", uuid=uuid)

    def register(self, uuid: str) -> None:
        """Answer the job's status and its devices' schedules."""
        self.server.handlers[f"GET /api/v3_0/jobs/{uuid}"] = self._job
        for sensor_id in (BATTERY_SENSOR_ID, EV_SENSOR_ID):
            self.server.handlers[
                f"GET /api/v3_0/sensors/{sensor_id}/schedules/{uuid}"
            ] = self._schedule

    def _job(self, method: str, url: URL, data: Any) -> tuple[int, Any]:
        """Answer STARTED while held, then the final status."""
        uuid = url.path.rsplit("/", 1)[1]
        if self.hold:
            return recorded("site_job_started", uuid=uuid)
        if self.final_status == "FAILED" or uuid in self.failed_jobs:
            return recorded(
                "job_no_prices_failed",
                uuid=uuid,
                message="Scheduling job failed: no prices",
            )
        if self.unmet_at is not None:
            status, body = recorded("site_job_unmet_target", uuid=uuid)
            (entry,) = body["result"]["unresolved"]
            # The battery's asset as this test server numbers it.
            entry["asset"] = BATTERY_ASSET_ID
            entry["soc-targets"][0]["datetime"] = self.unmet_at.isoformat()
            return status, body
        return recorded("site_job_finished", uuid=uuid)

    def _schedule(self, method: str, url: URL, data: Any) -> tuple[int, Any]:
        """Return the device's recorded plan of the site job, from its start."""
        uuid = url.path.rsplit("/", 1)[1]
        if self.final_status == "FAILED" or uuid in self.failed_jobs:
            return recorded("schedule_failed_job")
        sensor_id = int(url.path.split("/")[4])
        name = "battery" if sensor_id == BATTERY_SENSOR_ID else "ev_charger"
        start = self.triggers[-1]["start"] if self.triggers else RECORDED_AT
        return recorded(
            f"site_schedule_{name}", start=start, duration=url.query["duration"]
        )


@pytest.fixture
def fake_site(fake_server: FakeFlexMeasures) -> FakeSiteScheduling:
    """Serve the site's asset-level scheduling endpoints."""
    return FakeSiteScheduling(fake_server)


@pytest.fixture
def site_entry(battery_subentry: ConfigSubentryDataWithId) -> MockConfigEntry:
    """Return the entry with the battery, the EV charger and their site."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"Home ({SERVER_URL})",
        unique_id=UNIQUE_ID,
        data=dict(ENTRY_DATA),
        version=1,
        minor_version=CONFIG_ENTRY_MINOR_VERSION,
        subentries_data=[battery_subentry, ev_subentry(), site_subentry()],
    )


@pytest.fixture
async def init_site(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    fake_site: FakeSiteScheduling,
    site_entry: MockConfigEntry,
) -> MockConfigEntry:
    """Set up the site: the battery at 50 %, the EV at 12 kWh."""
    hass.states.async_set(SOC_ENTITY, "50", {"unit_of_measurement": "%"})
    hass.states.async_set(EV_SOC_ENTITY, "12", {"unit_of_measurement": "kWh"})
    site_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(site_entry.entry_id)
    await hass.async_block_till_done()
    return site_entry
