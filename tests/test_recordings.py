"""The fake server against FlexMeasures 1.0.1's recorded answers, and the API on them.

``scripts/fmserver/record.py`` recorded every answer in tests/fixtures/recorded from
the live tier's server; ``tests/live/test_recordings.py`` re-records and fails when
the server's answers change shape. Here the unit tier's own fixtures are held to the
same shapes, and the API is driven through the refusals the fake answers with.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures.api import (
    FlexMeasuresApi,
    FlexMeasuresAuthenticationError,
    FlexMeasuresHttpStatusError,
    FlexMeasuresRejectedError,
    async_create_api,
)

from .conftest import (
    BATTERY_SENSOR_ID,
    BATTERY_SUBENTRY_ID,
    ENTRY_DATA,
    FIXTURES,
    FakeFlexMeasures,
    FakeScheduling,
    job_id,
    load_fixture,
    recorded,
)
from .test_scheduling import _trigger

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
VERSION = "1.0.1"

# The unit tier's own fixtures (its ids and values) and the recording of each.
FIXTURE_RECORDINGS = {
    "versions.json": "versions",
    "auth_token.json": "auth_token",
    "users.json": "users",
    "account.json": "account",
    "assets.json": "assets",
    "sensors.json": "sensors",
}


def kind(value: Any) -> str:
    """Return the JSON type of a value (numbers are one type)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def shape_differences(fixture: Any, real: Any, path: str = "") -> list[str]:
    """Return where ``fixture`` has other keys or value types than ``real``.

    null matches any type (the server sends both for optional fields), and list
    items are compared with every recorded item of a list of mappings' keys.
    """
    if fixture is None or real is None:
        return []
    if kind(fixture) != kind(real):
        return [f"{path or '/'}: {kind(fixture)} where 1.0.1 sends {kind(real)}"]
    if isinstance(fixture, dict):
        differences = [
            f"{path}/{key}: {'missing' if key in real else 'not sent by 1.0.1'}"
            for key in sorted(set(fixture) ^ set(real))
        ]
        for key in sorted(set(fixture) & set(real)):
            differences += shape_differences(fixture[key], real[key], f"{path}/{key}")
        return differences
    if isinstance(fixture, list) and real:
        return [
            difference
            for item in fixture
            for difference in shape_differences(item, real[0], f"{path}[]")
        ]
    return []


def test_recordings_are_tagged() -> None:
    """Every recording says which FlexMeasures answered it, and what was asked."""
    recordings = sorted((FIXTURES / "recorded").glob("*.json"))
    assert len(recordings) >= 30
    for path in recordings:
        document = load_fixture(f"recorded/{path.name}")
        assert document["flexmeasures_version"] == VERSION, path.name
        assert document["request"]["path"].startswith("/api/"), path.name
        assert 200 <= document["status"] < 600, path.name


@pytest.mark.parametrize(("fixture", "recording"), FIXTURE_RECORDINGS.items())
def test_fixtures_have_the_recorded_shape(fixture: str, recording: str) -> None:
    """The fake's inventory answers have the keys and types 1.0.1 really sends."""
    status, real = recorded(recording)
    assert status == 200
    assert shape_differences(load_fixture(fixture), real) == []


def test_sensor_data_has_the_recorded_shape() -> None:
    """Every recorded series of the fake has the shape of a real data GET."""
    _, real = recorded("sensor_data_get")
    for series in load_fixture("sensor_data.json").values():
        assert shape_differences(series, real) == []


def test_asset_fields_arrive_as_json_strings() -> None:
    """1.0.1 sends flex-model, flex-context and attributes as JSON text."""
    _, real = recorded("assets")
    for asset in [*real, *load_fixture("assets.json")]:
        for field in ("flex_model", "flex_context", "attributes"):
            assert isinstance(asset[field], str)


def test_shape_differences_finds_drift() -> None:
    """The comparison reports missing keys, extra keys and changed types."""
    real = {"a": 1, "b": {"c": "x"}, "d": [{"e": 1}]}
    assert shape_differences({"a": 2, "b": {"c": "y"}, "d": []}, real) == []
    assert shape_differences({"a": None, "b": None, "d": [{"e": 2}]}, real) == []
    assert shape_differences(
        {"a": "1", "b": "{}", "d": [{"e": 1, "f": 2}], "g": True}, real
    ) == [
        "/g: not sent by 1.0.1",
        "/a: str where 1.0.1 sends number",
        "/b: str where 1.0.1 sends dict",
        "/d[]/f: not sent by 1.0.1",
    ]
    assert shape_differences({"a": 1, "b": {"c": "x"}}, real) == ["/d: missing"]


@pytest.fixture
def api(hass: HomeAssistant, fake_server: FakeFlexMeasures) -> FlexMeasuresApi:
    """Return an API talking to the recorded server."""
    return async_create_api(hass, ENTRY_DATA)


@pytest.mark.parametrize(
    ("change", "recording"),
    [
        ({"emails": set()}, "auth_token_unknown_email"),
        ({"password": "not-the-password"}, "auth_token_wrong_password"),
    ],
)
async def test_login_refusals(
    api: FlexMeasuresApi,
    fake_server: FakeFlexMeasures,
    change: dict[str, Any],
    recording: str,
) -> None:
    """An unknown e-mail (404) and a wrong password (401) are both wrong credentials."""
    for name, value in change.items():
        setattr(fake_server, name, value)
    _, body = recorded(recording)
    with pytest.raises(FlexMeasuresAuthenticationError, match=body["errors"][0]):
        await api.async_login()


async def test_trigger_answers_202_with_a_job(
    api: FlexMeasuresApi, fake_scheduling: FakeScheduling
) -> None:
    """A trigger is accepted (202) with ``job`` and ``job-url``; the job id counts."""
    job = await api.async_trigger_schedule(
        sensor_id=BATTERY_SENSOR_ID,
        start=START,
        duration=timedelta(hours=1),
        flex_model={"soc-at-start": "5 kWh"},
    )
    assert job == job_id(1)
    _, body = recorded("schedule_trigger", uuid=job)
    assert body["job-url"] == f"/api/v3_0/jobs/{job}"


@pytest.mark.parametrize(
    ("final", "status", "ended"),
    [
        ("FINISHED", "FINISHED", True),
        ("FAILED", "FAILED", True),
        ("CANCELED", "CANCELED", False),
        ("STOPPED", "STOPPED", False),
    ],
)
async def test_job_statuses(
    api: FlexMeasuresApi,
    fake_scheduling: FakeScheduling,
    final: str,
    status: str,
    ended: bool,
) -> None:
    """Each terminal job status comes back as recorded, with or without ended-at."""
    fake_scheduling.pending_polls = 1
    fake_scheduling.final_status = final
    job = await api.async_trigger_schedule(
        sensor_id=BATTERY_SENSOR_ID,
        start=START,
        duration=timedelta(hours=1),
        flex_model={},
    )
    assert (await api.async_get_job_status(job))["status"] == "STARTED"
    answer = await api.async_get_job_status(job)
    assert answer["status"] == status
    assert isinstance(answer["ended-at"], str) is ended


async def test_fallback_job_of_a_failed_job(
    api: FlexMeasuresApi, fake_scheduling: FakeScheduling
) -> None:
    """The 303 of a failed job's schedule names the fallback job; not followed."""
    fake_scheduling.pending_polls = 0
    fake_scheduling.final_status = "FAILED"
    fake_scheduling.fallback = True
    job = await api.async_trigger_schedule(
        sensor_id=BATTERY_SENSOR_ID,
        start=START,
        duration=timedelta(hours=1),
        flex_model={},
    )
    fallback = await api.async_get_fallback_job(sensor_id=BATTERY_SENSOR_ID, job_id=job)
    assert fallback == next(iter(fake_scheduling.fallbacks))
    # Only the failed job's schedule was asked for, not the fallback's.
    assert not any(fallback in path for _, path, _ in fake_scheduling.server.calls)


async def test_no_fallback_job(
    api: FlexMeasuresApi, fake_server: FakeFlexMeasures
) -> None:
    """Without a fallback: a refusal (400), or a schedule answered in place."""
    unknown = job_id(99)
    with pytest.raises(FlexMeasuresRejectedError):
        await api.async_get_fallback_job(sensor_id=BATTERY_SENSOR_ID, job_id=unknown)
    path = f"GET /api/v3_0/sensors/{BATTERY_SENSOR_ID}/schedules/{unknown}"
    fake_server.responses[path] = recorded("schedule")[1]
    assert (
        await api.async_get_fallback_job(sensor_id=BATTERY_SENSOR_ID, job_id=unknown)
        is None
    )


async def test_unknown_job_and_schedule(api: FlexMeasuresApi) -> None:
    """An unknown job is a 404; an unknown schedule a 400 refusal, readable."""
    unknown = job_id(99)
    with pytest.raises(FlexMeasuresHttpStatusError) as job_error:
        await api.async_get_job_status(unknown)
    assert job_error.value.status == 404
    with pytest.raises(FlexMeasuresRejectedError) as schedule_error:
        await api.async_get_schedule(
            sensor_id=BATTERY_SENSOR_ID, job_id=unknown, duration=timedelta(hours=1)
        )
    assert schedule_error.value.status == 400
    assert f"(id = {unknown}, type = job) is not known" in str(schedule_error.value)


@pytest.mark.parametrize(
    ("recording", "text"),
    [
        (
            "schedule_trigger_invalid",
            "HTTP 422): soc-max: Cannot convert value 'banana' to a valid quantity.",
        ),
        (
            "sensor_data_post_wrong_unit",
            "HTTP 422): Required unit for this sensor is kW, got incompatible unit",
        ),
        ("sensor_unknown", "HTTP 422): id: No sensor found with ID 999999."),
        (
            "schedule_trigger_other_account",
            "HTTP 403): You cannot be authorized for this content or functionality.",
        ),
    ],
)
async def test_refusals_are_readable(
    api: FlexMeasuresApi,
    fake_server: FakeFlexMeasures,
    recording: str,
    text: str,
) -> None:
    """422 bodies nest messages per location and field: they read as text."""
    status, body = recorded(recording)
    fake_server.statuses["GET /api/v3_0/sensors"] = status
    fake_server.responses["GET /api/v3_0/sensors"] = body
    with pytest.raises(FlexMeasuresRejectedError) as err:
        await api.async_get_sensors()
    assert err.value.status == status
    assert text in str(err.value)
    assert "{" not in str(err.value)


@pytest.mark.usefixtures("fast_polling")
@pytest.mark.parametrize(
    ("final", "message"),
    [
        ("CANCELED", "Scheduling job has been cancelled."),
        ("STOPPED", "Scheduling job has been stopped."),
    ],
)
async def test_canceled_and_stopped_jobs_fail_the_plan(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
    final: str,
    message: str,
) -> None:
    """A job canceled or stopped on the server (202) ends the round as failed."""
    fake_scheduling.final_status = final
    with pytest.raises(HomeAssistantError) as err:
        await _trigger(hass)
    assert err.value.translation_key == "schedule_job_failed"
    scheduler = init_battery.runtime_data.schedulers[BATTERY_SUBENTRY_ID]
    assert scheduler.failure_reason == "job_failed"
    assert scheduler.failure_message == message
