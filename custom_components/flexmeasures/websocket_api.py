"""Websocket commands the dashboard card reads its data from."""

from __future__ import annotations

from typing import Any

from homeassistant.components.websocket_api import async_register_command
from homeassistant.components.websocket_api.connection import ActiveConnection
from homeassistant.components.websocket_api.const import ERR_NOT_FOUND
from homeassistant.components.websocket_api.decorators import (
    async_response,
    websocket_command,
)
from homeassistant.core import HomeAssistant, callback

from .card_data import (
    async_controlled_devices,
    async_get_controlled_device,
    async_schedule_payload,
)
from .compat import vol


@callback
def async_register_websocket_commands(hass: HomeAssistant) -> None:
    """Register the websocket commands of the dashboard card."""
    async_register_command(hass, websocket_schedule_devices)
    async_register_command(hass, websocket_schedule_get)


@websocket_command({vol.Required("type"): "flexmeasures/schedule/devices"})
@async_response
async def websocket_schedule_devices(
    hass: HomeAssistant,
    connection: ActiveConnection,
    msg: dict[str, Any],
) -> None:
    """List the controlled devices the card can show."""
    connection.send_result(msg["id"], await async_controlled_devices(hass))


@websocket_command(
    {
        vol.Required("type"): "flexmeasures/schedule/get",
        vol.Required("device_id"): str,
    }
)
@async_response
async def websocket_schedule_get(
    hass: HomeAssistant,
    connection: ActiveConnection,
    msg: dict[str, Any],
) -> None:
    """Send the schedule of one controlled device, or null if it has none."""
    if async_get_controlled_device(hass, msg["device_id"]) is None:
        connection.send_error(
            msg["id"],
            ERR_NOT_FOUND,
            f"No controlled device {msg['device_id']}",
        )
        return
    connection.send_result(
        msg["id"], await async_schedule_payload(hass, msg["device_id"])
    )
