"""The repair issue about state-of-charge targets a device's plan misses."""

from __future__ import annotations

from typing import Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util

from ..const import DOMAIN
from .model import DeviceConfig, Schedule, quantity

# A state-of-charge target the plan misses: a repair issue per device.
ISSUE_UNMET_TARGETS: Final = "unmet_targets"


def unmet_targets_issue_id(subentry_id: str) -> str:
    """Return the id of a controlled device's repair issue about missed targets."""
    return f"{ISSUE_UNMET_TARGETS}_{subentry_id}"


@callback
def async_delete_unmet_targets_issue(hass: HomeAssistant, subentry_id: str) -> None:
    """Delete a controlled device's repair issue about missed targets."""
    ir.async_delete_issue(hass, DOMAIN, unmet_targets_issue_id(subentry_id))


@callback
def async_report_unmet_targets(
    hass: HomeAssistant, subentry_id: str, config: DeviceConfig, schedule: Schedule
) -> None:
    """Raise, update or clear the repair issue about targets the plan misses.

    An ended plan's targets are history. A fallback plan says nothing about
    the targets (FlexMeasures' fallback may drop them): the issue stays as it
    is until a plan of the device's own scheduler arrives.
    """
    if dt_util.utcnow() >= schedule.end:
        async_delete_unmet_targets_issue(hass, subentry_id)
        return
    if schedule.fallback_reason is not None:
        return
    # The targets the request named; the others only a raw override knows.
    missed = [
        (target.at, target.target_kwh, target.deviation_kwh)
        for target in schedule.unmet_targets
        if target.target_kwh is not None
    ]
    if not missed:
        async_delete_unmet_targets_issue(hass, subentry_id)
        return
    at, target_kwh, deviation_kwh = missed[0]
    unit = config.soc_unit.symbol
    ir.async_create_issue(
        hass,
        DOMAIN,
        unmet_targets_issue_id(subentry_id),
        is_fixable=False,
        is_persistent=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key=ISSUE_UNMET_TARGETS,
        translation_placeholders={
            "name": config.name,
            "datetime": dt_util.as_local(at).strftime("%Y-%m-%d %H:%M"),
            "target": quantity(config.from_kwh(target_kwh), unit),
            "shortfall": quantity(round(config.from_kwh(deviation_kwh), 2), unit),
            "count": str(len(missed)),
        },
    )
