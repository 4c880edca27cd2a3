"""Tests for the typed FlexMeasures API wrapper."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
import gc
import json
from typing import Any, cast

from aiohttp import ClientConnectionError
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.test_util.aiohttp import AiohttpClientMocker
from s2python.common import (
    CommodityQuantity,
    Duration,
    PowerMeasurement,
    PowerValue,
    ReceptionStatus,
    ReceptionStatusValues,
)
from s2python.frbc import (
    FRBCActuatorStatus,
    FRBCStorageStatus,
    FRBCUsageForecast,
    FRBCUsageForecastElement,
)
from s2python.message import S2Message
from yarl import URL

from custom_components.flexmeasures.api import (
    Asset,
    FlexMeasuresApi,
    FlexMeasuresAuthenticationError,
    FlexMeasuresConnectionError,
    FlexMeasuresHttpStatusError,
    FlexMeasuresInvalidUrlError,
    FlexMeasuresRejectedError,
    FlexMeasuresResponseError,
    FlexMeasuresServerTooOldError,
    S2Cem,
    Sensor,
    TimeSeries,
    async_create_api,
    format_duration,
    normalize_url,
    s2_fill_level_range,
    s2_operation_mode,
    s2_unique_id,
)

from .conftest import (
    EMAIL,
    ENTRY_DATA,
    JSON_HEADERS,
    PASSWORD,
    FakeFlexMeasures,
    recorded,
)
from .s2_helpers import new_id, resource_manager_details, storage_description

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("fm.example.com", "https://fm.example.com"),
        ("https://fm.example.com/", "https://fm.example.com"),
        ("HTTPS://FM.Example.com:443", "https://fm.example.com"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("http://fm.example.com:80", "http://fm.example.com"),
        ("192.168.1.20:5000", "https://192.168.1.20:5000"),
        ("  http://[::1]:5000  ", "http://[::1]:5000"),
    ],
)
def test_normalize_url(raw: str, expected: str) -> None:
    """Accepted forms of a server address."""
    assert str(normalize_url(raw)) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "ftp://fm.example.com",
        "https://fm.example.com/api",
        "https://fm.example.com?x=1",
        "https://fm.example.com#top",
        "https://user:pw@fm.example.com",
        "https://",
        "http://fm.example.com:99999",
        "http://fm example.com",
    ],
)
def test_normalize_url_refuses(raw: str) -> None:
    """Anything that is not scheme://host[:port] is refused."""
    with pytest.raises(FlexMeasuresInvalidUrlError):
        normalize_url(raw)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "PT0S"),
        (timedelta(minutes=15), "PT15M"),
        (timedelta(hours=48), "PT48H"),
        (timedelta(hours=1, minutes=2, seconds=3), "PT1H2M3S"),
    ],
)
def test_format_duration(value: timedelta, text: str) -> None:
    """Durations are sent as ISO 8601."""
    assert format_duration(value) == text


def test_models_from_json() -> None:
    """Models read the API's JSON and refuse what they cannot read."""
    asset = Asset.from_json(
        {"id": 1, "name": "A", "generic_asset_type": "battery", "flex_model": "x"}
    )
    assert asset.asset_type == "battery"
    assert asset.flex_model is None
    assert asset.account_id is None

    sensor = Sensor.from_json(
        {"id": 2, "name": "s", "generic_asset_id": 1, "event_resolution": None}
    )
    assert sensor.resolution == timedelta(0)
    assert sensor.unit == ""

    series = TimeSeries.from_json(
        {
            "start": "2026-11-26T12:00:00+00:00",
            "duration": "PT1H",
            "unit": "kW",
            "values": [1, None, 2.5, 3],
        }
    )
    assert series.resolution == timedelta(minutes=15)
    assert series.values == (1.0, None, 2.5, 3.0)
    empty = TimeSeries.from_json(
        {"start": "2026-11-26T12:00:00+00:00", "duration": "PT0S", "values": []}
    )
    assert empty.resolution == timedelta(0)

    bad: list[tuple[Any, dict[str, Any]]] = [
        (Asset, {"name": "no id"}),
        (Sensor, {"id": 1, "name": "s"}),
        (
            Sensor,
            {"id": 1, "name": "s", "generic_asset_id": 1, "event_resolution": "x"},
        ),
        (
            TimeSeries,
            {"start": "2026-11-26T12:00:00", "duration": "PT1H", "values": []},
        ),
        (TimeSeries, {"start": "nonsense", "duration": "PT1H", "values": []}),
    ]
    for model, data in bad:
        with pytest.raises(FlexMeasuresResponseError):
            model.from_json(data)


async def test_construction_errors(hass: HomeAssistant) -> None:
    """Invalid e-mail and empty password are credential errors, bad hosts URL errors."""
    with pytest.raises(FlexMeasuresAuthenticationError):
        async_create_api(hass, {**ENTRY_DATA, "email": "nope"})
    with pytest.raises(FlexMeasuresAuthenticationError):
        async_create_api(hass, {**ENTRY_DATA, "password": ""})
    with pytest.raises(FlexMeasuresInvalidUrlError):
        async_create_api(hass, {**ENTRY_DATA, "url": "http://a:1:2"})


@pytest.fixture
def api(hass: HomeAssistant, fake_server: FakeFlexMeasures) -> FlexMeasuresApi:
    """Return an API talking to the recorded server."""
    return async_create_api(hass, ENTRY_DATA)


async def test_connect(api: FlexMeasuresApi) -> None:
    """Connecting reports version, account and user."""
    info = await api.async_connect()
    assert info.version == "1.0.1"
    assert info.account_id == 3
    assert info.user_name == "Home Assistant"
    assert api.server_version == "1.0.1"
    assert api.email == EMAIL


@pytest.mark.parametrize(
    ("version", "error"),
    [
        ("0.32.1", FlexMeasuresServerTooOldError),
        ("0.33.0.dev12", None),
        (None, FlexMeasuresResponseError),
        ("not-a-version", FlexMeasuresResponseError),
    ],
)
async def test_server_version(
    api: FlexMeasuresApi,
    fake_server: FakeFlexMeasures,
    version: str | None,
    error: type[Exception] | None,
) -> None:
    """Development builds count as their release; unreadable versions are errors."""
    fake_server.responses["GET /api/"]["flexmeasures_version"] = version
    if error is None:
        assert await api.async_get_server_version() == version
    else:
        with pytest.raises(error):
            await api.async_get_server_version()


async def test_inventory(api: FlexMeasuresApi) -> None:
    """Assets and sensors come back as typed models."""
    assets = await api.async_get_assets()
    assert [asset.name for asset in assets] == ["Home", "Home battery", "EV charger"]
    assert assets[1].parent_id == 10
    assert assets[1].asset_type == "battery"
    assert assets[0].flex_context == {"consumption-price": {"sensor": 30}}
    sensors = await api.async_get_sensors()
    assert sensors[0].resolution == timedelta(minutes=15)
    assert sensors[3].unit == "EUR/MWh"


async def test_sensor_data_round_trip(
    api: FlexMeasuresApi, fake_server: FakeFlexMeasures
) -> None:
    """Posting sends ISO start/duration; reading parses the series."""
    fake_server.responses["POST /api/v3_0/sensors/21/data"] = {"status": "PROCESSED"}
    await api.async_post_sensor_data(
        21, start=START, resolution=timedelta(minutes=15), values=[50, 55], unit="%"
    )
    posted = [data for method, path, data in fake_server.calls if method == "POST"][-1]
    assert posted["start"] == "2026-11-26T12:00:00+00:00"
    assert dt_util.parse_duration(posted["duration"]) == timedelta(minutes=30)
    assert posted["values"] == [50, 55]
    assert posted["unit"] == "%"
    # Known when each slot ended: the belief time follows from the slot alone.
    assert dt_util.parse_duration(posted["horizon"]) == timedelta(0)
    assert "prior" not in posted

    queries: list[dict[str, str]] = []

    def answer(method: str, url: URL, data: Any) -> tuple[int, Any]:
        queries.append(dict(url.query))
        return 200, {
            "start": "2026-11-26T12:00:00+00:00",
            "duration": "PT30M",
            "unit": "%",
            "values": [50, 55],
        }

    fake_server.handlers["GET /api/v3_0/sensors/21/data"] = answer
    series = await api.async_get_sensor_data(
        21,
        start=START,
        duration=timedelta(minutes=30),
        resolution=timedelta(minutes=15),
        unit="%",
    )
    assert series.values == (50.0, 55.0)
    assert "prior" not in queries[-1]
    # The beliefs as they stood at a moment: formed at or before it.
    await api.async_get_sensor_data(
        21,
        start=START,
        duration=timedelta(minutes=30),
        resolution=timedelta(minutes=15),
        unit="%",
        prior=START - timedelta(hours=1),
    )
    assert queries[-1]["prior"] == "2026-11-26T11:00:00+00:00"


async def test_scheduling_calls(
    api: FlexMeasuresApi, fake_server: FakeFlexMeasures
) -> None:
    """Trigger, job status and schedule go to the asset and sensor endpoints."""
    fake_server.responses["GET /api/v3_0/sensors/20"] = load_sensor(20)
    fake_server.responses["POST /api/v3_0/assets/11/schedules/trigger"] = {
        "schedule": "job-1",
        "status": "PROCESSED",
    }
    await api.async_connect()
    job = await api.async_trigger_schedule(
        sensor_id=20,
        start=START,
        duration=timedelta(hours=1),
        flex_model={"soc-at-start": "5 kWh"},
        flex_context={"consumption-price": {"sensor": 30}},
        force=True,
        now=START,
    )
    assert job == "job-1"
    trigger = [data for method, path, data in fake_server.calls if method == "POST"][-1]
    assert trigger["flex-model"] == [{"soc-at-start": "5 kWh", "sensor": 20}]
    assert trigger["force-new-job-creation"] is True

    fake_server.responses["GET /api/v3_0/jobs/job-1"] = {"status": "FINISHED"}
    assert (await api.async_get_job_status("job-1"))["status"] == "FINISHED"

    fake_server.responses["GET /api/v3_0/sensors/20/schedules/job-1"] = {
        "start": "2026-11-26T12:00:00+00:00",
        "duration": "PT1H",
        "unit": "kW",
        "values": [1, 2, 3, 4],
    }
    schedule = await api.async_get_schedule(
        sensor_id=20, job_id="job-1", duration=timedelta(hours=1)
    )
    assert schedule.values == (1.0, 2.0, 3.0, 4.0)


async def test_add_sensor(api: FlexMeasuresApi, fake_server: FakeFlexMeasures) -> None:
    """A new sensor is created on the asset."""
    fake_server.statuses["POST /api/v3_0/sensors"] = 201
    fake_server.responses["POST /api/v3_0/sensors"] = {
        "id": 40,
        "name": "grid power",
        "unit": "kW",
        "event_resolution": "PT5M",
        "generic_asset_id": 10,
    }
    sensor = await api.async_add_sensor(
        asset_id=10, name="grid power", unit="kW", resolution=timedelta(minutes=5)
    )
    assert sensor.id == 40


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        ({"errors": {"*": ClientConnectionError("down")}}, FlexMeasuresConnectionError),
        ({"errors": {"*": TimeoutError()}}, FlexMeasuresConnectionError),
        ({"status": 422, "body": {"message": "bad unit"}}, FlexMeasuresRejectedError),
        ({"status": 403, "body": {"message": "forbidden"}}, FlexMeasuresRejectedError),
        ({"status": 500, "body": None}, FlexMeasuresConnectionError),
        ({"status": 200, "body": {"not": "a list"}}, FlexMeasuresResponseError),
        ({"status": 200, "body": [{"id": "x"}]}, FlexMeasuresResponseError),
    ],
)
async def test_error_mapping(
    api: FlexMeasuresApi,
    fake_server: FakeFlexMeasures,
    setup: dict[str, Any],
    error: type[Exception],
) -> None:
    """Library errors become the integration's typed errors."""
    fake_server.errors.update(setup.get("errors", {}))
    if "status" in setup:
        fake_server.statuses["GET /api/v3_0/sensors"] = setup["status"]
        fake_server.responses["GET /api/v3_0/sensors"] = setup["body"]
    with pytest.raises(error):
        await api.async_get_sensors()


async def test_login_errors(
    api: FlexMeasuresApi, fake_server: FakeFlexMeasures
) -> None:
    """A refused login is an authentication error; a token-less answer is not."""
    fake_server.password = "other"  # noqa: S105
    with pytest.raises(FlexMeasuresAuthenticationError):
        await api.async_login()
    fake_server.password = PASSWORD
    fake_server.responses["POST /api/requestAuthToken"] = {"no": "token"}
    with pytest.raises(FlexMeasuresResponseError):
        await api.async_login()


# --- Outages (issue 9): "not now" answers are never refusals ---------------------

INTERNAL_ERROR = {"errors": ["An internal error has occurred."], "status": 500}


async def test_posted_data_stored_now_or_queued(
    api: FlexMeasuresApi, fake_server: FakeFlexMeasures
) -> None:
    """200 means stored (no job); 202 names the ingestion job that will store it."""
    path = "POST /api/v3_0/sensors/21/data"
    fake_server.responses[path] = {"status": "PROCESSED", "message": "ok"}
    job = await api.async_post_sensor_data(
        21, start=START, resolution=timedelta(minutes=15), values=[1.0], unit="kW"
    )
    assert job is None

    fake_server.statuses[path] = 202
    fake_server.responses[path] = {
        "status": "ACCEPTED",
        "message": "Sensor data has been accepted for processing.",
        "job": "4f9a1c2e-0000-4000-8000-000000000001",
        "job-url": "/api/v3_0/jobs/4f9a1c2e-0000-4000-8000-000000000001",
    }
    job = await api.async_post_sensor_data(
        21, start=START, resolution=timedelta(minutes=15), values=[1.0], unit="kW"
    )
    assert job == "4f9a1c2e-0000-4000-8000-000000000001"

    fake_server.responses[path] = {"status": "ACCEPTED"}
    with pytest.raises(FlexMeasuresResponseError, match="without a job"):
        await api.async_post_sensor_data(
            21, start=START, resolution=timedelta(minutes=15), values=[1.0], unit="kW"
        )


async def test_forecast_posted_with_its_belief_time(
    api: FlexMeasuresApi, fake_server: FakeFlexMeasures
) -> None:
    """Forecasts carry ``prior`` (no horizon); 202 names the job; 422 is a refusal."""
    path = "POST /api/v3_0/sensors/7/data"
    job_id = "4f9a1c2e-0000-4000-8000-000000000002"
    fake_server.statuses[path], fake_server.responses[path] = recorded(
        "sensor_data_post_forecast_accepted", uuid=job_id
    )
    prior = START - timedelta(hours=12)
    job = await api.async_post_sensor_data(
        7,
        start=START,
        resolution=timedelta(hours=1),
        values=[73.5, 61.5],
        unit="EUR/MWh",
        prior=prior,
    )
    assert job == job_id
    assert fake_server.calls[-1][2] == {
        "start": START.isoformat(),
        "duration": "PT2H",
        "values": [73.5, 61.5],
        "unit": "EUR/MWh",
        "prior": prior.isoformat(),
    }
    fake_server.statuses[path], fake_server.responses[path] = recorded(
        "sensor_data_post_forecast_other_currency"
    )
    with pytest.raises(FlexMeasuresRejectedError, match="got incompatible unit"):
        await api.async_post_sensor_data(
            7,
            start=START,
            resolution=timedelta(hours=1),
            values=[73.5],
            unit="SEK/MWh",
            prior=prior,
        )


@pytest.mark.parametrize(
    ("status", "body", "text"),
    [
        (500, INTERNAL_ERROR, "HTTP 500: An internal error has occurred."),
        (502, {"message": "Bad gateway"}, "HTTP 502: Bad gateway"),
        (503, {"message": "Maintenance", "status": 503}, "HTTP 503: Maintenance"),
        (429, {"message": "Too many requests"}, "HTTP 429: Too many requests"),
        (408, {}, "HTTP 408"),
        (500, ["not", "a", "dict"], "HTTP 500"),
    ],
)
async def test_server_trouble_is_a_status_error(
    api: FlexMeasuresApi,
    fake_server: FakeFlexMeasures,
    status: int,
    body: Any,
    text: str,
) -> None:
    """5xx, 408 and 429 with a JSON body mean "later", not "rejected"."""
    fake_server.statuses["POST /api/v3_0/sensors/20/data"] = status
    fake_server.responses["POST /api/v3_0/sensors/20/data"] = body
    with pytest.raises(FlexMeasuresHttpStatusError) as caught:
        await api.async_post_sensor_data(
            20, start=START, resolution=timedelta(minutes=15), values=[1.0], unit="kW"
        )
    assert caught.value.status == status
    assert str(caught.value) == f"FlexMeasures answered {text}"
    # Sent once: the integration retries on its own schedule, not the library.
    assert fake_server.count("POST /api/v3_0/sensors/20/data") == 1


async def test_login_during_a_database_outage(
    api: FlexMeasuresApi, fake_server: FakeFlexMeasures
) -> None:
    """Token refused and login failing with 500 (no database) is not a bad password.

    FlexMeasures cannot check a token without its database (401), and its login
    then answers 500: the credentials are fine, the server is not.
    """
    await api.async_login()
    fake_server.unauthorized_requests = 1
    fake_server.statuses["POST /api/requestAuthToken"] = 500
    fake_server.responses["POST /api/requestAuthToken"] = INTERNAL_ERROR
    with pytest.raises(FlexMeasuresHttpStatusError) as caught:
        await api.async_get_sensors()
    assert caught.value.status == 500
    with pytest.raises(FlexMeasuresHttpStatusError):
        await api.async_login()


async def test_connect_needs_account(
    api: FlexMeasuresApi, fake_server: FakeFlexMeasures
) -> None:
    """A server that hides the account is an unexpected answer."""
    fake_server.responses["GET /api/v3_0/accounts/3"] = ["not", "a", "dict"]
    with pytest.raises(FlexMeasuresResponseError):
        await api.async_connect()
    fake_server.responses["GET /api/v3_0/accounts/3"] = {"name": "no id"}
    with pytest.raises(FlexMeasuresResponseError):
        await api.async_connect()


def load_sensor(sensor_id: int) -> dict[str, Any]:
    """Return one recorded sensor."""
    from .conftest import load_fixture

    return next(s for s in load_fixture("sensors.json") if s["id"] == sensor_id)


def test_url_type() -> None:
    """normalize_url returns a yarl URL."""
    assert isinstance(normalize_url("fm.example.com"), URL)


# --- Broken answers (issue 9): server errors and non-JSON are connection errors ---

HTML = "<!DOCTYPE html><html><body><h1>Bad Gateway</h1></body></html>"
SERVER_ERROR_JSON = '{"message": "Internal Server Error", "status": 500}'


# flexmeasures-client's content-type check calls response.text() without awaiting it.
@pytest.mark.filterwarnings("ignore:coroutine .*text' was never awaited:RuntimeWarning")
@pytest.mark.parametrize("login_fails", [True, False], ids=["login", "data"])
@pytest.mark.parametrize(
    ("status", "text", "content_type", "error_status"),
    [
        (500, SERVER_ERROR_JSON, "application/json", 500),
        (503, '{"message": "Service Unavailable"}', "application/json", 503),
        (502, "[]", "application/json", 502),
        (502, HTML, "text/html", None),
        (200, HTML, "application/json", None),
        (200, "[]", "text/html", None),
    ],
    ids=[
        "json-500",
        "json-503",
        "list-502",
        "html-502",
        "html-as-json",
        "json-as-html",
    ],
)
async def test_broken_answers_are_connection_errors(
    hass: HomeAssistant,
    aioclient_mock: AiohttpClientMocker,
    login_fails: bool,
    status: int,
    text: str,
    content_type: str,
    error_status: int | None,
) -> None:
    """A 5xx or a body that is not JSON is never a refusal or a wrong password."""
    broken = {"status": status, "text": text, "headers": {"Content-Type": content_type}}
    login = f"{ENTRY_DATA['url']}/api/requestAuthToken"
    sensors = f"{ENTRY_DATA['url']}/api/v3_0/sensors"
    if login_fails:
        aioclient_mock.post(login, **broken)  # type: ignore[no-untyped-call]
    else:
        aioclient_mock.post(  # type: ignore[no-untyped-call]
            login, text='{"auth_token": "token"}', headers=JSON_HEADERS
        )
        aioclient_mock.get(sensors, **broken)  # type: ignore[no-untyped-call]
    api = async_create_api(hass, ENTRY_DATA)
    with pytest.raises(FlexMeasuresConnectionError) as caught:
        await api.async_get_sensors()
    if error_status is None:
        assert not isinstance(caught.value, FlexMeasuresHttpStatusError)
        assert "JSON" in str(caught.value)
    else:
        assert isinstance(caught.value, FlexMeasuresHttpStatusError)
        assert caught.value.status == error_status
    assert len(aioclient_mock.mock_calls) == 1 + (not login_fails)
    # The library's error holds the unawaited text(): let it warn here, filtered.
    del caught
    gc.collect()


async def test_a_call_is_bounded_as_a_whole(
    api: FlexMeasuresApi, fake_server: FakeFlexMeasures
) -> None:
    """A trigger asks for the sensor, then posts: both within one budget.

    Each request alone may take the library's whole retry budget; the call does
    not get one budget per request.
    """
    never = asyncio.Event()

    async def hang(*_: Any, **__: Any) -> Any:
        await never.wait()

    api.call_budget = 0.05
    # The library's own bound would let each request hang for a minute.
    api._client.request_timeout = 60
    api._client.request_retry_timeout = 60
    api._client.request_once = hang  # type: ignore[method-assign]
    with pytest.raises(FlexMeasuresConnectionError, match=r"within 0\.05 s"):
        await api.async_trigger_schedule(
            sensor_id=1,
            start=START,
            duration=timedelta(hours=1),
            flex_model={"soc-at-start": "1 kWh"},
        )


async def test_budget_follows_the_request_timeout(hass: HomeAssistant) -> None:
    """Two attempts fit in a call's budget, never less than the default."""
    budgets = [
        FlexMeasuresApi(
            session=async_get_clientsession(hass),
            url="http://127.0.0.1:5000",
            email=EMAIL,
            password=PASSWORD,
            request_timeout=timeout,
        ).call_budget
        for timeout in (1.0, 30.0)
    ]
    assert budgets == [20.0, 60.0]


async def test_a_trigger_is_sent_once(
    api: FlexMeasuresApi, fake_server: FakeFlexMeasures
) -> None:
    """A trigger that gets no answer is not repeated by the library.

    A server that was only slow would run both; the scheduler repeats it itself,
    unchanged, once the server answers again.
    """
    never = asyncio.Event()
    sent: list[str] = []

    async def hang(*_: Any, **kwargs: Any) -> Any:
        sent.append(str(kwargs["url"]))
        await never.wait()

    api._client.request_timeout = 0.05
    api._client.access_token = "token"  # noqa: S105 - logged in already
    api._client._sensor_asset_id_cache[1] = 11
    api._client.request_once = hang  # type: ignore[method-assign]
    with pytest.raises(FlexMeasuresConnectionError):
        await api.async_trigger_schedule(
            sensor_id=1,
            start=START,
            duration=timedelta(hours=1),
            flex_model={"soc-at-start": "1 kWh"},
        )
    assert len(sent) == 1
    assert sent[0].endswith("/schedules/trigger")


# --- S2: the adapter over the library's CEM -------------------------------------


class RecordingHandler:
    """An S2 conversation that records what the CEM hands over."""

    def __init__(self) -> None:
        """Start with nothing handed over."""
        self.calls: list[tuple[str, Any]] = []

    async def async_storage_status(self, status: Any) -> None:
        """Record a storage status."""
        self.calls.append(("storage_status", status))

    async def async_actuator_status(self, status: Any) -> None:
        """Record an actuator status."""
        self.calls.append(("actuator_status", status))

    async def async_usage_forecast(self, usage_forecast: Any) -> None:
        """Record a usage forecast."""
        self.calls.append(("usage_forecast", usage_forecast))

    async def async_system_description(self, description: Any) -> None:
        """Record a system description."""
        self.calls.append(("system_description", description))

    async def async_power_measurement(self, measurement: Any) -> None:
        """Record a power measurement."""
        self.calls.append(("power_measurement", measurement))


def as_dict(message: S2Message) -> dict[str, Any]:
    """Return an S2 message as the JSON dict a websocket frame carries."""
    return cast("dict[str, Any]", json.loads(message.model_dump_json()))


async def test_s2_cem_hands_messages_to_the_handler(api: FlexMeasuresApi) -> None:
    """The adapter routes the library's callbacks to the handler, and answers."""
    handler = RecordingHandler()
    cem = S2Cem(api, handler, queue_size=8)
    assert cem.control_type is None
    assert cem.resource_manager_details is None
    assert cem.latest_description is None
    assert cem.latest_storage_status is None
    assert not cem.supports_message({"message_type": "Gibberish"})

    details = resource_manager_details()
    await cem.async_handle_message(as_dict(details))
    # (Read again: mypy keeps the properties narrowed to None from above.)
    known: Any = cem.resource_manager_details
    assert known.resource_id == details.resource_id
    assert cem.control_type == "no_selection"
    # The CEM asks for FRBC, its default, and acknowledges the details.
    select = await cem.async_next_message()
    assert select["message_type"] == "SelectControlType"
    assert select["control_type"] == "FILL_RATE_BASED_CONTROL"
    assert (await cem.async_next_message())["subject_message_id"] == str(
        details.message_id
    )
    accepted = ReceptionStatus(
        subject_message_id=select["message_id"], status=ReceptionStatusValues.OK
    )
    await cem.async_handle_message(as_dict(accepted))
    assert cem.control_type == "fill_rate_based_control"

    description = storage_description(START)
    status = FRBCStorageStatus(message_id=new_id(), present_fill_level=4.0)
    actuator = FRBCActuatorStatus(
        message_id=new_id(),
        actuator_id=description.actuators[0].id,
        active_operation_mode_id=description.actuators[0].operation_modes[0].id,
        operation_mode_factor=0.5,
    )
    forecast = FRBCUsageForecast(
        message_id=new_id(),
        start_time=START,
        elements=[
            FRBCUsageForecastElement(
                duration=Duration.from_milliseconds(900_000), usage_rate_expected=0.001
            )
        ],
    )
    power = PowerMeasurement(
        message_id=new_id(),
        measurement_timestamp=START,
        values=[
            PowerValue(
                commodity_quantity=CommodityQuantity.ELECTRIC_POWER_3_PHASE_SYMMETRIC,
                value=1500,
            )
        ],
    )
    messages = (status, description, actuator, forecast, power)
    for message in messages:
        assert cem.supports_message(as_dict(message))
        await cem.async_handle_message(as_dict(message))
        reply = await cem.async_next_message()
        assert reply["subject_message_id"] == str(message.message_id)
        assert reply["status"] == "OK"
    for _ in range(10):  # the FRBC handler hands over from its own tasks
        await asyncio.sleep(0)
    handed = {name: value.message_id for name, value in handler.calls}
    assert handed == {
        "storage_status": status.message_id,
        "system_description": description.message_id,
        "actuator_status": actuator.message_id,
        "usage_forecast": forecast.message_id,
        "power_measurement": power.message_id,
    }
    latest: tuple[Any, Any] = (cem.latest_description, cem.latest_storage_status)
    assert latest[0].message_id == description.message_id
    assert latest[1].present_fill_level == 4.0

    # What the conversation sends goes out in order, as JSON dicts.
    rejection = ReceptionStatus(
        subject_message_id=new_id(),
        status=ReceptionStatusValues.INVALID_CONTENT,
        diagnostic_label="no",
    )
    await cem.async_send(rejection)
    assert await cem.async_next_message() == as_dict(rejection)
    await cem.async_activate_control_type("no_selection")
    switch = await cem.async_next_message()
    assert (switch["message_type"], switch["control_type"]) == (
        "SelectControlType",
        "NO_SELECTION",
    )
    await cem.async_close()


def test_s2_library_math() -> None:
    """Fill-level range, operation mode choice and ids come from the library."""
    description = storage_description(START)
    assert s2_fill_level_range(description) == (1.0, 9.0)
    mode, factor = s2_operation_mode(description, 2500, 5.0)
    assert mode.id == description.actuators[0].operation_modes[0].id
    assert factor == pytest.approx(0.75)
    assert s2_unique_id() != s2_unique_id()
