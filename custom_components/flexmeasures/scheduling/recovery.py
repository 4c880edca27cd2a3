"""Restart recovery: take up a job queued before a restart, or plan it anew."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Final

from homeassistant.core import CoreState, HomeAssistant, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers.start import async_at_started
from homeassistant.util import dt as dt_util

from ..const import DOMAIN, LOGGER
from .jobs import ScheduleFailedError
from .model import (
    DeviceConfig,
    FailureReason,
    PendingJob,
    ScheduleRecovery,
    ScheduleRequest,
    SitePendingJob,
    slot_start,
)
from .request import build_request

# A job still in flight at a restart is picked up if it was queued less than this
# long ago; an older one was planned from a state of charge too old to trust, so
# it is replaced by a fresh job (as is a job the server lost or could not finish).
PENDING_JOB_MAX_AGE: Final = timedelta(hours=1)


async def async_recover[R, T](
    hass: HomeAssistant,
    name: str,
    pending: PendingJob | SitePendingJob,
    *,
    mark: Callable[[ScheduleRecovery], None],
    follow: Callable[[str], Awaitable[T]],
    requests: Callable[[datetime], R],
    replan: Callable[[R], Awaitable[T]],
) -> T:
    """Follow a job queued before a restart, or plan its requests anew from now.

    A device's job and a site's alike (``name`` says whose, for the log).
    ``mark`` records how the plan is recovered, ``follow`` waits for the stored
    job, ``requests`` makes the stored requests anew from a moment (raising
    ServiceValidationError without a SoC) and ``replan`` computes fresh plans.
    """
    why = stale_reason(pending.triggered_at, pending.end)
    if why is None:
        mark(ScheduleRecovery.RESUMED)
        LOGGER.info(
            "Picking up scheduling job %s of %s after a restart",
            pending.job_id,
            name,
        )
        try:
            return await follow(pending.job_id)
        except ScheduleFailedError as err:
            if err.reason is not FailureReason.JOB_FAILED:
                raise
            why = (err.translation_placeholders or {}).get("error", "")
    mark(ScheduleRecovery.RECOMPUTED)
    LOGGER.info(
        "Computing the plan of %s anew: job %s from before the restart is "
        "of no use (%s)",
        name,
        pending.job_id,
        why,
    )
    # The states of charge to plan from may only be known once HA has started.
    await async_until_started(hass)
    try:
        fresh = requests(dt_util.utcnow())
    except ServiceValidationError as err:
        raise replan_failure(err) from err
    return await replan(fresh)


def stale_reason(triggered_at: datetime, end: datetime) -> str | None:
    """Return why a job in flight at a restart is of no use, None if it is.

    A device's and a site's job alike: too old to trust its state of charge,
    or its plan already over.
    """
    now = dt_util.utcnow()
    if now - triggered_at > PENDING_JOB_MAX_AGE:
        return f"it was queued at {triggered_at.isoformat()}"
    if now >= end:
        return f"its plan ended at {end.isoformat()}"
    return None


def replan_failure(err: ServiceValidationError) -> ScheduleFailedError:
    """Return the round failure of a request that cannot be made anew (no SoC)."""
    placeholders = err.translation_placeholders or {}
    return ScheduleFailedError(
        FailureReason.SOC_UNAVAILABLE,
        translation_domain=DOMAIN,
        translation_key=err.translation_key,
        translation_placeholders={
            **placeholders,
            "error": ", ".join(placeholders.values()),
        },
    )


def replan_request(
    hass: HomeAssistant, config: DeviceConfig, stored: ScheduleRequest, now: datetime
) -> ScheduleRequest:
    """Return a stored request again, from the current slot and the SoC now."""
    start = max(stored.start, slot_start(now, config.resolution))
    end = start + stored.duration
    return build_request(
        hass,
        config,
        start=start,
        duration=stored.duration,
        soc_targets=[
            (target.at, config.from_kwh(target.kwh))
            for target in stored.targets
            if max(start, now) < target.at <= end
        ],
        soc_min=config.from_kwh(stored.soc_min_kwh),
        soc_max=config.from_kwh(stored.soc_max_kwh),
        charge_power=stored.charge_power_kw,
        discharge_power=stored.discharge_power_kw,
        flex_model=stored.flex_model,
        flex_context=stored.flex_context,
        force=stored.force,
    )


async def async_until_started(hass: HomeAssistant) -> None:
    """Return once Home Assistant has started (at once if it has)."""
    if hass.state is CoreState.running:
        return
    started: asyncio.Future[None] = hass.loop.create_future()

    @callback
    def _started(_hass: HomeAssistant) -> None:
        if not started.done():
            started.set_result(None)

    unsub = async_at_started(hass, _started)
    try:
        await started
    finally:
        unsub()
