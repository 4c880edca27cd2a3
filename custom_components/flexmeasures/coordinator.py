"""Data update coordinators for FlexMeasures."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from .api import (
    Asset,
    FlexMeasuresApi,
    FlexMeasuresAuthenticationError,
    FlexMeasuresConnectionError,
    FlexMeasuresError,
    Sensor,
)
from .const import DOMAIN, LOGGER
from .data import FlexMeasuresConfigEntry

INVENTORY_INTERVAL: Final = timedelta(minutes=30)


async def async_call_for_coordinator[T](func: Callable[[], Awaitable[T]]) -> T:
    """Await an API call, mapping its errors to what a coordinator must raise."""
    try:
        return await func()
    except FlexMeasuresAuthenticationError as err:
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN, translation_key="authentication_failed"
        ) from err
    except FlexMeasuresConnectionError as err:
        raise UpdateFailed(
            translation_domain=DOMAIN,
            translation_key="communication_error",
            translation_placeholders={"error": str(err)},
        ) from err
    except FlexMeasuresError as err:
        raise UpdateFailed(
            translation_domain=DOMAIN,
            translation_key="unexpected_response",
            translation_placeholders={"error": str(err)},
        ) from err


@dataclass(frozen=True, kw_only=True, slots=True)
class Inventory:
    """The assets and sensors the account can see, by id."""

    assets: dict[int, Asset]
    sensors: dict[int, Sensor]


class FlexMeasuresInventoryCoordinator(DataUpdateCoordinator[Inventory]):
    """Keeps the list of assets and sensors current (slow cadence)."""

    config_entry: FlexMeasuresConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: FlexMeasuresConfigEntry,
        api: FlexMeasuresApi,
    ) -> None:
        """Initialize the coordinator."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} inventory",
            update_interval=INVENTORY_INTERVAL,
        )
        self.api = api

    async def _async_update_data(self) -> Inventory:
        """Fetch assets and sensors."""
        assets = await async_call_for_coordinator(self.api.async_get_assets)
        sensors = await async_call_for_coordinator(self.api.async_get_sensors)
        return Inventory(
            assets={asset.id: asset for asset in assets},
            sensors={sensor.id: sensor for sensor in sensors},
        )
