"""Schedule requests: what was asked, validated, and what FlexMeasures is sent.

The flex-model and flex-context of a request, from the device's settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.util import dt as dt_util

from ..const import DOMAIN
from ..util import as_utc
from .model import (
    ENERGY_TO_KWH,
    MAX_DURATION,
    DeviceConfig,
    ScheduleRequest,
    SocTarget,
    SocUnit,
    quantity,
    slot_start,
)


def build_flex_model(request: ScheduleRequest) -> dict[str, Any]:
    """Return the storage flex-model for a request, raw overrides applied last."""
    model: dict[str, Any] = {
        "soc-at-start": quantity(request.soc_at_start_kwh, "kWh"),
        "soc-min": quantity(request.soc_min_kwh, "kWh"),
        "soc-max": quantity(request.soc_max_kwh, "kWh"),
        "power-capacity": quantity(
            max(request.charge_power_kw, request.discharge_power_kw), "kW"
        ),
        "consumption-capacity": quantity(request.charge_power_kw, "kW"),
        "production-capacity": quantity(request.discharge_power_kw, "kW"),
    }
    if request.targets:
        model["soc-targets"] = [
            {"datetime": target.at.isoformat(), "value": quantity(target.kwh, "kWh")}
            for target in request.targets
        ]
    if request.roundtrip_efficiency is not None:
        model["roundtrip-efficiency"] = quantity(
            request.roundtrip_efficiency * 100, "%"
        ).replace(" ", "")
    model.update(request.flex_model)
    return model


def build_flex_context(
    config: DeviceConfig, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Return the flex-context: the chosen price sensors, raw overrides last."""
    context: dict[str, Any] = {}
    if config.consumption_price_sensor is not None:
        context["consumption-price"] = {"sensor": config.consumption_price_sensor}
    if config.production_price_sensor is not None:
        context["production-price"] = {"sensor": config.production_price_sensor}
    context.update(overrides or {})
    return context


def read_soc_kwh(hass: HomeAssistant, config: DeviceConfig) -> float:
    """Read the device's SoC entity now and return kWh; raise if unusable."""
    state = hass.states.get(config.soc_entity_id)
    if state is None or state.state in (STATE_UNAVAILABLE, STATE_UNKNOWN):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="soc_entity_unavailable",
            translation_placeholders={"entity_id": config.soc_entity_id},
        )
    try:
        value = float(state.state)
    except ValueError as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="soc_entity_not_numeric",
            translation_placeholders={
                "entity_id": config.soc_entity_id,
                "state": state.state,
            },
        ) from err
    if config.soc_unit is SocUnit.KWH:
        factor = ENERGY_TO_KWH.get(state.attributes.get("unit_of_measurement"), 1.0)
        return value * factor
    return config.to_kwh(value)


def _fmt(config: DeviceConfig, value: float) -> str:
    """Format a SoC in the device's unit for an error message."""
    return quantity(value, config.soc_unit.symbol)


def build_request(
    hass: HomeAssistant,
    config: DeviceConfig,
    *,
    start: datetime | None = None,
    duration: timedelta | None = None,
    soc_at_start: float | None = None,
    soc_targets: Sequence[tuple[datetime, float]] = (),
    soc_min: float | None = None,
    soc_max: float | None = None,
    charge_power: float | None = None,
    discharge_power: float | None = None,
    flex_model: Mapping[str, Any] | None = None,
    flex_context: Mapping[str, Any] | None = None,
    force: bool = False,
) -> ScheduleRequest:
    """Validate what a user asked for and return a request in kWh and kW.

    SoC values are in the device's unit (% or kWh). Every problem is a
    translated ServiceValidationError.
    """
    # Plans start at a slot boundary: the start of the slot that holds the asked
    # moment, by default the current one, so the plan has a value for now at once.
    current = slot_start(dt_util.utcnow(), config.resolution)
    start = current if start is None else slot_start(as_utc(start), config.resolution)
    if start < current:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="start_in_past",
            translation_placeholders={
                "start": dt_util.as_local(start).isoformat(),
                "earliest": dt_util.as_local(current).isoformat(),
            },
        )
    duration = duration if duration is not None else config.horizon
    if duration < config.resolution or duration > MAX_DURATION:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="invalid_duration",
            translation_placeholders={
                "duration": str(duration),
                "minimum": str(config.resolution),
                "maximum": str(MAX_DURATION),
            },
        )
    low = config.soc_min if soc_min is None else soc_min
    high = config.soc_max if soc_max is None else soc_max
    if low > high:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="soc_min_above_max",
            translation_placeholders={
                "soc_min": _fmt(config, low),
                "soc_max": _fmt(config, high),
            },
        )
    ceiling = config.soc_ceiling
    if ceiling is not None and high > ceiling:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="soc_max_above_capacity",
            translation_placeholders={
                "soc_max": _fmt(config, high),
                "capacity": _fmt(config, ceiling),
            },
        )
    if soc_at_start is None:
        start_kwh = read_soc_kwh(hass, config)
    else:
        start_kwh = config.to_kwh(soc_at_start)
    start_value = config.from_kwh(start_kwh)
    if start_value < 0 or (ceiling is not None and start_value > ceiling + 1e-6):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="soc_at_start_out_of_range",
            translation_placeholders={
                "soc": _fmt(config, start_value),
                "capacity": _fmt(config, ceiling or 0),
            },
        )
    end = start + duration
    targets: list[SocTarget] = []
    for moment, value in soc_targets:
        at = as_utc(moment)
        if not start < at <= end:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="target_outside_horizon",
                translation_placeholders={
                    "datetime": dt_util.as_local(at).isoformat(),
                    "start": dt_util.as_local(start).isoformat(),
                    "end": dt_util.as_local(end).isoformat(),
                },
            )
        if not low - 1e-6 <= value <= high + 1e-6:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="target_outside_bounds",
                translation_placeholders={
                    "value": _fmt(config, value),
                    "soc_min": _fmt(config, low),
                    "soc_max": _fmt(config, high),
                },
            )
        targets.append(SocTarget(at=at, kwh=config.to_kwh(value)))
    return ScheduleRequest(
        start=start,
        duration=duration,
        soc_at_start_kwh=start_kwh,
        soc_min_kwh=config.to_kwh(low),
        soc_max_kwh=config.to_kwh(high),
        targets=tuple(sorted(targets, key=lambda target: target.at)),
        charge_power_kw=config.charge_power_kw
        if charge_power is None
        else charge_power,
        discharge_power_kw=config.discharge_power_kw
        if discharge_power is None
        else discharge_power,
        roundtrip_efficiency=config.roundtrip_efficiency,
        flex_model=dict(flex_model or {}),
        flex_context=build_flex_context(config, flex_context),
        force=force,
    )
