"""The FlexMeasures integration."""

from __future__ import annotations

from functools import partial
from typing import Final

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryNotReady, HomeAssistantError
import homeassistant.helpers.config_validation as cv
from homeassistant.helpers.device_registry import DeviceEntry
from homeassistant.helpers.typing import ConfigType

from .api import FlexMeasuresError, async_create_api
from .card import async_setup_card
from .config_flow import subentry_unique_id
from .const import (
    CONF_ACCOUNT_ID,
    CONF_POWER_SENSOR,
    CONF_SENSOR_ID,
    CONFIG_ENTRY_MINOR_VERSION,
    DOMAIN,
    LOGGER,
    SUBENTRY_CONTROLLED_DEVICE,
    SUBENTRY_MEASUREMENT_LINK,
)
from .coordinator import (
    FlexMeasuresInventoryCoordinator,
    FlexMeasuresSensorValuesCoordinator,
    scan_interval,
)
from .data import FlexMeasuresConfigEntry, FlexMeasuresData, translated_error
from .entity import async_sync_devices
from .forecasts.link import ForecastLinks, async_remove_forecasts
from .identity import account_unique_id, asset_id_of, async_rekey_registries, entry_key
from .s2 import async_create_s2_hub, async_register_s2_view
from .scheduling import async_remove_schedules, async_setup_schedulers
from .services import async_setup_measurement_services, async_setup_services
from .uploader import MeasurementUploader, async_remove_measurements

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.CALENDAR,
    Platform.SENSOR,
]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Set up the FlexMeasures integration (domain-wide parts)."""
    await async_setup_card(hass)
    async_setup_services(hass)
    async_register_s2_view(hass)
    async_setup_measurement_services(hass)
    return True


# The data key holding the FlexMeasures sensor that names each subentry type.
_SUBENTRY_SENSOR_KEYS: Final = {
    SUBENTRY_CONTROLLED_DEVICE: CONF_POWER_SENSOR,
    SUBENTRY_MEASUREMENT_LINK: CONF_SENSOR_ID,
}


async def async_migrate_entry(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry
) -> bool:
    """Migrate an entry stored by an older version of the integration."""
    if entry.version > 1:
        # Stored by a newer version: nothing here can read it.
        return False
    if entry.minor_version < 2:
        # 1.1 -> 1.2: subentry unique ids name their type, so one sensor can
        # be both a controlled device and a measurement link.
        taken = {subentry.unique_id for subentry in entry.subentries.values()}
        for subentry in list(entry.subentries.values()):
            key = _SUBENTRY_SENSOR_KEYS.get(subentry.subentry_type)
            if key is None or subentry.data.get(key) is None:
                continue
            unique_id = subentry_unique_id(subentry.subentry_type, subentry.data[key])
            # Two subentries without unique id may name the same sensor; the
            # first keeps it, Home Assistant refuses a unique id twice.
            if unique_id not in taken:
                taken.add(unique_id)
                hass.config_entries.async_update_subentry(
                    entry, subentry, unique_id=unique_id
                )
    if entry.minor_version < 3:
        # 1.2 -> 1.3: the entry, its devices and entities are keyed on the
        # account, not on "<server URL>_<account id>". Registry entries keep
        # their entity ids, names and areas, so history stays with them.
        new_unique_id = account_unique_id(
            entry.data[CONF_ACCOUNT_ID],
            taken={
                other.unique_id
                for other in hass.config_entries.async_entries(DOMAIN)
                if other.entry_id != entry.entry_id
            },
        )
        await async_rekey_registries(hass, entry, entry_key(entry), new_unique_id)
        hass.config_entries.async_update_entry(entry, unique_id=new_unique_id)
    hass.config_entries.async_update_entry(
        entry, minor_version=CONFIG_ENTRY_MINOR_VERSION
    )
    LOGGER.debug(
        "Migrated entry %s to version %s.%s",
        entry.title,
        entry.version,
        CONFIG_ENTRY_MINOR_VERSION,
    )
    return True


async def async_setup_entry(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry
) -> bool:
    """Set up FlexMeasures from a config entry."""
    # Connect and log in: fail before any entity exists.
    api = async_create_api(hass, entry.data)
    try:
        server = await api.async_connect()
    except FlexMeasuresError as err:
        raise translated_error(err, ConfigEntryNotReady) from err

    # Coordinators: the inventory of assets and sensors.
    inventory = FlexMeasuresInventoryCoordinator(hass, entry, api)
    await inventory.async_config_entry_first_refresh()

    # Sensor values, and a device per asset kept in step with the inventory.
    sensor_values = FlexMeasuresSensorValuesCoordinator(hass, entry, api, inventory)
    await sensor_values.async_config_entry_first_refresh()

    @callback
    def _async_sync_devices() -> None:
        """Mirror the server's assets as devices after each inventory refresh."""
        if inventory.last_update_success:
            async_sync_devices(hass, entry, inventory.data)

    _async_sync_devices()
    entry.async_on_unload(inventory.async_add_listener(_async_sync_devices))

    # Options apply in place. The listener also runs for every added or changed
    # subentry; those leave the options alone and cost no refresh of all sensors.
    applied_options = dict(entry.options)

    async def _async_entry_updated(
        hass: HomeAssistant, entry: FlexMeasuresConfigEntry
    ) -> None:
        """Apply the options if they changed."""
        nonlocal applied_options
        if entry.options != applied_options:
            applied_options = dict(entry.options)
            await _async_options_updated(hass, entry)

    entry.async_on_unload(entry.add_update_listener(_async_entry_updated))

    # Measurements: the durable queue of linked entities' states.
    uploader = MeasurementUploader(hass, entry, api)

    entry.runtime_data = FlexMeasuresData(
        api=api,
        server=server,
        inventory=inventory,
        sensor_values=sensor_values,
        s2=async_create_s2_hub(hass, entry),
        uploader=uploader,
        forecasts=(forecasts := ForecastLinks(hass, entry, api)),
    )
    await uploader.async_start()
    await forecasts.async_start()

    # Scheduling: a scheduler per controlled device, its last schedule restored.
    await async_setup_schedulers(hass, entry)

    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry
) -> bool:
    """Unload a config entry."""
    if unload_ok := await hass.config_entries.async_unload_platforms(entry, PLATFORMS):
        await entry.runtime_data.uploader.async_shutdown()
        await entry.runtime_data.forecasts.async_shutdown()
    return unload_ok


async def _async_options_updated(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry
) -> None:
    """Apply new options in place: the sensor selection and the polling interval."""
    data = entry.runtime_data
    data.sensor_values.period = scan_interval(entry.options)
    await data.sensor_values.async_refresh()
    # Then the sensor platform adds and removes entities for the new selection.
    data.inventory.async_update_listeners()


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry, device_entry: DeviceEntry
) -> bool:
    """Allow removing an asset's device only once the asset is gone from the server."""
    asset_id = asset_id_of(entry, device_entry)
    if asset_id is None:
        return False
    try:
        assets = await entry.runtime_data.api.async_get_assets()
    except FlexMeasuresError as err:
        raise translated_error(
            err, HomeAssistantError, reauth=partial(entry.async_start_reauth, hass)
        ) from err
    return all(asset.id != asset_id for asset in assets)


async def async_remove_entry(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry
) -> None:
    """Clean up what a removed entry stored."""
    await async_remove_schedules(hass, entry)
    await async_remove_measurements(hass, entry)
    await async_remove_forecasts(hass, entry)
