"""Tests for the FlexMeasures coordinators' sensor value polling."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

from aiohttp import ClientConnectionError
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_REAUTH
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.flexmeasures.api import (
    FlexMeasuresConnectionError,
    FlexMeasuresHttpStatusError,
    FlexMeasuresRejectedError,
    Sensor,
    TimeSeries,
)
from custom_components.flexmeasures.const import DOMAIN
from custom_components.flexmeasures.coordinator import (
    NO_DATA,
    SensorReading,
    async_fetch_readings,
    delay_to_next_refresh,
    latest_reading,
    value_window,
)

from .conftest import RECORDED_AT, FakeFlexMeasures

# Logs at debug level, asserted free of the password, token and e-mail.
pytestmark = pytest.mark.usefixtures("no_secrets_logged")

NOW = datetime(2026, 11, 2, 10, 7, 30, tzinfo=UTC)
QUARTER = timedelta(minutes=15)


def _sensor(sensor_id: int = 1, resolution: timedelta = QUARTER) -> Sensor:
    """Return a sensor for pure tests."""
    return Sensor(id=sensor_id, name="s", unit="kW", resolution=resolution, asset_id=1)


@pytest.mark.parametrize(
    ("now", "period", "delay"),
    [
        ("10:07:30", timedelta(minutes=5), timedelta(minutes=2, seconds=40)),
        ("10:10:10", timedelta(minutes=5), timedelta(minutes=5)),
        ("10:10:09", timedelta(minutes=5), timedelta(seconds=1)),
        ("10:07:30", timedelta(minutes=15), timedelta(minutes=7, seconds=40)),
        ("10:07:30", timedelta(minutes=1), timedelta(seconds=40)),
        ("10:07:30", timedelta(hours=1), timedelta(minutes=52, seconds=40)),
    ],
)
def test_refresh_aligned_after_slot_boundary(
    now: str, period: timedelta, delay: timedelta
) -> None:
    """Refreshes land a few seconds after each boundary of the polling period."""
    moment = datetime.fromisoformat(f"2026-11-02T{now}+00:00")
    assert delay_to_next_refresh(moment, period) == delay


@pytest.mark.parametrize(
    ("resolution", "start", "duration", "query_resolution"),
    [
        (QUARTER, "04:15", timedelta(hours=6), QUARTER),
        (timedelta(hours=1), "05:00", timedelta(hours=6), timedelta(hours=1)),
        (timedelta(0), "04:10", timedelta(hours=6), timedelta(minutes=5)),
        (timedelta(days=1), "00:00", timedelta(days=2), timedelta(days=1)),
    ],
)
def test_value_window(
    resolution: timedelta,
    start: str,
    duration: timedelta,
    query_resolution: timedelta,
) -> None:
    """The window ends with the current slot and covers a few hours (or 2 slots)."""
    window = value_window(_sensor(resolution=resolution), NOW)
    day = "11-01" if resolution == timedelta(days=1) else "11-02"
    assert window == (
        datetime.fromisoformat(f"2026-{day}T{start}:00+00:00"),
        duration,
        query_resolution,
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ((1.0, 2.0, 3.0), SensorReading(value=2.0, event_start=NOW)),
        ((1.0, None, 3.0), SensorReading(value=1.0, event_start=NOW - QUARTER)),
        ((0.0, None, None), SensorReading(value=0.0, event_start=NOW - QUARTER)),
        ((None, None, 3.0), NO_DATA),
        ((), NO_DATA),
    ],
)
def test_latest_reading(
    values: tuple[float | None, ...], expected: SensorReading
) -> None:
    """The latest non-null value of a started slot wins; future values do not."""
    series = TimeSeries(
        start=NOW - QUARTER, resolution=QUARTER, unit="kW", values=values
    )
    assert latest_reading(series, NOW) == expected


class StubApi:
    """Answers value requests slowly, counting how many run at once."""

    def __init__(self, failures: dict[int, Exception] | None = None) -> None:
        """Prepare the stub."""
        self.failures = failures or {}
        self.running = 0
        self.peak = 0
        self.started: list[int] = []

    async def async_get_sensor_data(self, sensor_id: int, **kwargs: Any) -> TimeSeries:
        """Return one value after a short pause, or fail."""
        self.started.append(sensor_id)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(0.001)
            if sensor_id in self.failures:
                raise self.failures[sensor_id]
            return TimeSeries(
                start=NOW, resolution=QUARTER, unit="kW", values=(float(sensor_id),)
            )
        finally:
            self.running -= 1


@pytest.mark.parametrize("limit", [1, 4])
async def test_fetch_bounded_and_one_request_per_sensor(limit: int) -> None:
    """Each sensor costs one request, and at most ``limit`` run at once."""
    api = StubApi()
    sensors = [_sensor(sensor_id) for sensor_id in range(20)]
    results = await async_fetch_readings(api, sensors, NOW, limit=limit)  # type: ignore[arg-type]
    assert api.peak == limit
    assert sorted(api.started) == list(range(20))
    assert results == {
        sensor_id: SensorReading(value=float(sensor_id), event_start=NOW)
        for sensor_id in range(20)
    }


@pytest.mark.parametrize(
    "error",
    [
        FlexMeasuresRejectedError("bad unit"),
        FlexMeasuresHttpStatusError("gone", status=404),
    ],
)
async def test_fetch_sensor_errors_stay_per_sensor(error: Exception) -> None:
    """A sensor the server refuses gets its error; the others are read."""
    api = StubApi({3: error})
    results = await async_fetch_readings(api, [_sensor(i) for i in range(5)], NOW)  # type: ignore[arg-type]
    assert results[3] is error
    assert all(isinstance(results[i], SensorReading) for i in (0, 1, 2, 4))


@pytest.mark.parametrize(
    "error",
    [
        FlexMeasuresConnectionError("down"),
        FlexMeasuresHttpStatusError("bad gateway", status=502),
    ],
)
async def test_fetch_server_errors_abort_at_once(error: Exception) -> None:
    """An unreachable server ends the refresh without trying every sensor."""
    api = StubApi({0: error})
    with pytest.raises(type(error)):
        await async_fetch_readings(api, [_sensor(i) for i in range(40)], NOW, limit=2)  # type: ignore[arg-type]
    assert len(api.started) < 40
    assert api.running == 0


@pytest.mark.freeze_time(RECORDED_AT)
async def test_requests_per_refresh(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_server: FakeFlexMeasures,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A refresh asks once per exposed sensor, at the next aligned moment."""
    coordinator = init_integration.runtime_data.sensor_values
    assert coordinator.update_interval == timedelta(minutes=2, seconds=40)
    before = len(fake_server.calls)

    freezer.tick(timedelta(minutes=2, seconds=41))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)

    new_calls = fake_server.calls[before:]
    assert len(new_calls) == len(coordinator.exposed) == 11
    assert {path for _, path, _ in new_calls} == {
        f"/api/v3_0/sensors/{sensor.id}/data" for sensor in coordinator.exposed
    }
    # Fired a second late, it aims for the next boundary again.
    assert coordinator.update_interval == timedelta(minutes=4, seconds=59)


@pytest.mark.freeze_time(RECORDED_AT)
@pytest.mark.parametrize("failure", ["refused", HTTPStatus.BAD_GATEWAY])
async def test_outage_unavailable_logged_once_and_recovers(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_server: FakeFlexMeasures,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    failure: str | HTTPStatus,
) -> None:
    """An unreachable server makes every entity unavailable; logged once each way."""
    if isinstance(failure, HTTPStatus):
        for sensor_id in (20, 21, 22, 23, 24, 30, 31, 32, 33, 34, 35):
            fake_server.statuses[f"GET /api/v3_0/sensors/{sensor_id}/data"] = failure
    else:
        fake_server.errors["*"] = ClientConnectionError(failure)
    for _ in range(3):
        freezer.tick(timedelta(minutes=5))
        async_fire_time_changed(hass)
        await hass.async_block_till_done(wait_background_tasks=True)
        # The uploader's diagnostic sensors (backlog, last upload) stay available.
        states = [
            hass.states.get(entity.entity_id)
            for entity in er.async_entries_for_config_entry(
                er.async_get(hass), init_integration.entry_id
            )
            if entity.entity_category is None
        ]
        assert {state.state for state in states if state} == {STATE_UNAVAILABLE}
    assert caplog.text.count("Error fetching flexmeasures sensor values data") == 1

    fake_server.errors.clear()
    fake_server.statuses.clear()
    freezer.tick(timedelta(minutes=5))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)
    state = hass.states.get("sensor.home_battery_power")
    assert state is not None
    assert state.state == "2.5"
    assert caplog.text.count("Fetching flexmeasures sensor values data recovered") == 1


@pytest.mark.freeze_time(RECORDED_AT)
async def test_refused_login_while_polling_starts_reauth(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_server: FakeFlexMeasures,
) -> None:
    """An expired token and a changed password lead to the re-login form."""
    fake_server.unauthorized_requests = 1
    fake_server.password = "changed on the server"  # noqa: S105
    await init_integration.runtime_data.sensor_values.async_refresh()
    await hass.async_block_till_done()

    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]
    assert not init_integration.runtime_data.sensor_values.last_update_success
