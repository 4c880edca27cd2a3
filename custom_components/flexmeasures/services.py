"""Actions of the FlexMeasures integration, registered once in async_setup."""

from __future__ import annotations

from typing import Any, Final

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_DEVICE_ID
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr

from .compat import vol
from .const import DOMAIN
from .data import FlexMeasuresConfigEntry
from .scheduling import CONTROLLED_DEVICE_PREFIX, DeviceScheduler, schedule_response


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's actions."""
    _async_setup_scheduling_services(hass)


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

_NON_NEGATIVE = vol.All(vol.Coerce(float), vol.Range(min=0))

SOC_TARGET_SCHEMA: Final = vol.Schema(
    {
        vol.Required(ATTR_DATETIME): cv.datetime,
        vol.Required(ATTR_VALUE): _NON_NEGATIVE,
    }
)

TRIGGER_SCHEDULE_SCHEMA: Final = vol.Schema(
    {
        vol.Required(ATTR_DEVICE_ID): cv.string,
        vol.Optional(ATTR_START): cv.datetime,
        vol.Optional(ATTR_DURATION): cv.positive_time_period,
        vol.Optional(ATTR_SOC_AT_START): _NON_NEGATIVE,
        vol.Optional(ATTR_SOC_TARGETS): vol.All(cv.ensure_list, [SOC_TARGET_SCHEMA]),
        vol.Optional(ATTR_SOC_MIN): _NON_NEGATIVE,
        vol.Optional(ATTR_SOC_MAX): _NON_NEGATIVE,
        vol.Optional(ATTR_CHARGE_POWER): _NON_NEGATIVE,
        vol.Optional(ATTR_DISCHARGE_POWER): _NON_NEGATIVE,
        vol.Optional(ATTR_FLEX_MODEL): dict,
        vol.Optional(ATTR_FLEX_CONTEXT): dict,
        vol.Optional(ATTR_FORCE, default=False): cv.boolean,
    }
)

GET_SCHEDULE_SCHEMA: Final = vol.Schema({vol.Required(ATTR_DEVICE_ID): cv.string})


def _get_scheduler(hass: HomeAssistant, device_id: str) -> DeviceScheduler:
    """Return the scheduler of a controlled device; raise a translated error."""
    device = dr.async_get(hass).async_get(device_id)
    if device is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="device_not_found",
            translation_placeholders={"device_id": device_id},
        )
    subentry_ids = {
        value.removeprefix(CONTROLLED_DEVICE_PREFIX)
        for domain, value in device.identifiers
        if domain == DOMAIN and value.startswith(CONTROLLED_DEVICE_PREFIX)
    }
    entries: list[FlexMeasuresConfigEntry] = hass.config_entries.async_entries(DOMAIN)
    for entry in entries:
        if not subentry_ids & entry.subentries.keys():
            continue
        if entry.state is not ConfigEntryState.LOADED:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="entry_not_loaded",
                translation_placeholders={"entry": entry.title},
            )
        schedulers = entry.runtime_data.schedulers
        if found := subentry_ids & schedulers.keys():
            return schedulers[found.pop()]
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="not_a_controlled_device",
        translation_placeholders={"device": device.name_by_user or device.name or ""},
    )


async def _async_trigger_schedule(call: ServiceCall) -> ServiceResponse:
    """Plan a controlled device; with a response, wait for and return the plan."""
    scheduler = _get_scheduler(call.hass, call.data[ATTR_DEVICE_ID])
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


async def _async_get_schedule(call: ServiceCall) -> ServiceResponse:
    """Return the device's current schedule and its status."""
    scheduler = _get_scheduler(call.hass, call.data[ATTR_DEVICE_ID])
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
