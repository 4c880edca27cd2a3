"""Actions of the FlexMeasures integration, registered once in async_setup."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import partial
import json
import math
from typing import Any, Final

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_DEVICE_ID, ATTR_ENTITY_ID
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.util import dt as dt_util

from .aggregation import units_compatible
from .api import FlexMeasuresError
from .compat import vol
from .const import DOMAIN, S2_CONTROL_TYPES, SUBENTRY_SITE
from .controlled_device import (
    async_get_controlled_device_entry,
    async_get_loaded_entry_of,
)
from .data import FlexMeasuresConfigEntry, translated_error
from .identity import site_subentry_id
from .s2 import async_set_control_type
from .scheduling import DeviceScheduler, Schedule, SiteScheduler, schedule_response
from .util import as_utc


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions."""
    _async_setup_scheduling_services(hass)
    _async_setup_s2_services(hass)


# --- Scheduling: trigger_schedule and get_schedule ---------------------------

SERVICE_TRIGGER_SCHEDULE: Final = "trigger_schedule"
SERVICE_GET_SCHEDULE: Final = "get_schedule"

ATTR_START: Final = "start"
ATTR_DURATION: Final = "duration"
ATTR_SOC_AT_START: Final = "soc_at_start"
ATTR_SOC_TARGETS: Final = "soc_targets"
ATTR_SOC_MIN: Final = "soc_min"
ATTR_SOC_MAX: Final = "soc_max"
ATTR_CHARGE_POWER: Final = "charge_power"
ATTR_DISCHARGE_POWER: Final = "discharge_power"
ATTR_FLEX_MODEL: Final = "flex_model"
ATTR_FLEX_CONTEXT: Final = "flex_context"
ATTR_FORCE: Final = "force"
ATTR_DATETIME: Final = "datetime"
ATTR_VALUE: Final = "value"
ATTR_DEVICES: Final = "devices"
# What only one device has: a site takes these per device (ATTR_DEVICES), or not.
SINGLE_DEVICE_FIELDS: Final = (
    ATTR_SOC_AT_START,
    ATTR_SOC_TARGETS,
    ATTR_SOC_MIN,
    ATTR_SOC_MAX,
    ATTR_CHARGE_POWER,
    ATTR_DISCHARGE_POWER,
    ATTR_FLEX_MODEL,
    ATTR_FLEX_CONTEXT,
)


def _in_range[T](validator: Callable[[Any], T]) -> Callable[[Any], T]:
    """Make a value too large for ``validator`` invalid input instead of a crash.

    Before probatio (2026.10), voluptuous let the OverflowError of ``float(10**400)``
    or ``timedelta(days=10**10)`` escape from the schema.
    """

    def validate(value: Any) -> T:
        try:
            return validator(value)
        except OverflowError as err:
            raise vol.Invalid("value out of range") from err

    return validate


def _finite(value: float) -> float:
    """Refuse inf and NaN: JSON cannot carry them to FlexMeasures."""
    if not math.isfinite(value):
        raise vol.Invalid("expected a finite number")
    return value


def _json_object(value: Any) -> dict[str, Any]:
    """Accept a dict that JSON can carry: no inf, NaN or other objects inside."""
    if not isinstance(value, dict):
        raise vol.Invalid("expected an object")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise vol.Invalid("expected JSON: finite numbers, text, lists") from err
    return value


_NUMBER = vol.All(_in_range(vol.Coerce(float)), _finite)
_NON_NEGATIVE = vol.All(_NUMBER, vol.Range(min=0))

SOC_TARGET_SCHEMA: Final = vol.Schema(
    {
        vol.Required(ATTR_DATETIME): cv.datetime,
        vol.Required(ATTR_VALUE): _NON_NEGATIVE,
    }
)

# A site's device and what only it knows (a site plans all its devices).
SITE_DEVICE_SCHEMA: Final = vol.Schema(
    {
        vol.Required(ATTR_DEVICE_ID): cv.string,
        vol.Optional(ATTR_SOC_AT_START): _NON_NEGATIVE,
        vol.Optional(ATTR_SOC_TARGETS): vol.All(cv.ensure_list, [SOC_TARGET_SCHEMA]),
    }
)

TRIGGER_SCHEDULE_SCHEMA: Final = vol.Schema(
    {
        vol.Required(ATTR_DEVICE_ID): cv.string,
        vol.Optional(ATTR_DEVICES): vol.All(cv.ensure_list, [SITE_DEVICE_SCHEMA]),
        vol.Optional(ATTR_START): cv.datetime,
        vol.Optional(ATTR_DURATION): _in_range(cv.positive_time_period),
        vol.Optional(ATTR_SOC_AT_START): _NON_NEGATIVE,
        vol.Optional(ATTR_SOC_TARGETS): vol.All(cv.ensure_list, [SOC_TARGET_SCHEMA]),
        vol.Optional(ATTR_SOC_MIN): _NON_NEGATIVE,
        vol.Optional(ATTR_SOC_MAX): _NON_NEGATIVE,
        vol.Optional(ATTR_CHARGE_POWER): _NON_NEGATIVE,
        vol.Optional(ATTR_DISCHARGE_POWER): _NON_NEGATIVE,
        vol.Optional(ATTR_FLEX_MODEL): _json_object,
        vol.Optional(ATTR_FLEX_CONTEXT): _json_object,
        vol.Optional(ATTR_FORCE, default=False): cv.boolean,
    }
)

GET_SCHEDULE_SCHEMA: Final = vol.Schema({vol.Required(ATTR_DEVICE_ID): cv.string})


def _get_scheduler(hass: HomeAssistant, device_id: str) -> DeviceScheduler:
    """Return the scheduler of a controlled device; raise a translated error."""
    entry, subentry_id = async_get_controlled_device_entry(hass, device_id)
    return entry.runtime_data.schedulers[subentry_id]


def _get_planner(
    hass: HomeAssistant, device_id: str
) -> DeviceScheduler | SiteScheduler:
    """Return the scheduler of a site's device or a controlled device."""
    device = dr.async_get(hass).async_get(device_id)
    site_id = site_subentry_id(device) if device is not None else None
    entry = async_get_loaded_entry_of(hass, site_id, SUBENTRY_SITE)
    # An entry holds the site only if there is a site id.
    site = entry.runtime_data.sites.get(site_id or "") if entry is not None else None
    return site if site is not None else _get_scheduler(hass, device_id)


async def _async_trigger_schedule(call: ServiceCall) -> ServiceResponse:
    """Plan a controlled device or a site; with a response, return the plan."""
    planner = _get_planner(call.hass, call.data[ATTR_DEVICE_ID])
    if isinstance(planner, SiteScheduler):
        return await _async_trigger_site_schedule(call, planner)
    if ATTR_DEVICES in call.data:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="devices_only_for_site",
            translation_placeholders={"device": planner.name},
        )
    scheduler = planner
    request = scheduler.build_request(
        start=call.data.get(ATTR_START),
        duration=call.data.get(ATTR_DURATION),
        soc_at_start=call.data.get(ATTR_SOC_AT_START),
        soc_targets=[
            (target[ATTR_DATETIME], target[ATTR_VALUE])
            for target in call.data.get(ATTR_SOC_TARGETS, ())
        ],
        soc_min=call.data.get(ATTR_SOC_MIN),
        soc_max=call.data.get(ATTR_SOC_MAX),
        charge_power=call.data.get(ATTR_CHARGE_POWER),
        discharge_power=call.data.get(ATTR_DISCHARGE_POWER),
        flex_model=call.data.get(ATTR_FLEX_MODEL),
        flex_context=call.data.get(ATTR_FLEX_CONTEXT),
        force=call.data[ATTR_FORCE],
    )
    schedule = await scheduler.async_schedule(request, wait=call.return_response)
    if schedule is None:
        return None
    return _response(scheduler, schedule_response(schedule, scheduler.config))


async def _async_trigger_site_schedule(
    call: ServiceCall, site: SiteScheduler
) -> ServiceResponse:
    """Plan all devices of a site in one job, with each device's own values."""
    refused = [key for key in SINGLE_DEVICE_FIELDS if key in call.data]
    if refused:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="site_field_not_allowed",
            translation_placeholders={"fields": ", ".join(refused), "site": site.name},
        )
    members = {device.subentry_id for device in site.devices}
    values: dict[str, dict[str, Any]] = {}
    for item in call.data.get(ATTR_DEVICES, ()):
        scheduler = _get_scheduler(call.hass, item[ATTR_DEVICE_ID])
        if scheduler.subentry_id not in members:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="device_not_in_site",
                translation_placeholders={"device": scheduler.name, "site": site.name},
            )
        device_values = values.setdefault(scheduler.subentry_id, {})
        if ATTR_SOC_AT_START in item:
            device_values["soc_at_start"] = item[ATTR_SOC_AT_START]
        if ATTR_SOC_TARGETS in item:
            device_values["soc_targets"] = [
                (target[ATTR_DATETIME], target[ATTR_VALUE])
                for target in item[ATTR_SOC_TARGETS]
            ]
    requests = site.build_requests(
        start=call.data.get(ATTR_START),
        duration=call.data.get(ATTR_DURATION),
        values=values,
        force=call.data[ATTR_FORCE],
    )
    plans = await site.async_schedule(requests, wait=call.return_response)
    if plans is None:
        return None
    return _site_response(site, plans)


def _site_response(
    site: SiteScheduler, plans: Mapping[str, Schedule | None]
) -> ServiceResponse:
    """Return the site's status and each device's plan, keyed by device id."""
    devices: dict[str, Any] = {}
    for scheduler in site.devices:
        schedule = plans.get(scheduler.subentry_id)
        body = schedule_response(schedule, scheduler.config) if schedule else {}
        # Keyed as actions name devices; a device not registered by its subentry.
        devices[scheduler.device_id or scheduler.subentry_id] = _response(
            scheduler, body
        )
    return {
        "status": site.status.value,
        "failure_reason": site.failure_reason.value if site.failure_reason else None,
        "devices": devices,
    }


async def _async_get_schedule(call: ServiceCall) -> ServiceResponse:
    """Return the current schedule and status of a device, or of a site's devices."""
    planner = _get_planner(call.hass, call.data[ATTR_DEVICE_ID])
    if isinstance(planner, SiteScheduler):
        return _site_response(
            planner,
            {device.subentry_id: device.schedule for device in planner.devices},
        )
    scheduler = planner
    schedule = scheduler.schedule
    body: dict[str, Any] = (
        schedule_response(schedule, scheduler.config) if schedule else {}
    )
    return _response(scheduler, body)


def _response(scheduler: DeviceScheduler, body: dict[str, Any]) -> ServiceResponse:
    """Add the device's status to a schedule response."""
    return {
        "status": scheduler.status.value,
        "failure_reason": scheduler.failure_reason.value
        if scheduler.failure_reason
        else None,
        **body,
    }


@callback
def _async_setup_scheduling_services(hass: HomeAssistant) -> None:
    """Register trigger_schedule and get_schedule."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_TRIGGER_SCHEDULE,
        _async_trigger_schedule,
        schema=TRIGGER_SCHEDULE_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_GET_SCHEDULE,
        _async_get_schedule,
        schema=GET_SCHEDULE_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )


# --- S2: s2_set_control_type ----------------------------------------------------

SERVICE_S2_SET_CONTROL_TYPE: Final = "s2_set_control_type"
ATTR_CONTROL_TYPE: Final = "control_type"

S2_SET_CONTROL_TYPE_SCHEMA: Final = vol.Schema(
    {
        vol.Required(ATTR_DEVICE_ID): cv.string,
        vol.Required(ATTR_CONTROL_TYPE): vol.In(S2_CONTROL_TYPES),
    }
)


async def _async_s2_set_control_type(call: ServiceCall) -> None:
    """Ask a device's resource manager to switch to another control type."""
    await async_set_control_type(
        call.hass, call.data[ATTR_DEVICE_ID], call.data[ATTR_CONTROL_TYPE]
    )


@callback
def _async_setup_s2_services(hass: HomeAssistant) -> None:
    """Register s2_set_control_type."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_S2_SET_CONTROL_TYPE,
        _async_s2_set_control_type,
        schema=S2_SET_CONTROL_TYPE_SCHEMA,
    )


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
            translation_placeholders={"entry": entry.title},
        )
    return entry


# Measurements: upload_history and post_measurements.

SERVICE_UPLOAD_HISTORY: Final = "upload_history"
SERVICE_POST_MEASUREMENTS: Final = "post_measurements"
ATTR_END: Final = "end"
ATTR_SENSOR_ID: Final = "sensor_id"
ATTR_RESOLUTION: Final = "resolution"
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
        vol.Required(ATTR_SENSOR_ID): _in_range(cv.positive_int),
        vol.Required(ATTR_START): cv.datetime,
        vol.Optional(ATTR_RESOLUTION): _in_range(cv.time_period),
        vol.Optional(ATTR_DURATION): _in_range(cv.time_period),
        vol.Required(ATTR_VALUES): vol.All(
            cv.ensure_list, vol.Length(min=1), [_NUMBER]
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
    start = as_utc(call.data[ATTR_START])
    end = min(as_utc(call.data.get(ATTR_END, now)), now)
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
            start=as_utc(call.data[ATTR_START]),
            resolution=resolution,
            values=values,
            unit=unit,
        )
    except FlexMeasuresError as err:
        raise translated_error(
            err,
            HomeAssistantError,
            reauth=partial(entry.async_start_reauth, call.hass),
            rejected_key="post_rejected",
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
