"""The FlexMeasures integration."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
import homeassistant.helpers.config_validation as cv
from homeassistant.helpers.typing import ConfigType

from .api import (
    FlexMeasuresAuthenticationError,
    FlexMeasuresError,
    FlexMeasuresServerTooOldError,
    async_create_api,
)
from .const import DOMAIN
from .coordinator import FlexMeasuresInventoryCoordinator
from .data import FlexMeasuresConfigEntry, FlexMeasuresData
from .services import async_setup_measurement_services
from .uploader import MeasurementUploader

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

PLATFORMS: list[Platform] = [Platform.SENSOR]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Set up the FlexMeasures integration (domain-wide parts)."""
    async_setup_measurement_services(hass)
    return True


async def async_setup_entry(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry
) -> bool:
    """Set up FlexMeasures from a config entry."""
    # Connect and log in: fail before any entity exists.
    api = async_create_api(hass, entry.data)
    try:
        server = await api.async_connect()
    except FlexMeasuresAuthenticationError as err:
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN, translation_key="authentication_failed"
        ) from err
    except FlexMeasuresServerTooOldError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="server_too_old",
            translation_placeholders={"version": str(err)},
        ) from err
    except FlexMeasuresError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="cannot_connect",
            translation_placeholders={"error": str(err)},
        ) from err

    # Coordinators: the inventory of assets and sensors.
    inventory = FlexMeasuresInventoryCoordinator(hass, entry, api)
    await inventory.async_config_entry_first_refresh()

    # Measurements: the durable queue of linked entities' states.
    uploader = MeasurementUploader(hass, entry, api)

    entry.runtime_data = FlexMeasuresData(
        api=api, server=server, inventory=inventory, uploader=uploader
    )
    await uploader.async_start()

    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry
) -> bool:
    """Unload a config entry."""
    if unload_ok := await hass.config_entries.async_unload_platforms(entry, PLATFORMS):
        await entry.runtime_data.uploader.async_shutdown()
    return unload_ok
