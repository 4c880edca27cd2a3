"""Tests for the websocket commands of the dashboard card."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
import logging
from typing import Any

from aiohttp import ClientConnectionError
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigSubentryDataWithId
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
)
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser
from pytest_homeassistant_custom_component.typing import WebSocketGenerator
from yarl import URL

from custom_components.flexmeasures.const import DOMAIN

from .conftest import FakeFlexMeasures, FakeScheduling, battery_device

SCHEDULE: dict[str, Any] = {
    "start": "2026-11-20T00:00:00+00:00",
    "resolution": 900,
    "unit": "kW",
    "values": [2.5, 2.5, 0.0, -1.0],
    "soc": [45.0, 50.0, 50.0, 48.0],
    "soc_unit": "%",
    "prices": {
        "start": "2026-11-20T00:00:00+00:00",
        "resolution": 3600,
        "unit": "EUR/MWh",
        "values": [81.5],
    },
    "status": "ready",
    "updated": "2026-11-19T23:58:00+00:00",
}


@pytest.fixture
def devices(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> dict[str, dr.DeviceEntry]:
    """Two controlled devices, an asset device, and devices of another entry."""
    registry = dr.async_get(hass)
    entry_id = init_integration.entry_id
    other = MockConfigEntry(domain="other")
    other.add_to_hass(hass)
    battery = registry.async_get_or_create(
        config_entry_id=entry_id,
        identifiers={(DOMAIN, "controlled_device_battery")},
        name="Home battery",
    )
    car = registry.async_get_or_create(
        config_entry_id=entry_id,
        identifiers={(DOMAIN, "controlled_device_car")},
        name="Car charger",
    )
    registry.async_update_device(car.id, name_by_user="EV")
    return {
        "battery": battery,
        "car": car,
        "asset": registry.async_get_or_create(
            config_entry_id=entry_id,
            identifiers={(DOMAIN, "asset_10")},
            name="House",
        ),
        "other": registry.async_get_or_create(
            config_entry_id=other.entry_id,
            identifiers={("other", "controlled_device_x")},
            name="Other",
        ),
        "stray": registry.async_get_or_create(
            config_entry_id=other.entry_id,
            identifiers={(DOMAIN, "controlled_device_stray")},
            name="Stray",
        ),
    }


def register_get_schedule(
    hass: HomeAssistant, answer: Callable[[ServiceCall], ServiceResponse]
) -> list[ServiceCall]:
    """Stand in for the scheduling code's flexmeasures.get_schedule action."""
    calls: list[ServiceCall] = []

    def handle(call: ServiceCall) -> ServiceResponse:
        calls.append(call)
        return answer(call)

    hass.services.async_register(
        DOMAIN, "get_schedule", handle, supports_response=SupportsResponse.ONLY
    )
    return calls


async def test_devices(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    devices: dict[str, dr.DeviceEntry],
) -> None:
    """Only controlled devices are listed, by the name the user sees."""
    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": "flexmeasures/schedule/devices"})
    msg = await client.receive_json()

    assert msg["success"]
    assert msg["result"] == [
        {"device_id": devices["car"].id, "name": "EV"},
        {"device_id": devices["battery"].id, "name": "Home battery"},
    ]


async def test_get_schedule(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    devices: dict[str, dr.DeviceEntry],
) -> None:
    """The schedule arrives in the card's shape, windows merged from the plan."""
    calls = register_get_schedule(hass, lambda _: SCHEDULE)
    device_id = devices["battery"].id
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {"type": "flexmeasures/schedule/get", "device_id": device_id}
    )
    msg = await client.receive_json()

    assert msg["success"]
    assert [call.data for call in calls] == [{"device_id": device_id}]
    assert msg["result"] == {
        **SCHEDULE,
        "device_id": device_id,
        "name": "Home battery",
        "end": "2026-11-20T01:00:00+00:00",
        "windows": [
            {
                "start": "2026-11-20T00:00:00+00:00",
                "end": "2026-11-20T00:30:00+00:00",
                "kind": "charging",
            },
            {
                "start": "2026-11-20T00:45:00+00:00",
                "end": "2026-11-20T01:00:00+00:00",
                "kind": "discharging",
            },
        ],
    }


@pytest.mark.parametrize("device", ["asset", "other", "stray", None])
async def test_get_unknown_device(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    devices: dict[str, dr.DeviceEntry],
    device: str | None,
) -> None:
    """Asking for anything but a controlled device is an error."""
    register_get_schedule(hass, lambda _: SCHEDULE)
    device_id = devices[device].id if device else "no-such-device"
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {"type": "flexmeasures/schedule/get", "device_id": device_id}
    )
    msg = await client.receive_json()

    assert not msg["success"]
    assert msg["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "answer",
    [{}, {**SCHEDULE, "values": []}],
    ids=["empty_response", "no_values"],
)
async def test_get_no_schedule(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    devices: dict[str, dr.DeviceEntry],
    answer: ServiceResponse,
) -> None:
    """A device without a plan yet answers null."""
    register_get_schedule(hass, lambda _: answer)
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {"type": "flexmeasures/schedule/get", "device_id": devices["battery"].id}
    )
    msg = await client.receive_json()

    assert msg["success"]
    assert msg["result"] is None


async def test_get_without_scheduling(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    devices: dict[str, dr.DeviceEntry],
) -> None:
    """Without the get_schedule action there is no schedule to show."""
    hass.services.async_remove(DOMAIN, "get_schedule")
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {"type": "flexmeasures/schedule/get", "device_id": devices["battery"].id}
    )
    msg = await client.receive_json()

    assert msg["success"]
    assert msg["result"] is None


async def test_get_schedule_error(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    devices: dict[str, dr.DeviceEntry],
) -> None:
    """A failing action reaches the card as its translated error."""

    def fail(_: ServiceCall) -> ServiceResponse:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="communication_error",
            translation_placeholders={"error": "boom"},
        )

    register_get_schedule(hass, fail)
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {"type": "flexmeasures/schedule/get", "device_id": devices["battery"].id}
    )
    msg = await client.receive_json()

    assert not msg["success"]
    assert msg["error"]["code"] == "home_assistant_error"
    assert msg["error"]["translation_key"] == "communication_error"
    assert msg["error"]["message"] == "Error while talking to FlexMeasures: boom"


# --- Scheduling: the card reads the real get_schedule action -----------------


@pytest.mark.usefixtures("fast_polling")
async def test_get_real_schedule(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A plan from trigger_schedule reaches the card in the card's shape."""
    device = battery_device(hass)
    await hass.services.async_call(
        DOMAIN,
        "trigger_schedule",
        {"device_id": device.id, "duration": {"hours": 2}},
        blocking=True,
        return_response=True,
    )
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {"type": "flexmeasures/schedule/get", "device_id": device.id}
    )
    msg = await client.receive_json()

    assert msg["success"]
    result = msg["result"]
    assert result["name"] == "Home battery"
    assert result["status"] == "ready"
    assert result["resolution"] == 900
    assert result["values"][:5] == [2.0, 2.0, 0.0, 0.0, -1.0]
    assert result["soc_unit"] == "%"
    assert result["updated"] is not None
    assert [window["kind"] for window in result["windows"]] == [
        "charging",
        "discharging",
    ]


# --- Prices: the consumption price sensor's series over the schedule ---------

PRICES_PATH = "GET /api/v3_0/sensors/30/data"
# The plan starts at the current slot, 10:15: its prices span three hours.
NOW = datetime(2026, 11, 20, 10, 22, tzinfo=UTC)


async def card_after_trigger(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, refreshes: int = 1
) -> dict[str, Any]:
    """Plan the battery for two hours; return what the card reads, refreshed."""
    device = battery_device(hass)
    await hass.services.async_call(
        DOMAIN,
        "trigger_schedule",
        {"device_id": device.id, "duration": {"hours": 2}},
        blocking=True,
        return_response=True,
    )
    client = await hass_ws_client(hass)
    result: dict[str, Any] = {}
    for _ in range(refreshes):
        await client.send_json_auto_id(
            {"type": "flexmeasures/schedule/get", "device_id": device.id}
        )
        msg = await client.receive_json()
        assert msg["success"]
        result = msg["result"]
    return result


@pytest.fixture
def price_queries(fake_server: FakeFlexMeasures) -> list[dict[str, str]]:
    """Serve hourly prices for whatever window is asked; record the queries."""
    queries: list[dict[str, str]] = []

    def answer(method: str, url: URL, data: Any) -> tuple[int, Any]:
        queries.append(dict(url.query))
        duration = dt_util.parse_duration(url.query["duration"])
        assert duration is not None
        hours = int(duration.total_seconds() // 3600)
        return HTTPStatus.OK, {
            "start": url.query["start"],
            "duration": url.query["duration"],
            "unit": url.query["unit"],
            "values": [80.0 + hour for hour in range(hours - 1)] + [None],
        }

    fake_server.handlers[PRICES_PATH] = answer
    return queries


@pytest.fixture
def frozen_now(freezer: FrozenDateTimeFactory) -> None:
    """Freeze the clock at NOW, before the integration is set up."""
    freezer.move_to(NOW)


@pytest.mark.usefixtures("frozen_now", "fast_polling")
async def test_schedule_prices(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    fake_scheduling: FakeScheduling,
    price_queries: list[dict[str, str]],
    init_battery: MockConfigEntry,
) -> None:
    """The card gets the price sensor's hours covering the plan, in its unit."""
    setup_queries = len(price_queries)  # the sensor values coordinator's
    result = await card_after_trigger(hass, hass_ws_client)

    assert result["start"] == "2026-11-20T10:15:00+00:00"
    assert result["end"] == "2026-11-20T12:15:00+00:00"
    assert result["prices"] == {
        "start": "2026-11-20T10:00:00+00:00",
        "resolution": 3600,
        "unit": "EUR/MWh",
        "values": [80.0, 81.0, None],
    }
    [query] = price_queries[setup_queries:]
    assert dt_util.parse_datetime(query["start"]) == datetime(
        2026, 11, 20, 10, tzinfo=UTC
    )
    assert dt_util.parse_duration(query["duration"]) == dt_util.parse_duration("PT3H")
    assert dt_util.parse_duration(query["resolution"]) == dt_util.parse_duration("PT1H")
    assert query["unit"] == "EUR/MWh"


@pytest.mark.usefixtures("fast_polling")
async def test_schedule_prices_cached_per_job(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    fake_server: FakeFlexMeasures,
    fake_scheduling: FakeScheduling,
    price_queries: list[dict[str, str]],
    init_battery: MockConfigEntry,
) -> None:
    """Card refreshes reuse the prices of a job; a new job fetches them again."""
    setup_requests = fake_server.count(PRICES_PATH)  # the sensor values coordinator's
    first = await card_after_trigger(hass, hass_ws_client, refreshes=3)
    assert fake_server.count(PRICES_PATH) - setup_requests == 1

    second = await card_after_trigger(hass, hass_ws_client, refreshes=2)
    assert fake_server.count(PRICES_PATH) - setup_requests == 2
    assert second["prices"] == first["prices"] is not None


@pytest.mark.parametrize(
    "failure",
    ["connection", "not_found", "malformed"],
)
@pytest.mark.usefixtures("fast_polling")
async def test_schedule_prices_failure(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    caplog: pytest.LogCaptureFixture,
    fake_server: FakeFlexMeasures,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
    failure: str,
) -> None:
    """Without prices from the server the card still gets its plan; a retry."""
    fake_server.responses.pop(PRICES_PATH)
    if failure == "connection":
        fake_server.errors[PRICES_PATH] = ClientConnectionError("refused")
    elif failure == "malformed":
        fake_server.responses[PRICES_PATH] = {"values": [1.0], "start": "soon"}
    caplog.set_level(logging.DEBUG, logger="custom_components.flexmeasures")
    setup_requests = fake_server.count(PRICES_PATH)  # the sensor values coordinator's

    result = await card_after_trigger(hass, hass_ws_client, refreshes=2)

    assert result["values"][:2] == [2.0, 2.0]
    assert result["prices"] is None
    assert fake_server.count(PRICES_PATH) - setup_requests == 2
    assert (
        sum("No prices for the schedule of Home battery" in m for m in caplog.messages)
        == 2
    )


@pytest.fixture
def no_price_sensor(battery_subentry: ConfigSubentryDataWithId) -> None:
    """Configure the home battery without a consumption price sensor."""
    battery_subentry["data"] = {
        **battery_subentry["data"],
        "consumption_price_sensor": None,
    }


@pytest.mark.usefixtures("fast_polling", "no_price_sensor")
async def test_schedule_without_price_sensor(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    fake_server: FakeFlexMeasures,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A device without a consumption price sensor shows no prices, asks none."""
    setup_requests = fake_server.count(PRICES_PATH)  # the sensor values coordinator's
    result = await card_after_trigger(hass, hass_ws_client, refreshes=2)

    assert result["values"][:2] == [2.0, 2.0]
    assert result["prices"] is None
    assert fake_server.count(PRICES_PATH) == setup_requests


@pytest.fixture
def price_sensor(
    request: pytest.FixtureRequest, battery_subentry: ConfigSubentryDataWithId
) -> int:
    """Configure the home battery with another consumption price sensor."""
    sensor_id: int = request.param
    battery_subentry["data"] = {
        **battery_subentry["data"],
        "consumption_price_sensor": sensor_id,
    }
    return sensor_id


@pytest.mark.parametrize(
    ("price_sensor", "resolution", "unit"),
    [(23, "PT1H", "kWh"), (99, "PT1H", "EUR/MWh")],
    ids=["instantaneous_sensor", "sensor_not_in_inventory"],
    indirect=["price_sensor"],
)
@pytest.mark.usefixtures("frozen_now", "fast_polling")
async def test_schedule_prices_defaults(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    fake_server: FakeFlexMeasures,
    fake_scheduling: FakeScheduling,
    price_sensor: int,
    init_battery: MockConfigEntry,
    resolution: str,
    unit: str,
) -> None:
    """Without a usable resolution or a known unit, ask hourly in EUR/MWh."""
    queries: list[dict[str, str]] = []

    def answer(method: str, url: URL, data: Any) -> tuple[int, Any]:
        queries.append(dict(url.query))
        return HTTPStatus.OK, {
            "start": url.query["start"],
            "duration": url.query["duration"],
            "unit": url.query["unit"],
            "values": [1.0, 2.0, 3.0],
        }

    fake_server.handlers[f"GET /api/v3_0/sensors/{price_sensor}/data"] = answer
    result = await card_after_trigger(hass, hass_ws_client)

    [query] = queries
    assert dt_util.parse_duration(query["resolution"]) == dt_util.parse_duration(
        resolution
    )
    assert query["unit"] == unit
    assert result["prices"] == {
        "start": "2026-11-20T10:00:00+00:00",
        "resolution": 3600,
        "unit": unit,
        "values": [1.0, 2.0, 3.0],
    }


# --- Live refresh: the integration's own subscription -------------------------


async def trigger_battery(hass: HomeAssistant) -> None:
    """Ask a two-hour plan for the battery and wait for it."""
    await hass.services.async_call(
        DOMAIN,
        "trigger_schedule",
        {"device_id": battery_device(hass).id, "duration": {"hours": 2}},
        blocking=True,
        return_response=True,
    )


@pytest.mark.usefixtures("fake_scheduling")
@pytest.mark.parametrize("subscribe_to", ["device", "all"])
async def test_subscribe_non_admin(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_read_only_access_token: str,
    init_battery: MockConfigEntry,
    subscribe_to: str,
) -> None:
    """A user who is no administrator hears of each new plan of the device."""
    device = battery_device(hass)
    client = await hass_ws_client(hass, hass_read_only_access_token)
    message: dict[str, Any] = {"type": "flexmeasures/schedule/subscribe"}
    if subscribe_to == "device":
        message["device_id"] = device.id
    await client.send_json_auto_id(message)
    subscribed = await client.receive_json()
    assert subscribed["success"]

    # The bus event itself stays out of reach of this user.
    await client.send_json_auto_id(
        {"type": "subscribe_events", "event_type": "flexmeasures_schedule_updated"}
    )
    refused = await client.receive_json()
    assert refused["error"]["code"] == "unauthorized"

    await trigger_battery(hass)
    event = await client.receive_json()

    assert event["id"] == subscribed["id"]
    assert event["type"] == "event"
    assert event["event"]["device_id"] == device.id
    assert event["event"]["name"] == "Home battery"
    assert event["event"]["start"] < event["event"]["end"]

    # Unsubscribed, the next plan sends nothing more on this subscription.
    await client.send_json_auto_id(
        {"type": "unsubscribe_events", "subscription": subscribed["id"]}
    )
    assert (await client.receive_json())["success"]
    await trigger_battery(hass)
    await client.send_json_auto_id({"type": "ping"})
    assert (await client.receive_json())["type"] == "pong"


async def test_subscribe_filters(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    devices: dict[str, dr.DeviceEntry],
) -> None:
    """A device subscription hears only its device; odd events are skipped."""
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {"type": "flexmeasures/schedule/subscribe", "device_id": devices["car"].id}
    )
    subscribed = await client.receive_json()
    assert subscribed["success"]

    for data in ({"device_id": devices["battery"].id}, {"device_id": None}, {}):
        hass.bus.async_fire("flexmeasures_schedule_updated", data)
    hass.bus.async_fire(
        "flexmeasures_schedule_updated",
        {"device_id": devices["car"].id, "name": "EV", "start": "a", "end": "b"},
    )
    await hass.async_block_till_done()

    event = await client.receive_json()
    assert event["event"] == {
        "device_id": devices["car"].id,
        "name": "EV",
        "start": "a",
        "end": "b",
    }


@pytest.mark.parametrize("device", ["asset", "other", "stray", None])
async def test_subscribe_unknown_device(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    devices: dict[str, dr.DeviceEntry],
    device: str | None,
) -> None:
    """Only controlled devices of this integration can be subscribed to."""
    device_id = devices[device].id if device else "nonexistent"
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {"type": "flexmeasures/schedule/subscribe", "device_id": device_id}
    )
    msg = await client.receive_json()

    assert not msg["success"]
    assert msg["error"]["code"] == "not_found"


@pytest.mark.usefixtures("fake_scheduling")
async def test_subscribe_without_permission(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_read_only_user: MockUser,
    hass_read_only_access_token: str,
    init_battery: MockConfigEntry,
) -> None:
    """A user who may not read the device's entities is refused and told nothing."""
    device = battery_device(hass)
    readable = "sensor.not_the_battery"
    hass_read_only_user.mock_policy({"entities": {"entity_ids": {readable: True}}})
    client = await hass_ws_client(hass, hass_read_only_access_token)

    await client.send_json_auto_id(
        {"type": "flexmeasures/schedule/subscribe", "device_id": device.id}
    )
    refused = await client.receive_json()
    assert refused["error"]["code"] == "unauthorized"

    # Subscribed to all devices, this user hears nothing of the battery.
    await client.send_json_auto_id({"type": "flexmeasures/schedule/subscribe"})
    subscribed = await client.receive_json()
    assert subscribed["success"]
    await trigger_battery(hass)
    await client.send_json_auto_id({"type": "ping"})
    assert (await client.receive_json())["type"] == "pong"
