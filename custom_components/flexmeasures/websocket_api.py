"""Websocket commands the dashboard card reads its data from.

``flexmeasures/schedule/subscribe`` is the integration's own subscription: Home
Assistant lets only administrators subscribe to the integration's bus event
``flexmeasures_schedule_updated``, while this command serves any user who may
read the controlled device's entities.

``flexmeasures/schedule/site/subscribe`` sends a site's whole plan (see
``card_data.CardSite``) at once and again whenever a plan or status of one of
its devices changes.
"""

from __future__ import annotations

import asyncio
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
from homeassistant.config_entries import (
    SIGNAL_CONFIG_ENTRY_CHANGED,
    ConfigEntry,
    ConfigEntryChange,
)
from homeassistant.core import CALLBACK_TYPE, Event, HomeAssistant, callback
from homeassistant.exceptions import Unauthorized
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.dispatcher import async_dispatcher_connect

from .card_data import (
    SiteRef,
    async_controlled_devices,
    async_get_controlled_device,
    async_get_site,
    async_schedule_payload,
    async_site_payload,
    async_sites,
)
from .compat import vol
from .const import EVENT_SCHEDULE_UPDATED


@callback
def async_register_websocket_commands(hass: HomeAssistant) -> None:
    """Register the websocket commands of the dashboard card."""
    async_register_command(hass, websocket_schedule_devices)
    async_register_command(hass, websocket_schedule_get)
    async_register_command(hass, websocket_schedule_subscribe)
    async_register_command(hass, websocket_schedule_sites)
    async_register_command(hass, websocket_site_subscribe)


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


# --- Sites ---------------------------------------------------------------------


@websocket_command({vol.Required("type"): "flexmeasures/schedule/sites"})
@async_response
async def websocket_schedule_sites(
    hass: HomeAssistant,
    connection: ActiveConnection,
    msg: dict[str, Any],
) -> None:
    """List the sites the card can show."""
    connection.send_result(msg["id"], await async_sites(hass))


def _may_read_site(
    hass: HomeAssistant, connection: ActiveConnection, ref: SiteRef
) -> bool:
    """Tell whether the user may read the site's device or all of its devices."""
    if _may_read_device(hass, connection, ref.device.id):
        return True
    devices = ref.member_devices(hass)
    return bool(devices) and all(
        device is not None and _may_read_device(hass, connection, device.id)
        for device in devices
    )


class _SiteFeed:
    """Sends a site's plan to one subscriber each time one of its devices changes.

    One payload is built at a time; changes meanwhile are sent as one more. The
    feed follows the entry: reloaded, it listens to the new device schedulers.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        connection: ActiveConnection,
        msg_id: int,
        ref: SiteRef,
    ) -> None:
        """Initialize, listening to nothing yet."""
        self.hass = hass
        self.connection = connection
        self.msg_id = msg_id
        self.device_id = ref.device.id
        self.entry_id = ref.entry.entry_id
        self._listeners: list[CALLBACK_TYPE] = []
        self._task: asyncio.Task[None] | None = None
        self._again = False

    @callback
    def async_start(self) -> CALLBACK_TYPE:
        """Listen to the site's devices and its entry; return the unsubscribe."""
        unsub_entry = async_dispatcher_connect(
            self.hass, SIGNAL_CONFIG_ENTRY_CHANGED, self._entry_changed
        )
        self._attach()

        @callback
        def unsubscribe() -> None:
            unsub_entry()
            self._detach()
            if self._task is not None:
                self._task.cancel()

        return unsubscribe

    @callback
    def _detach(self) -> None:
        """Stop listening to the devices."""
        while self._listeners:
            self._listeners.pop()()

    @callback
    def _attach(self) -> None:
        """Listen to the site's devices as they are now; send the plan."""
        self._detach()
        ref = async_get_site(self.hass, self.device_id)
        if ref is None:
            return
        self._listeners = [
            scheduler.async_add_listener(self._changed)
            for scheduler in ref.site.devices
        ]
        self._changed()

    @callback
    def _entry_changed(self, change: ConfigEntryChange, entry: ConfigEntry) -> None:
        """Follow the entry through a reload (or a removal)."""
        if entry.entry_id == self.entry_id:
            self._attach()

    @callback
    def _changed(self) -> None:
        """Send the plan, or once more after the one being built."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = self.hass.async_create_task(
            self._async_send(), f"flexmeasures site feed {self.device_id}"
        )

    async def _async_send(self) -> None:
        """Build and send the plan until no change came in meanwhile."""
        self._again = True
        while self._again:
            self._again = False
            ref = async_get_site(self.hass, self.device_id)
            if ref is None or not _may_read_site(self.hass, self.connection, ref):
                return
            payload = await async_site_payload(self.hass, ref)
            self.connection.send_message(event_message(self.msg_id, payload))


@websocket_command(
    {
        vol.Required("type"): "flexmeasures/schedule/site/subscribe",
        vol.Required("device_id"): str,
    }
)
@callback
def websocket_site_subscribe(
    hass: HomeAssistant,
    connection: ActiveConnection,
    msg: dict[str, Any],
) -> None:
    """Send a site's plan now and each time a plan or status of its devices changes.

    ``device_id`` is the site's device. Any user who may read the site's
    entities, or those of all its devices, may subscribe.
    """
    ref = async_get_site(hass, msg["device_id"])
    if ref is None:
        connection.send_error(msg["id"], ERR_NOT_FOUND, f"No site {msg['device_id']}")
        return
    if not _may_read_site(hass, connection, ref):
        raise Unauthorized(user_id=connection.user.id)
    feed = _SiteFeed(hass, connection, msg["id"], ref)
    # The result first: the feed sends the plan right away.
    connection.send_result(msg["id"])
    connection.subscriptions[msg["id"]] = feed.async_start()
