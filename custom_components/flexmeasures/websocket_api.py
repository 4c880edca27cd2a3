"""Websocket commands the dashboard card reads its data from.

``flexmeasures/schedule/subscribe`` is the integration's own subscription: Home
Assistant lets only administrators subscribe to the integration's bus event
``flexmeasures_schedule_updated``, while this command serves any user who may
read the controlled device's entities.
"""

from __future__ import annotations

from typing import Any

from homeassistant.auth.permissions.const import POLICY_READ
from homeassistant.components.websocket_api import async_register_command
from homeassistant.components.websocket_api.connection import ActiveConnection
from homeassistant.components.websocket_api.const import ERR_NOT_FOUND
from homeassistant.components.websocket_api.decorators import (
    async_response,
    websocket_command,
)
from homeassistant.components.websocket_api.messages import event_message
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import Unauthorized
from homeassistant.helpers import entity_registry as er

from .card_data import (
    async_controlled_devices,
    async_get_controlled_device,
    async_schedule_payload,
)
from .compat import vol
from .const import EVENT_SCHEDULE_UPDATED


@callback
def async_register_websocket_commands(hass: HomeAssistant) -> None:
    """Register the websocket commands of the dashboard card."""
    async_register_command(hass, websocket_schedule_devices)
    async_register_command(hass, websocket_schedule_get)
    async_register_command(hass, websocket_schedule_subscribe)


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


def _may_read_device(
    hass: HomeAssistant, connection: ActiveConnection, device_id: str
) -> bool:
    """Tell whether the connection's user may read an entity of this device."""
    user = connection.user
    if user.is_admin:
        return True
    return any(
        user.permissions.check_entity(entity.entity_id, POLICY_READ)
        for entity in er.async_entries_for_device(er.async_get(hass), device_id)
    )


@websocket_command(
    {
        vol.Required("type"): "flexmeasures/schedule/subscribe",
        vol.Optional("device_id"): str,
    }
)
@callback
def websocket_schedule_subscribe(
    hass: HomeAssistant,
    connection: ActiveConnection,
    msg: dict[str, Any],
) -> None:
    """Send an event each time a new schedule is announced.

    With ``device_id`` only that controlled device's schedules; without, those
    of every controlled device the user may read. An event carries the device
    id, name, start and end of the new plan.
    """
    device_id: str | None = msg.get("device_id")
    if device_id is not None:
        if async_get_controlled_device(hass, device_id) is None:
            connection.send_error(
                msg["id"], ERR_NOT_FOUND, f"No controlled device {device_id}"
            )
            return
        if not _may_read_device(hass, connection, device_id):
            raise Unauthorized(user_id=connection.user.id)

    @callback
    def _forward(event: Event[dict[str, Any]]) -> None:
        """Pass an announced schedule on to the subscriber, if it may see it."""
        announced = event.data.get("device_id")
        if not isinstance(announced, str):
            return
        if device_id is not None and announced != device_id:
            return
        if not _may_read_device(hass, connection, announced):
            return
        connection.send_message(
            event_message(
                msg["id"],
                {
                    "device_id": announced,
                    "name": event.data.get("name"),
                    "start": event.data.get("start"),
                    "end": event.data.get("end"),
                },
            )
        )

    connection.subscriptions[msg["id"]] = hass.bus.async_listen(
        EVENT_SCHEDULE_UPDATED, _forward
    )
    connection.send_result(msg["id"])
