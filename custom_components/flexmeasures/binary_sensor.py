"""Binary sensors of the FlexMeasures integration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.binary_sensor import (
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .controlled_device import FlexMeasuresControlledDeviceEntity
from .data import FlexMeasuresConfigEntry
from .s2 import async_add_s2_entities
from .scheduling import POWER_EPSILON

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: FlexMeasuresConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up FlexMeasures binary sensors based on a config entry."""
    _async_setup_schedule_binary_sensors(entry, async_add_entities)
    # S2: connectivity of each controlled device's resource manager.
    async_add_s2_entities(entry, async_add_entities, Platform.BINARY_SENSOR)


# --- Scheduling: what a controlled device is planned to do now ---------------


@dataclass(frozen=True, kw_only=True)
class FlexMeasuresScheduleBinarySensorEntityDescription(BinarySensorEntityDescription):
    """Describes a binary sensor that reads the planned power now."""

    is_on_fn: Callable[[float], bool]


SCHEDULE_BINARY_SENSORS: tuple[
    FlexMeasuresScheduleBinarySensorEntityDescription, ...
] = (
    FlexMeasuresScheduleBinarySensorEntityDescription(
        key="charging_planned",
        translation_key="charging_planned",
        is_on_fn=lambda power: power >= POWER_EPSILON,
    ),
    FlexMeasuresScheduleBinarySensorEntityDescription(
        key="discharging_planned",
        translation_key="discharging_planned",
        is_on_fn=lambda power: power <= -POWER_EPSILON,
    ),
)


def _async_setup_schedule_binary_sensors(
    entry: FlexMeasuresConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the planned-now binary sensors of every controlled device."""
    for subentry_id, scheduler in entry.runtime_data.schedulers.items():
        async_add_entities(
            (
                FlexMeasuresScheduleBinarySensor(
                    scheduler=scheduler, description=description
                )
                for description in SCHEDULE_BINARY_SENSORS
            ),
            config_subentry_id=subentry_id,
        )


class FlexMeasuresScheduleBinarySensor(
    FlexMeasuresControlledDeviceEntity, BinarySensorEntity
):
    """On while the schedule plans charging (or discharging) now."""

    entity_description: FlexMeasuresScheduleBinarySensorEntityDescription

    @property
    def is_on(self) -> bool | None:
        """Return whether the plan says so now; unknown outside the plan."""
        schedule = self.coordinator.schedule
        power = None if schedule is None else schedule.power_at(dt_util.utcnow())
        return None if power is None else self.entity_description.is_on_fn(power)
