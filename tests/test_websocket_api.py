"""Tests for the websocket commands of the dashboard card."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
)
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.flexmeasures.const import DOMAIN

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
