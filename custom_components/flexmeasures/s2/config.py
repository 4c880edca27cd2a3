"""Which controlled devices accept S2, with which sensors, and at which path."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from homeassistant.config_entries import ConfigSubentry

from ..const import (
    CONF_POWER_SENSOR,
    CONF_S2,
    CONF_S2_ACTUATOR_STATUS_SENSOR,
    CONF_S2_ENABLED,
    CONF_S2_FILL_LEVEL_SENSOR,
    CONF_S2_POWER_SENSOR,
    CONF_S2_USAGE_FORECAST_SENSOR,
    SUBENTRY_CONTROLLED_DEVICE,
)
from ..data import FlexMeasuresConfigEntry
from ..util import as_sensor_id

S2_URL: Final = "/api/flexmeasures/s2/{entry_id}/{subentry_id}"


@dataclass(frozen=True, kw_only=True, slots=True)
class S2DeviceConfig:
    """A controlled device's S2 settings, read from its subentry."""

    subentry_id: str
    name: str
    enabled: bool
    power_sensor: int | None = None
    fill_level_sensor: int | None = None
    usage_forecast_sensor: int | None = None
    actuator_status_sensor: int | None = None
    schedule_sensor: int | None = None

    @classmethod
    def from_subentry_data(
        cls, data: Mapping[str, Any], *, subentry_id: str, name: str
    ) -> S2DeviceConfig:
        """Read the S2 section of a controlled device's subentry data.

        Instructions follow the schedule of the device's own power sensor.
        """
        s2: Mapping[str, Any] = data.get(CONF_S2) or {}
        return cls(
            subentry_id=subentry_id,
            name=name,
            enabled=bool(s2.get(CONF_S2_ENABLED, False)),
            power_sensor=as_sensor_id(s2.get(CONF_S2_POWER_SENSOR)),
            fill_level_sensor=as_sensor_id(s2.get(CONF_S2_FILL_LEVEL_SENSOR)),
            usage_forecast_sensor=as_sensor_id(s2.get(CONF_S2_USAGE_FORECAST_SENSOR)),
            actuator_status_sensor=as_sensor_id(s2.get(CONF_S2_ACTUATOR_STATUS_SENSOR)),
            schedule_sensor=as_sensor_id(data.get(CONF_POWER_SENSOR)),
        )

    @classmethod
    def from_subentry(cls, subentry: ConfigSubentry) -> S2DeviceConfig:
        """Read a controlled device's subentry."""
        return cls.from_subentry_data(
            subentry.data, subentry_id=subentry.subentry_id, name=subentry.title
        )


def s2_devices(entry: FlexMeasuresConfigEntry) -> dict[str, S2DeviceConfig]:
    """Return the entry's controlled devices that have S2 enabled, by subentry id."""
    devices = (
        S2DeviceConfig.from_subentry(subentry)
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_CONTROLLED_DEVICE
    )
    return {device.subentry_id: device for device in devices if device.enabled}


def s2_path(entry_id: str, subentry_id: str) -> str:
    """Return the websocket path of a controlled device."""
    return S2_URL.format(entry_id=entry_id, subentry_id=subentry_id)
