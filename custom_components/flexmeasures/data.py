"""Runtime data of a FlexMeasures config entry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry

if TYPE_CHECKING:
    from .api import FlexMeasuresApi, ServerInfo
    from .coordinator import (
        FlexMeasuresInventoryCoordinator,
        FlexMeasuresSensorValuesCoordinator,
    )
    from .uploader import MeasurementUploader

type FlexMeasuresConfigEntry = ConfigEntry[FlexMeasuresData]


@dataclass(kw_only=True)
class FlexMeasuresData:
    """What a loaded entry holds: the API, what we know of the server, coordinators."""

    api: FlexMeasuresApi
    server: ServerInfo
    inventory: FlexMeasuresInventoryCoordinator
    sensor_values: FlexMeasuresSensorValuesCoordinator
    uploader: MeasurementUploader
