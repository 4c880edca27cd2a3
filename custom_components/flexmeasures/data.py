"""Runtime data of a FlexMeasures config entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry

if TYPE_CHECKING:
    from .api import FlexMeasuresApi, ServerInfo
    from .coordinator import (
        FlexMeasuresInventoryCoordinator,
        FlexMeasuresSensorValuesCoordinator,
    )
    from .s2 import S2Hub
    from .scheduling import DeviceScheduler
    from .uploader import MeasurementUploader

type FlexMeasuresConfigEntry = ConfigEntry[FlexMeasuresData]


@dataclass(kw_only=True)
class FlexMeasuresData:
    """What a loaded entry holds: the API, what we know of the server, coordinators."""

    api: FlexMeasuresApi
    server: ServerInfo
    inventory: FlexMeasuresInventoryCoordinator
    # S2: websocket connections of the controlled devices' resource managers.
    s2: S2Hub
    sensor_values: FlexMeasuresSensorValuesCoordinator
    # Scheduling: one scheduler per controlled-device subentry, by subentry id.
    schedulers: dict[str, DeviceScheduler] = field(default_factory=dict)
    uploader: MeasurementUploader
