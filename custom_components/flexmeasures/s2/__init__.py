"""S2: Home Assistant as the Customer Energy Manager of S2 resource managers.

One concern a module:

- ``model``: sensor targets, storage, plan slots, device status, the CEM's handler.
- ``config``: which controlled devices accept S2, with which sensors, at which path.
- ``uploads``: a connection's bounded queue of posts to FlexMeasures.
- ``session``: one resource manager's conversation (frames, FRBC, the plan followed).
- ``hub``: the websocket endpoint, one connection per device, the action's handler.
- ``entities``: the S2 sensors and binary sensors.

The library's CEM is reached through ``api.S2Cem`` only.
"""

from __future__ import annotations

from .config import S2_URL, S2DeviceConfig, s2_devices, s2_path
from .entities import async_add_s2_entities
from .hub import (
    CLOSE_TIMEOUT,
    HEARTBEAT,
    MAX_MESSAGE_SIZE,
    OUTGOING_QUEUE_SIZE,
    SEND_TIMEOUT,
    S2Hub,
    S2View,
    async_create_s2_hub,
    async_get_s2_diagnostics,
    async_register_s2_view,
    async_set_control_type,
)
from .model import (
    S2CemHandler,
    S2CemSettings,
    S2DeviceStatus,
    S2PlanSlot,
    S2ResourceManagerInfo,
    S2SensorTarget,
    S2Storage,
    plan_slots,
)
from .session import S2_DEFAULT_RESOLUTION, S2_NIL_ID, S2Session, frbc_instructions
from .uploads import S2_UPLOAD_QUEUE_SIZE, S2Uploads

__all__ = [
    "CLOSE_TIMEOUT",
    "HEARTBEAT",
    "MAX_MESSAGE_SIZE",
    "OUTGOING_QUEUE_SIZE",
    "S2_DEFAULT_RESOLUTION",
    "S2_NIL_ID",
    "S2_UPLOAD_QUEUE_SIZE",
    "S2_URL",
    "SEND_TIMEOUT",
    "S2CemHandler",
    "S2CemSettings",
    "S2DeviceConfig",
    "S2DeviceStatus",
    "S2Hub",
    "S2PlanSlot",
    "S2ResourceManagerInfo",
    "S2SensorTarget",
    "S2Session",
    "S2Storage",
    "S2Uploads",
    "S2View",
    "async_add_s2_entities",
    "async_create_s2_hub",
    "async_get_s2_diagnostics",
    "async_register_s2_view",
    "async_set_control_type",
    "frbc_instructions",
    "plan_slots",
    "s2_devices",
    "s2_path",
]
