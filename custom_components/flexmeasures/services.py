"""Actions of the FlexMeasures integration."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
import homeassistant.helpers.config_validation as cv
from homeassistant.util import dt as dt_util

from .aggregation import units_compatible
from .api import FlexMeasuresError, FlexMeasuresRejectedError
from .compat import vol
from .const import DOMAIN
from .data import FlexMeasuresConfigEntry

ATTR_CONFIG_ENTRY: Final = "config_entry"


def _get_loaded_entry(hass: HomeAssistant, entry_id: str) -> FlexMeasuresConfigEntry:
    """Return the loaded FlexMeasures entry an action names."""
    entry: FlexMeasuresConfigEntry | None = hass.config_entries.async_get_entry(
        entry_id
    )
    if entry is None or entry.domain != DOMAIN:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_found",
            translation_placeholders={"entry_id": entry_id},
        )
    if entry.state is not ConfigEntryState.LOADED:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_loaded",
            translation_placeholders={"title": entry.title},
        )
    return entry


def _aware(value: datetime) -> datetime:
    """Return a time with an offset; a time without one is local time."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt_util.get_default_time_zone())
    return dt_util.as_utc(value)


# Measurements: upload_history and post_measurements.

SERVICE_UPLOAD_HISTORY: Final = "upload_history"
SERVICE_POST_MEASUREMENTS: Final = "post_measurements"
ATTR_START: Final = "start"
ATTR_END: Final = "end"
ATTR_SENSOR_ID: Final = "sensor_id"
ATTR_RESOLUTION: Final = "resolution"
ATTR_DURATION: Final = "duration"
ATTR_VALUES: Final = "values"
ATTR_UNIT: Final = "unit"
MAX_HISTORY: Final = timedelta(days=90)

UPLOAD_HISTORY_SCHEMA: Final = vol.Schema(
    {
        vol.Required(ATTR_CONFIG_ENTRY): cv.string,
        vol.Required(ATTR_ENTITY_ID): cv.entity_id,
        vol.Required(ATTR_START): cv.datetime,
        vol.Optional(ATTR_END): cv.datetime,
    }
)

POST_MEASUREMENTS_SCHEMA: Final = vol.Schema(
    {
        vol.Required(ATTR_CONFIG_ENTRY): cv.string,
        vol.Required(ATTR_SENSOR_ID): cv.positive_int,
        vol.Required(ATTR_START): cv.datetime,
        vol.Optional(ATTR_RESOLUTION): cv.time_period,
        vol.Optional(ATTR_DURATION): cv.time_period,
        vol.Required(ATTR_VALUES): vol.All(
            cv.ensure_list, vol.Length(min=1), [vol.Coerce(float)]
        ),
        vol.Optional(ATTR_UNIT): cv.string,
    }
)


@callback
def async_setup_measurement_services(hass: HomeAssistant) -> None:
    """Register the measurement actions."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_UPLOAD_HISTORY,
        _async_upload_history,
        schema=UPLOAD_HISTORY_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_POST_MEASUREMENTS,
        _async_post_measurements,
        schema=POST_MEASUREMENTS_SCHEMA,
    )


async def _async_upload_history(call: ServiceCall) -> ServiceResponse:
    """Queue the recorder's history of a linked entity for its FlexMeasures sensors."""
    hass = call.hass
    entry = _get_loaded_entry(hass, call.data[ATTR_CONFIG_ENTRY])
    entity_id: str = call.data[ATTR_ENTITY_ID]
    uploader = entry.runtime_data.uploader
    links = [
        subentry_id
        for subentry_id, link in uploader.links.items()
        if link.config.entity_id == entity_id
    ]
    if not links:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="link_not_found",
            translation_placeholders={"entity_id": entity_id},
        )
    now = dt_util.utcnow()
    start = _aware(call.data[ATTR_START])
    end = min(_aware(call.data.get(ATTR_END, now)), now)
    if not start < end:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="invalid_period"
        )
    if end - start > MAX_HISTORY:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="period_too_long",
            translation_placeholders={"days": str(MAX_HISTORY.days)},
        )
    if "recorder" not in hass.config.components:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="recorder_not_available"
        )
    queued: dict[str, Any] = {
        str(uploader.links[subentry_id].config.sensor_id): (
            await uploader.async_upload_history(subentry_id, start, end)
        )
        for subentry_id in links
    }
    return {"queued": queued, "pending": uploader.pending_count}


async def _async_post_measurements(call: ServiceCall) -> None:
    """Post values to a FlexMeasures sensor as given."""
    entry = _get_loaded_entry(call.hass, call.data[ATTR_CONFIG_ENTRY])
    sensor_id: int = call.data[ATTR_SENSOR_ID]
    sensor = entry.runtime_data.inventory.data.sensors.get(sensor_id)
    if sensor is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="unknown_sensor",
            translation_placeholders={"sensor_id": str(sensor_id)},
        )
    values: list[float] = call.data[ATTR_VALUES]
    resolution = _resolution(call.data, len(values))
    unit: str = call.data.get(ATTR_UNIT, sensor.unit)
    if not units_compatible(unit, sensor.unit):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="incompatible_unit",
            translation_placeholders={"unit": unit, "sensor_unit": sensor.unit},
        )
    try:
        await entry.runtime_data.api.async_post_sensor_data(
            sensor_id,
            start=_aware(call.data[ATTR_START]),
            resolution=resolution,
            values=values,
            unit=unit,
        )
    except FlexMeasuresRejectedError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="post_rejected",
            translation_placeholders={"error": str(err)},
        ) from err
    except FlexMeasuresError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="communication_error",
            translation_placeholders={"error": str(err)},
        ) from err


def _resolution(data: dict[str, Any], count: int) -> timedelta:
    """Return the time between values from a resolution or a total duration."""
    resolution: timedelta | None = data.get(ATTR_RESOLUTION)
    duration: timedelta | None = data.get(ATTR_DURATION)
    if duration is not None and resolution is None:
        resolution = duration / count
    elif resolution is None or duration is not None:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="resolution_or_duration"
        )
    if resolution < timedelta(0) or (resolution == timedelta(0) and count > 1):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="invalid_resolution",
            translation_placeholders={"count": str(count)},
        )
    return resolution
