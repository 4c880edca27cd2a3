"""The S2 hub: the websocket endpoint, one connection per device, plans followed.

A resource manager (a heat pump, battery or charger gateway speaking S2) opens a
websocket to ``/api/flexmeasures/s2/<entry_id>/<subentry_id>`` with a Home Assistant
access token. Each connection runs an ``S2Session`` (see ``session.py``), configured
from the controlled device's subentry. The hub keeps one connection per device (the
newest wins), bounds what each connection may queue, and closes all connections
when the entry unloads.

The device has one planner, its ``DeviceScheduler``: the storage a resource manager
describes is planned by it (a normal round), and every connection follows the
device's current plan, whatever produced it (S2, the action, automatic replans,
a job picked up after a restart).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from aiohttp import WSCloseCode, WSMsgType, web
from homeassistant.components.http.const import KEY_HASS_USER
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import (
    HomeAssistantError,
    ServiceValidationError,
    Unauthorized,
)
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.http import KEY_HASS, HomeAssistantView
from homeassistant.helpers.json import json_dumps
from homeassistant.util import dt as dt_util

from ..const import DOMAIN, LOGGER
from ..controlled_device import async_get_controlled_device_entry
from ..data import FlexMeasuresConfigEntry
from ..signals import signal_s2_updated
from .config import S2_URL, S2DeviceConfig, s2_devices, s2_path
from .model import S2CemSettings, S2DeviceStatus, S2SensorTarget, S2Storage, plan_slots
from .session import S2Session

if TYPE_CHECKING:
    from ..scheduling import Schedule

# Frames above this size close the connection (aiohttp answers 1009).
MAX_MESSAGE_SIZE: Final = 256 * 1024
# Messages waiting to be sent per connection; a full outbox pauses that peer's reads.
OUTGOING_QUEUE_SIZE: Final = 64
# A peer that takes longer than this to accept one message is disconnected.
SEND_TIMEOUT: Final = 10.0
HEARTBEAT: Final = 30.0
CLOSE_TIMEOUT: Final = 5.0


@dataclass(kw_only=True)
class _Connection:
    """One live websocket and the CEM session behind it."""

    ws: web.WebSocketResponse
    session: S2Session
    connected_at: datetime
    done: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # The device's plan this connection follows, and the task sending it.
    plan: Schedule | None = None
    follower: asyncio.Task[None] | None = None


class S2Hub:
    """The S2 connections of one config entry's controlled devices."""

    def __init__(self, hass: HomeAssistant, entry: FlexMeasuresConfigEntry) -> None:
        """Read which controlled devices accept S2 connections."""
        self.hass = hass
        self.entry = entry
        self.devices = s2_devices(entry)
        self.status = {device_id: S2DeviceStatus() for device_id in self.devices}
        self._connections: dict[str, _Connection] = {}
        self._closing = False

    @callback
    def _async_update(self, subentry_id: str) -> None:
        """Refresh a device's status from its session and tell the entities."""
        status = self.status[subentry_id]
        connection = self._connections.get(subentry_id)
        status.connected = connection is not None
        status.control_type = connection.session.control_type if connection else None
        async_dispatcher_send(
            self.hass, signal_s2_updated(self.entry.entry_id, subentry_id)
        )

    def _settings(self, device: S2DeviceConfig) -> S2CemSettings:
        """Build the CEM settings, with units and resolutions from the inventory."""
        sensors = self.entry.runtime_data.inventory.data.sensors

        def target(sensor_id: int | None) -> S2SensorTarget | None:
            if sensor_id is None:
                return None
            if (sensor := sensors.get(sensor_id)) is None:
                return S2SensorTarget(id=sensor_id, unit="", resolution=timedelta(0))
            return S2SensorTarget(
                id=sensor.id, unit=sensor.unit, resolution=sensor.resolution
            )

        return S2CemSettings(
            power=target(device.power_sensor),
            fill_level=target(device.fill_level_sensor),
            usage_forecast=target(device.usage_forecast_sensor),
            actuator_status=target(device.actuator_status_sensor),
        )

    def _create_task(self, coro: Any, name: str) -> asyncio.Task[None]:
        """Run a coroutine for this entry; it is cancelled when the entry unloads."""
        return self.entry.async_create_background_task(self.hass, coro, name)

    async def async_serve(
        self, request: web.Request, device: S2DeviceConfig
    ) -> web.WebSocketResponse:
        """Run one resource manager's websocket until either side closes it."""
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=MAX_MESSAGE_SIZE)
        await ws.prepare(request)
        if self._closing:
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"Unloading")
            return ws
        subentry_id = device.subentry_id

        async def _async_plan(storage: S2Storage) -> None:
            await self._async_plan(subentry_id, storage)

        session = S2Session(
            self.entry.runtime_data.api,
            self._settings(device),
            create_task=self._create_task,
            executor=self.hass.async_add_executor_job,
            on_storage=_async_plan,
            queue_size=OUTGOING_QUEUE_SIZE,
        )
        connection = _Connection(ws=ws, session=session, connected_at=dt_util.utcnow())
        if (previous := self._connections.get(subentry_id)) is not None:
            LOGGER.info("S2 resource manager of %s reconnected", device.name)
            self._create_task(
                self._async_close_connection(previous, b"Replaced"), "s2 replaced"
            )
        self._connections[subentry_id] = connection
        self.status[subentry_id].connections += 1
        self._async_update(subentry_id)
        unsub_plan = self._async_follow_plans(subentry_id, connection)
        try:
            reader = self._create_task(
                self._async_read(subentry_id, connection), "s2 reader"
            )
            writer = self._create_task(
                self._async_write(subentry_id, connection), "s2 writer"
            )
            connection.tasks.update((reader, writer))
            await asyncio.wait(connection.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            unsub_plan()
            for task in connection.tasks:
                task.cancel()
            if self._connections.get(subentry_id) is connection:
                del self._connections[subentry_id]
                self._async_update(subentry_id)
            await session.async_close()
            if not ws.closed:
                await ws.close()
            connection.done.set()
        return ws

    async def _async_read(self, subentry_id: str, connection: _Connection) -> None:
        """Hand every frame to the CEM; answer unusable frames with an error."""
        async for message in connection.ws:
            if message.type is WSMsgType.TEXT:
                await connection.session.async_receive(message.data)
            elif message.type is WSMsgType.BINARY:
                await connection.session.async_reject("Binary frames are not S2")
            else:  # WSMsgType.ERROR: too large or broken; aiohttp closes the socket
                break
            self._async_update(subentry_id)

    async def _async_write(self, subentry_id: str, connection: _Connection) -> None:
        """Send what the CEM produces; give up on a peer that stops reading."""
        while True:
            message = await connection.session.async_next_message()
            try:
                async with asyncio.timeout(SEND_TIMEOUT):
                    await connection.ws.send_str(json_dumps(message))
            except (ConnectionError, TimeoutError) as err:
                LOGGER.debug("S2 resource manager stopped reading: %r", err)
                return
            if message.get("message_type") == "FRBC.Instruction":
                self.status[subentry_id].last_instruction = dt_util.utcnow()
            self._async_update(subentry_id)

    async def _async_close_connection(
        self, connection: _Connection, reason: bytes
    ) -> None:
        """Close a connection and wait (bounded) until its handler has finished."""
        await connection.ws.close(code=WSCloseCode.GOING_AWAY, message=reason)
        for task in connection.tasks:
            task.cancel()
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await connection.done.wait()

    def session(self, subentry_id: str) -> S2Session | None:
        """Return the live session of a controlled device, if connected."""
        connection = self._connections.get(subentry_id)
        return connection.session if connection else None

    @callback
    def _async_follow_plans(
        self, subentry_id: str, connection: _Connection
    ) -> CALLBACK_TYPE:
        """Send the device's plan now and each time it changes; return the remover."""
        # Every S2-enabled device is a controlled device, with its scheduler.
        scheduler = self.entry.runtime_data.schedulers[subentry_id]

        @callback
        def _plan_changed() -> None:
            if (schedule := scheduler.schedule) is connection.plan or schedule is None:
                return
            connection.plan = schedule
            if connection.follower is None or connection.follower.done():
                connection.follower = self._create_task(
                    self._async_follow(connection), "s2 instructions"
                )

        _plan_changed()
        remove = scheduler.async_add_listener(_plan_changed)

        @callback
        def _stop() -> None:
            remove()
            if connection.follower is not None:
                connection.follower.cancel()

        return _stop

    async def _async_follow(self, connection: _Connection) -> None:
        """Hand the newest plan to a connection until it has the newest one."""
        sent: Schedule | None = None
        while (plan := connection.plan) is not sent and plan is not None:
            sent = plan
            await connection.session.async_follow_plan(plan_slots(plan))

    async def _async_plan(self, subentry_id: str, storage: S2Storage) -> None:
        """Have the device's planner plan the storage a resource manager described."""
        device = self.devices[subentry_id]
        scheduler = self.entry.runtime_data.schedulers[subentry_id]
        try:
            await scheduler.async_plan_from_device(
                soc_kwh=storage.fill_level,
                soc_min_kwh=storage.fill_level_min,
                soc_max_kwh=storage.fill_level_max,
                charge_power_kw=storage.charge_power_kw,
                discharge_power_kw=storage.discharge_power_kw,
            )
        except ServiceValidationError as err:
            LOGGER.warning(
                "Cannot plan %s with what its S2 resource manager reported: %s",
                device.name,
                ", ".join((err.translation_placeholders or {}).values()),
            )
        except HomeAssistantError as err:
            # The planner's status and log already say why.
            LOGGER.debug("S2 plan request of %s failed: %s", device.name, err)

    async def async_close(self) -> None:
        """Close every connection (the entry is unloading)."""
        self._closing = True
        await asyncio.gather(
            *(
                self._async_close_connection(connection, b"Unloading")
                for connection in list(self._connections.values())
            ),
            return_exceptions=True,
        )

    @callback
    def async_diagnostics(self) -> dict[str, Any]:
        """Return the S2 devices and connected resource managers (no secrets)."""
        devices: dict[str, Any] = {}
        for subentry_id, device in self.devices.items():
            status = self.status[subentry_id]
            connection = self._connections.get(subentry_id)
            info = connection.session.resource_manager if connection else None
            devices[subentry_id] = {
                "name": device.name,
                "path": s2_path(self.entry.entry_id, subentry_id),
                "sensors": {
                    "power": device.power_sensor,
                    "fill_level": device.fill_level_sensor,
                    "usage_forecast": device.usage_forecast_sensor,
                    "actuator_status": device.actuator_status_sensor,
                    "schedule": device.schedule_sensor,
                },
                "connected": status.connected,
                "connected_at": connection.connected_at.isoformat()
                if connection
                else None,
                "connections": status.connections,
                "control_type": status.control_type,
                "last_instruction": status.last_instruction.isoformat()
                if status.last_instruction
                else None,
                "resource_manager": None
                if info is None
                else {
                    "resource_id": info.resource_id,
                    "name": info.name,
                    "manufacturer": info.manufacturer,
                    "model": info.model,
                    "firmware_version": info.firmware_version,
                    "control_types": list(info.control_types),
                },
            }
        return {"devices": devices}


class S2View(HomeAssistantView):
    """The websocket endpoint resource managers connect to, with an access token."""

    url = S2_URL
    name = "api:flexmeasures:s2"
    requires_auth = True

    async def get(
        self, request: web.Request, entry_id: str, subentry_id: str
    ) -> web.StreamResponse:
        """Accept a resource manager's websocket for an S2-enabled device."""
        if not request[KEY_HASS_USER].is_admin:
            raise Unauthorized
        hass = request.app[KEY_HASS]
        entry: FlexMeasuresConfigEntry | None = hass.config_entries.async_get_entry(
            entry_id
        )
        if (
            entry is None
            or entry.domain != DOMAIN
            or entry.state is not ConfigEntryState.LOADED
            or (device := entry.runtime_data.s2.devices.get(subentry_id)) is None
        ):
            raise web.HTTPNotFound
        return await entry.runtime_data.s2.async_serve(request, device)


def _hub_for_device(hass: HomeAssistant, device_id: str) -> tuple[S2Hub, str]:
    """Return the hub and subentry id of an S2-enabled controlled device."""
    entry, subentry_id = async_get_controlled_device_entry(hass, device_id)
    hub = entry.runtime_data.s2
    if subentry_id not in hub.devices:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="s2_not_enabled",
            translation_placeholders={"device": entry.subentries[subentry_id].title},
        )
    return hub, subentry_id


async def async_set_control_type(
    hass: HomeAssistant, device_id: str, control_type: str
) -> None:
    """Ask a device's resource manager to switch control type (the action)."""
    hub, subentry_id = _hub_for_device(hass, device_id)
    name = hub.devices[subentry_id].name
    if (session := hub.session(subentry_id)) is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="s2_not_connected",
            translation_placeholders={"device": name},
        )
    try:
        await session.async_select_control_type(control_type)
    except ValueError as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="s2_control_type_unsupported",
            translation_placeholders={"device": name, "control_type": control_type},
        ) from err


@callback
def async_register_s2_view(hass: HomeAssistant) -> None:
    """Register the S2 websocket endpoint (once, from async_setup)."""
    hass.http.register_view(S2View())


def async_create_s2_hub(hass: HomeAssistant, entry: FlexMeasuresConfigEntry) -> S2Hub:
    """Create the entry's hub and close its connections when the entry unloads."""
    hub = S2Hub(hass, entry)
    entry.async_on_unload(hub.async_close)
    return hub


@callback
def async_get_s2_diagnostics(entry: FlexMeasuresConfigEntry) -> dict[str, Any]:
    """Return the S2 part of the entry's diagnostics."""
    return entry.runtime_data.s2.async_diagnostics()
