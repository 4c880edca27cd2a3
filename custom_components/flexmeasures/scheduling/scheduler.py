"""The device scheduler: the one planner and plan coordinator of a device.

It queues rounds (never more than one job in flight), takes up a job in flight
after a restart, replans automatically, fetches the card's prices and fires
``flexmeasures_schedule_updated``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from http import HTTPStatus
import logging
import math
import time
from typing import Any, Final

from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import (
    CALLBACK_TYPE,
    CoreState,
    Event,
    EventStateChangedData,
    HomeAssistant,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.debounce import Debouncer
from homeassistant.helpers.event import (
    async_call_later,
    async_track_point_in_utc_time,
    async_track_state_change_event,
    async_track_time_interval,
)
from homeassistant.helpers.start import async_at_started
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from ..api import (
    FlexMeasuresApi,
    FlexMeasuresError,
    FlexMeasuresHttpStatusError,
    FlexMeasuresRejectedError,
    TimeSeries,
)
from ..availability import ServerAvailability
from ..const import (
    CONF_POWER_SENSOR,
    CONF_USE_FALLBACK_PLANS,
    DEFAULT_USE_FALLBACK_PLANS,
    DOMAIN,
    EVENT_SCHEDULE_UPDATED,
    LOGGER,
    SUBENTRY_CONTROLLED_DEVICE,
)
from ..data import ErrorKind, FlexMeasuresConfigEntry, error_kind, translated_error
from ..identity import controlled_device_identifier
from .jobs import (
    JOB_FAILED,
    JOB_FINISHED,
    JOB_UNSUCCESSFUL,
    ScheduleFailedError,
    job_failure,
    job_status,
    poll_delays,
)
from .model import (
    DeviceConfig,
    FailureReason,
    PendingJob,
    Schedule,
    ScheduleRecovery,
    ScheduleRequest,
    ScheduleStatus,
    schedule_from_series,
    schedule_summary,
    slot_start,
    unmet_targets,
)
from .request import _fmt, build_flex_model, build_request, read_soc_kwh
from .store import PENDING_JOB_MAX_AGE, STORE_DELAY, ScheduleStore

JOB_TIMEOUT: Final = 120.0
# How long an action with a requested response waits for the schedule.
RESPONSE_TIMEOUT: Final = 60.0


# Automatic rescheduling: triggers are merged over AUTO_DEBOUNCE and at most one
# automatic job starts per AUTO_MIN_INTERVAL.
AUTO_DEBOUNCE: Final = 10.0
AUTO_MIN_INTERVAL: Final = timedelta(minutes=2)
# A round that lost the server is taken up again once it answers: first after
# RETRY_FIRST s, doubling to RETRY_MAX s, until its plan would have ended.
RETRY_FIRST: Final = 15.0
RETRY_MAX: Final = 300.0

# Consumption prices for the dashboard card: a price sensor the inventory does
# not know is read per hour in EUR/MWh.
DEFAULT_PRICE_RESOLUTION: Final = timedelta(hours=1)
DEFAULT_PRICE_UNIT: Final = "EUR/MWh"


# A state-of-charge target the plan misses: a repair issue per device.
ISSUE_UNMET_TARGETS: Final = "unmet_targets"


# The reasons of failed rounds the server's errors give; others communication.
_FAILURE_REASONS: Final = {
    ErrorKind.AUTHENTICATION: FailureReason.AUTHENTICATION_FAILED,
    ErrorKind.REJECTED: FailureReason.REJECTED,
}


def unmet_targets_issue_id(subentry_id: str) -> str:
    """Return the id of a controlled device's repair issue about missed targets."""
    return f"{ISSUE_UNMET_TARGETS}_{subentry_id}"


def _consume(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen; waiters get it anyway."""
    if not future.cancelled():
        future.exception()


@dataclass(eq=False, kw_only=True)
class _Round:
    """One scheduling job: what was asked and who waits for it."""

    request: ScheduleRequest
    queued: asyncio.Future[str]
    done: asyncio.Future[Schedule]
    superseded: list[_Round] = field(default_factory=list)
    # A job queued before a restart, to pick up rather than trigger anew.
    resume: PendingJob | None = None
    # The moment sent with the trigger: a repeat with the same moment is the same
    # request, which the server answers with the job it already made for it.
    sent_at: datetime | None = None
    # The job the server made for this round, once known.
    job_id: str | None = None

    def all(self) -> list[_Round]:
        """Return this round and those it replaced."""
        return [self, *self.superseded]


class DeviceScheduler(DataUpdateCoordinator[Schedule | None]):
    """Plans one controlled device: never more than one job in flight.

    The one planner of the device: the action, automatic replans, restart
    recovery and S2 all ask it; its followers (schedule entities, calendar,
    card, event, S2 instructions) listen to it as to any coordinator. It polls
    nothing: ``data`` is the current plan, set when a job's plan arrives.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        entry: FlexMeasuresConfigEntry,
        subentry_id: str,
        config: DeviceConfig,
        api: FlexMeasuresApi,
    ) -> None:
        """Initialize; call async_load and async_start before use."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=config.name,
            update_interval=None,
        )
        self.entry = entry
        self.subentry_id = subentry_id
        self.config = config
        self.api = api
        self.store = ScheduleStore(hass, subentry_id)
        self.status = ScheduleStatus.IDLE
        self.failure_reason: FailureReason | None = None
        self.failure_message: str | None = None
        self.last_updated: datetime | None = None
        self.last_request: ScheduleRequest | None = None
        self.job_seconds_per_slot: float | None = None
        # The job in flight, stored so that a restart can pick it up.
        self.pending_job: PendingJob | None = None
        self.recovery: ScheduleRecovery | None = None
        self._active: _Round | None = None
        self._pending: _Round | None = None
        self._unsub_tick: CALLBACK_TYPE | None = None
        self._unsub_deferred: CALLBACK_TYPE | None = None
        self._unsubs: list[CALLBACK_TYPE] = []
        self._last_auto: datetime | None = None
        self._debouncer: Debouncer[Any] | None = None
        self._unsaved = False
        # Consumption prices over the schedule's window, by the job they belong to.
        self._prices: tuple[str, TimeSeries] | None = None
        self._availability = ServerAvailability(
            LOGGER, f"Scheduling {config.name}", api.url
        )
        # A round that lost the server, to take up again when it answers.
        self._retry: _Round | None = None
        self._retry_delay = RETRY_FIRST
        self._unsub_retry: CALLBACK_TYPE | None = None

    @property
    def device_identifier(self) -> tuple[str, str]:
        """Return the device registry identifier of this controlled device."""
        return controlled_device_identifier(self.subentry_id)

    @property
    def busy(self) -> bool:
        """Return whether a job is in flight."""
        return self._active is not None

    # --- lifecycle

    async def async_load(self) -> None:
        """Restore the last schedule from the store."""
        data = await self.store.async_load()
        if not data:
            return
        try:
            if data.get("schedule"):
                self.schedule = Schedule.from_dict(data["schedule"])
            if data.get("last_updated"):
                self.last_updated = datetime.fromisoformat(data["last_updated"])
            per_slot = data.get("job_seconds_per_slot")
            self.job_seconds_per_slot = None if per_slot is None else float(per_slot)
        except (KeyError, TypeError, ValueError):
            LOGGER.warning("Ignoring an unreadable stored schedule for %s", self.name)
            self.schedule = None
        else:
            if self.schedule is not None:
                self.status = self.schedule.status_at(dt_util.utcnow())
                # Issues of the last session are gone: raise it again.
                self._report_unmet_targets(self.schedule)
        if pending := data.get("pending_job"):
            try:
                self.pending_job = PendingJob.from_dict(pending)
            except (KeyError, TypeError, ValueError):
                LOGGER.warning("Ignoring an unreadable job in flight of %s", self.name)
            else:
                # async_start picks it up; until then the plan is being computed.
                self.status = ScheduleStatus.COMPUTING

    @callback
    def async_start(self) -> None:
        """Start the slot-boundary timer, a stored job in flight, the triggers."""
        self._schedule_tick()
        if self.pending_job is not None:
            # Its targets carry over to automatic replans, as a fresh request's do.
            self.last_request = self.pending_job.request
            round_ = self._new_round(self.pending_job.request)
            round_.resume = self.pending_job
            self._start(round_)
        auto = self.config.auto
        if not auto.enabled:
            return
        self._debouncer = Debouncer(
            self.hass,
            LOGGER,
            cooldown=AUTO_DEBOUNCE,
            immediate=False,
            function=self._async_auto_reschedule,
            background=True,
        )
        if auto.interval:
            self._unsubs.append(
                async_track_time_interval(
                    self.hass,
                    self._handle_interval,
                    auto.interval,
                    name=f"{DOMAIN} replan {self.name}",
                )
            )
        if auto.soc_drift:
            self._unsubs.append(
                async_track_state_change_event(
                    self.hass, self.config.soc_entity_id, self._handle_soc_change
                )
            )
        if auto.entities:
            self._unsubs.append(
                async_track_state_change_event(
                    self.hass, list(auto.entities), self._handle_entity_change
                )
            )

    @callback
    def async_stop(self) -> None:
        """Stop timers and triggers."""
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        for timer in (self._unsub_tick, self._unsub_deferred, self._unsub_retry):
            if timer is not None:
                timer()
        self._unsub_tick = self._unsub_deferred = self._unsub_retry = None
        if self._debouncer is not None:
            self._debouncer.async_shutdown()

    # --- prices for the dashboard card

    async def async_get_prices(self) -> TimeSeries | None:
        """Return the consumption prices over the schedule's window, or None.

        Fetched once per job. A failure is logged at debug level and answers
        None, so the card shows the plan without prices; the next call retries.
        """
        schedule = self.schedule
        sensor_id = self.config.consumption_price_sensor
        if schedule is None or sensor_id is None:
            return None
        if self._prices is not None and self._prices[0] == schedule.job_id:
            return self._prices[1]
        sensor = self.entry.runtime_data.inventory.data.sensors.get(sensor_id)
        resolution = DEFAULT_PRICE_RESOLUTION
        if sensor is not None and sensor.resolution > timedelta(0):
            resolution = sensor.resolution
        start = slot_start(schedule.start, resolution)
        slots = math.ceil((schedule.end - start) / resolution)
        try:
            prices = await self.api.async_get_sensor_data(
                sensor_id,
                start=start,
                duration=resolution * slots,
                resolution=resolution,
                unit=sensor.unit if sensor is not None else DEFAULT_PRICE_UNIT,
            )
        except FlexMeasuresError as err:
            LOGGER.debug("No prices for the schedule of %s: %s", self.name, err)
            return None
        self._prices = (schedule.job_id, prices)
        return prices

    # --- the plan its followers read, and time

    @property
    def schedule(self) -> Schedule | None:
        """Return the device's current plan (the coordinator's data)."""
        return self.data

    @schedule.setter
    def schedule(self, schedule: Schedule | None) -> None:
        self.data = schedule

    async def _async_update_data(self) -> Schedule | None:
        """Nothing to poll: plans arrive when asked for; a refresh re-reads it."""
        return self.data

    @callback
    def _schedule_tick(self) -> None:
        """Wake up at the next slot boundary (or the end) of the schedule."""
        if self._unsub_tick is not None:
            self._unsub_tick()
            self._unsub_tick = None
        if self.schedule is None:
            return
        boundary = self.schedule.next_boundary(dt_util.utcnow())
        if boundary is not None:
            self._unsub_tick = async_track_point_in_utc_time(
                self.hass, self._handle_tick, boundary
            )

    @callback
    def _handle_tick(self, _scheduled: datetime) -> None:
        """Move to the next slot: entities re-read, the plan may become stale."""
        self._unsub_tick = None
        schedule = self.schedule
        if (
            schedule is not None
            and schedule.status_at(dt_util.utcnow()) is ScheduleStatus.STALE
        ):
            if self.status in (ScheduleStatus.READY, ScheduleStatus.FALLBACK):
                self.status = ScheduleStatus.STALE
            self._report_unmet_targets(schedule)
        self._schedule_tick()
        self.async_update_listeners()

    # --- requests

    def build_request(self, **kwargs: Any) -> ScheduleRequest:
        """Validate user input into a request for this device."""
        return build_request(self.hass, self.config, **kwargs)

    async def async_plan_from_device(
        self,
        *,
        soc_kwh: float,
        soc_min_kwh: float,
        soc_max_kwh: float,
        charge_power_kw: float | None,
        discharge_power_kw: float | None,
    ) -> None:
        """Plan with what the device itself reported (an S2 resource manager).

        A normal round: the device's SoC, its limits narrowing the configured
        ones, and the targets still ahead. Raise ServiceValidationError for a
        report the device's settings cannot hold, HomeAssistantError for a
        round that could not be queued (its status says why).
        """
        config = self.config
        low = max(config.to_kwh(config.soc_min), soc_min_kwh)
        high = min(config.to_kwh(config.soc_max), soc_max_kwh)
        request = self.build_request(
            soc_at_start=config.from_kwh(soc_kwh),
            soc_targets=self._remaining_targets(),
            soc_min=config.from_kwh(min(low, high)),
            soc_max=config.from_kwh(high),
            charge_power=min(config.charge_power_kw, charge_power_kw or 0.0),
            discharge_power=min(config.discharge_power_kw, discharge_power_kw or 0.0),
        )
        await self.async_schedule(request, wait=False)

    def _new_round(self, request: ScheduleRequest) -> _Round:
        """Create a round with its two futures."""
        round_ = _Round(
            request=request,
            queued=self.hass.loop.create_future(),
            done=self.hass.loop.create_future(),
        )
        round_.queued.add_done_callback(_consume)
        round_.done.add_done_callback(_consume)
        return round_

    async def async_schedule(
        self, request: ScheduleRequest, *, wait: bool
    ) -> Schedule | None:
        """Plan with ``request``; with ``wait``, return the schedule (bounded).

        Without ``wait`` this returns once the job is queued on the server; if a
        job is already in flight, the request is queued behind it (replacing an
        earlier queued one) and this returns at once.
        """
        round_ = self._new_round(request)
        self.last_request = request
        if self._active is None:
            self._start(round_)
        else:
            if self._pending is not None:
                round_.superseded = self._pending.all()
            self._pending = round_
            if not wait:
                return None
        if not wait:
            await asyncio.shield(round_.queued)
            return None
        try:
            async with asyncio.timeout(RESPONSE_TIMEOUT):
                return await asyncio.shield(round_.done)
        except TimeoutError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="schedule_timeout",
                translation_placeholders={"seconds": str(int(RESPONSE_TIMEOUT))},
            ) from err

    @callback
    def _start(self, round_: _Round) -> None:
        """Run a round in the background."""
        self._active = round_
        if round_.resume is None:
            self.recovery = None
        self.status = ScheduleStatus.COMPUTING
        self.async_update_listeners()
        self.entry.async_create_background_task(
            self.hass, self._async_run(round_), f"{DOMAIN} schedule {self.name}"
        )

    async def _async_run(self, round_: _Round) -> None:
        """Compute one schedule, record the outcome, start what queued behind it."""
        cancelled = False
        try:
            if round_.resume is not None:
                schedule = await self._async_recover(round_, round_.resume)
            elif round_.job_id is not None:
                # Taken up after an outage: the job is the server's, follow it.
                schedule = await self._async_finish(
                    round_, round_.job_id, round_.request, resumed=True
                )
            else:
                if round_.sent_at is not None:
                    await self._async_until_answering()
                schedule = await self._async_compute(round_)
        except ScheduleFailedError as err:
            self._job_done()
            self._fail(round_, err, err.reason)
            if err.reason is FailureReason.COMMUNICATION_ERROR:
                self._retry_later(round_)
        except asyncio.CancelledError:
            # Unloaded or stopping: the job stays stored, to be picked up later.
            cancelled = True
            self._fail(
                round_,
                ScheduleFailedError(
                    FailureReason.UNLOADED,
                    translation_domain=DOMAIN,
                    translation_key="entry_not_loaded",
                    translation_placeholders={"entry": self.entry.title},
                ),
                FailureReason.UNLOADED,
                # Not worth a warning: a stored job in flight is picked up later.
                level=logging.DEBUG,
            )
            raise
        else:
            self._cancel_retry()
            for item in round_.all():
                if not item.done.done():
                    item.done.set_result(schedule)
        finally:
            self._active = None
            pending, self._pending = self._pending, None
            if pending is not None and not cancelled:
                self._start(pending)
            else:
                self.async_update_listeners()

    @callback
    def _fail(
        self,
        round_: _Round,
        err: HomeAssistantError,
        reason: FailureReason,
        level: int = logging.WARNING,
    ) -> None:
        """Record a failed round and hand the error to its waiters."""
        self.status = ScheduleStatus.FAILED
        self.failure_reason = reason
        placeholders = err.translation_placeholders or {}
        self.failure_message = placeholders.get("error") or reason.value
        if reason is FailureReason.COMMUNICATION_ERROR:
            self._availability.mark_down(
                f"keeping the current plan: {self.failure_message}"
            )
        else:
            LOGGER.log(
                level, "Scheduling %s failed: %s", self.name, self.failure_message
            )
        for item in round_.all():
            for future in (item.queued, item.done):
                if not future.done():
                    future.set_exception(err)

    @callback
    def _retry_later(self, round_: _Round) -> None:
        """Take a round that lost the server up again later, while it matters.

        The trigger may have reached the server even though no answer came back:
        the retry repeats it unchanged (the server answers with the job it made)
        or follows the job already known, so the outage leaves no orphan job.
        """
        if dt_util.utcnow() >= round_.request.end:
            self._cancel_retry()
            return
        if self._retry is not round_:
            self._retry_delay = RETRY_FIRST
        else:
            self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)
        self._retry = round_
        if self._unsub_retry is not None:
            self._unsub_retry()
        self._unsub_retry = async_call_later(
            self.hass, self._retry_delay, self._handle_retry
        )

    @callback
    def _cancel_retry(self) -> None:
        """Forget a round waiting for the server."""
        self._retry = None
        self._retry_delay = RETRY_FIRST
        if self._unsub_retry is not None:
            self._unsub_retry()
            self._unsub_retry = None

    @callback
    def _handle_retry(self, _now: datetime) -> None:
        """Take the waiting round up again, unless another one is running."""
        self._unsub_retry = None
        if (waiting := self._retry) is None:
            return
        if self._active is not None:
            self._retry_later(waiting)
            return
        round_ = self._new_round(waiting.request)
        round_.sent_at, round_.job_id = waiting.sent_at, waiting.job_id
        self._retry = round_
        self._start(round_)

    async def _async_until_answering(self) -> None:
        """Ask the server something harmless before repeating a trigger.

        While it does not answer, a repeated trigger would only wait in its
        queue beside the first, and a server running both at once may make two
        jobs of one request.
        """
        try:
            await self.api.async_get_server_version()
        except FlexMeasuresError as err:
            raise self._map_error(err) from err

    def _expected_job_seconds(self, slots: int) -> float | None:
        """Return how long a job of ``slots`` slots is expected to run."""
        if self.job_seconds_per_slot is None:
            return None
        return self.job_seconds_per_slot * slots

    def _learn_job_duration(
        self, job: Mapping[str, Any], observed: float, last_wait: float, slots: int
    ) -> None:
        """Update the expected job duration from the server's timestamps."""
        measured: float | None = None
        enqueued, ended = job.get("enqueued-at"), job.get("ended-at")
        if isinstance(enqueued, str) and isinstance(ended, str):
            try:
                measured = (
                    datetime.fromisoformat(ended) - datetime.fromisoformat(enqueued)
                ).total_seconds()
            except ValueError:
                measured = None
        if measured is None or measured < 0:
            # ended-at can be missing: assume the job ended halfway the last wait.
            measured = max(observed - last_wait / 2, 0.0)
        per_slot = measured / max(slots, 1)
        previous = self.job_seconds_per_slot
        self.job_seconds_per_slot = (
            per_slot if previous is None else (previous + per_slot) / 2
        )

    async def _async_wait_for_job(
        self, job_id: str, slots: int, *, resumed: bool = False
    ) -> Mapping[str, Any]:
        """Poll the job adaptively until it ended; return its status document.

        A job picked up after a restart may have run (or ended) long ago: it is
        looked up at once, and its duration teaches nothing. A FINISHED or FAILED
        job is returned (FlexMeasures may have planned a FAILED job with the
        scheduler's fallback: its schedule then redirects (303) to that plan); a
        STOPPED or CANCELED one raises.
        """
        started = time.monotonic()
        deadline = started + JOB_TIMEOUT
        expected = None if resumed else self._expected_job_seconds(slots)
        for delay in poll_delays(expected):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ScheduleFailedError(
                    FailureReason.TIMEOUT,
                    translation_domain=DOMAIN,
                    translation_key="schedule_timeout",
                    translation_placeholders={"seconds": str(int(JOB_TIMEOUT))},
                )
            await asyncio.sleep(min(delay, remaining))
            try:
                job = await self.api.async_get_job_status(job_id)
            except FlexMeasuresHttpStatusError as err:
                if err.status != HTTPStatus.NOT_FOUND:
                    raise self._map_error(err) from err
                # The server lost the job (its queue was emptied, or it expired).
                raise ScheduleFailedError(
                    FailureReason.JOB_FAILED,
                    translation_domain=DOMAIN,
                    translation_key="schedule_job_failed",
                    translation_placeholders={"error": str(err)},
                ) from err
            except FlexMeasuresError as err:
                raise self._map_error(err) from err
            status = job_status(job)
            if status == JOB_FINISHED:
                if not resumed:
                    self._learn_job_duration(
                        job, time.monotonic() - started, delay, slots
                    )
                return job
            if status == JOB_FAILED:
                return job
            if status in JOB_UNSUCCESSFUL:
                raise job_failure(job)
        raise AssertionError("unreachable")  # pragma: no cover

    def _map_error(self, err: FlexMeasuresError) -> ScheduleFailedError:
        """Translate an API error; an auth error also asks the user to log in."""
        reason = _FAILURE_REASONS.get(
            error_kind(err), FailureReason.COMMUNICATION_ERROR
        )
        return translated_error(
            err,
            partial(ScheduleFailedError, reason),
            reauth=partial(self.entry.async_start_reauth, self.hass),
            rejected_key="schedule_rejected",
        )

    async def _async_compute(self, round_: _Round) -> Schedule:
        """Trigger, poll, fetch, keep and announce one schedule."""
        request = round_.request
        if round_.sent_at is None:
            round_.sent_at = dt_util.utcnow()
        try:
            job_id = await self.api.async_trigger_schedule(
                sensor_id=self.config.sensor_id,
                start=request.start,
                duration=request.duration,
                flex_model=build_flex_model(request),
                flex_context=request.flex_context,
                force=request.force,
                now=round_.sent_at,
            )
        except FlexMeasuresError as err:
            raise self._map_error(err) from err
        round_.job_id = job_id
        # Stored at once: a restart from here on picks this job up.
        self.pending_job = PendingJob(
            job_id=job_id, triggered_at=dt_util.utcnow(), request=request
        )
        self._save(0)
        return await self._async_finish(round_, job_id, request)

    async def _async_finish(
        self,
        round_: _Round,
        job_id: str,
        request: ScheduleRequest,
        *,
        resumed: bool = False,
    ) -> Schedule:
        """Wait for a queued job, then fetch, keep and announce its schedule."""
        for item in round_.all():
            if not item.queued.done():
                item.queued.set_result(job_id)
        slots = max(int(request.duration / self.config.resolution), 1)
        job = await self._async_wait_for_job(job_id, slots, resumed=resumed)
        fallback_reason: str | None = None
        if job_status(job) == JOB_FAILED:
            fallback_reason, job_id = await self._async_fallback_job(job, job_id)
            job = await self._async_wait_for_job(job_id, slots, resumed=True)
            if job_status(job) == JOB_FAILED:
                raise job_failure(job)
        try:
            series = await self.api.async_get_schedule(
                sensor_id=self.config.sensor_id,
                job_id=job_id,
                duration=request.duration,
                unit="kW",
            )
        except FlexMeasuresError as err:
            raise self._map_error(err) from err
        now = dt_util.utcnow()
        schedule = schedule_from_series(
            job_id,
            series,
            request,
            now,
            fallback_reason=fallback_reason,
            unmet=unmet_targets(job.get("result"), request.targets),
        )
        self.schedule = schedule
        self.status = schedule.status_at(now)
        self._report_unmet_targets(schedule)
        self.failure_reason = self.failure_message = None
        self._availability.mark_up()
        self.last_updated = now
        self.pending_job = None
        self._schedule_tick()
        self.async_update_listeners()
        self._fire_updated(schedule)
        # Written shortly after, off the path to the entities; flushed at unload.
        self._save(STORE_DELAY)
        return schedule

    async def _async_fallback_job(
        self, job: Mapping[str, Any], job_id: str
    ) -> tuple[str, str]:
        """Return why a job failed and the job of FlexMeasures' fallback plan.

        FlexMeasures may plan a failed job again with its scheduler's fallback:
        the failed job's schedule then redirects (303) to the fallback job's,
        which is still being computed. Without a fallback (400 "unknown
        schedule"), or with fallback plans switched off, the round fails.
        """
        failure = job_failure(job)
        reason = (failure.translation_placeholders or {}).get("error", "")
        try:
            fallback_job = await self.api.async_get_fallback_job(
                sensor_id=self.config.sensor_id, job_id=job_id
            )
        except FlexMeasuresRejectedError as err:
            raise failure from err
        except FlexMeasuresError as err:
            raise self._map_error(err) from err
        if fallback_job is None:
            raise failure
        if not self.entry.options.get(
            CONF_USE_FALLBACK_PLANS, DEFAULT_USE_FALLBACK_PLANS
        ):
            raise ScheduleFailedError(
                FailureReason.FALLBACK_NOT_USED,
                translation_domain=DOMAIN,
                translation_key="schedule_fallback_not_used",
                translation_placeholders={"error": reason},
            )
        LOGGER.info(
            "The scheduler of %s failed (%s); FlexMeasures' fallback plan is used",
            self.name,
            reason,
        )
        return reason, fallback_job

    async def _async_recover(self, round_: _Round, pending: PendingJob) -> Schedule:
        """Pick up a job queued before a restart, or replace it by a fresh one."""
        now = dt_util.utcnow()
        if now - pending.triggered_at > PENDING_JOB_MAX_AGE:
            why = f"it was queued at {pending.triggered_at.isoformat()}"
        elif now >= pending.request.end:
            why = f"its plan ended at {pending.request.end.isoformat()}"
        else:
            self.recovery = ScheduleRecovery.RESUMED
            self.async_update_listeners()
            LOGGER.info(
                "Picking up scheduling job %s of %s after a restart",
                pending.job_id,
                self.name,
            )
            round_.job_id = pending.job_id
            try:
                return await self._async_finish(
                    round_, pending.job_id, pending.request, resumed=True
                )
            except ScheduleFailedError as err:
                if err.reason is not FailureReason.JOB_FAILED:
                    raise
                why = (err.translation_placeholders or {}).get("error", "")
            round_.job_id = None
        self.recovery = ScheduleRecovery.RECOMPUTED
        self.async_update_listeners()
        LOGGER.info(
            "Computing the schedule of %s anew: job %s from before the restart is "
            "of no use (%s)",
            self.name,
            pending.job_id,
            why,
        )
        # The state of charge to plan from may only be known once HA has started.
        await self._async_until_started()
        try:
            round_.request = self._replan_request(pending.request)
        except ServiceValidationError as err:
            placeholders = err.translation_placeholders or {}
            raise ScheduleFailedError(
                FailureReason.SOC_UNAVAILABLE,
                translation_domain=DOMAIN,
                translation_key=err.translation_key,
                translation_placeholders={
                    **placeholders,
                    "error": ", ".join(placeholders.values()),
                },
            ) from err
        self.last_request = round_.request
        return await self._async_compute(round_)

    def _replan_request(self, stored: ScheduleRequest) -> ScheduleRequest:
        """Return a stored request again, from the current slot and the SoC now."""
        config = self.config
        now = dt_util.utcnow()
        start = max(stored.start, slot_start(now, config.resolution))
        end = start + stored.duration
        return self.build_request(
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

    async def _async_until_started(self) -> None:
        """Return once Home Assistant has started (at once if it has)."""
        if self.hass.state is CoreState.running:
            return
        started: asyncio.Future[None] = self.hass.loop.create_future()

        @callback
        def _started(_hass: HomeAssistant) -> None:
            if not started.done():
                started.set_result(None)

        unsub = async_at_started(self.hass, _started)
        try:
            await started
        finally:
            unsub()

    @callback
    def _job_done(self) -> None:
        """Forget the job in flight: it ended, one way or another."""
        if self.pending_job is not None:
            self.pending_job = None
            self._save(STORE_DELAY)

    @callback
    def _save(self, delay: float) -> None:
        """Write the store after ``delay`` s; Home Assistant's final write flushes."""
        self._unsaved = True
        self.store.async_delay_save(self._as_store, delay)

    async def async_flush(self) -> None:
        """Write a schedule whose delayed save is still pending."""
        if self._unsaved:
            await self.store.async_save(self._as_store())

    async def async_remove_store(self) -> None:
        """Delete the stored schedule and the device's issue (it was removed)."""
        self._unsaved = False
        ir.async_delete_issue(
            self.hass, DOMAIN, unmet_targets_issue_id(self.subentry_id)
        )
        await self.store.async_remove()

    @callback
    def _report_unmet_targets(self, schedule: Schedule) -> None:
        """Raise, update or clear the repair issue about targets the plan misses.

        An ended plan's targets are history. A fallback plan says nothing about
        the targets (FlexMeasures' fallback may drop them): the issue stays as it
        is until a plan of the device's own scheduler arrives.
        """
        issue_id = unmet_targets_issue_id(self.subentry_id)
        if dt_util.utcnow() >= schedule.end:
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)
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
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)
            return
        at, target_kwh, deviation_kwh = missed[0]
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            issue_id,
            is_fixable=False,
            is_persistent=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key=ISSUE_UNMET_TARGETS,
            translation_placeholders={
                "name": self.name,
                "datetime": dt_util.as_local(at).strftime("%Y-%m-%d %H:%M"),
                "target": _fmt(self.config, self.config.from_kwh(target_kwh)),
                "shortfall": _fmt(
                    self.config, round(self.config.from_kwh(deviation_kwh), 2)
                ),
                "count": str(len(missed)),
            },
        )

    def _as_store(self) -> dict[str, Any]:
        """Return what survives a restart."""
        self._unsaved = False
        return {
            "schedule": self.schedule.as_dict() if self.schedule else None,
            "last_updated": self.last_updated.isoformat()
            if self.last_updated
            else None,
            "job_seconds_per_slot": self.job_seconds_per_slot,
            "pending_job": self.pending_job.as_dict() if self.pending_job else None,
        }

    @callback
    def _fire_updated(self, schedule: Schedule) -> None:
        """Announce a new schedule on the event bus."""
        device = next(
            (
                device
                for device in dr.async_entries_for_config_entry(
                    dr.async_get(self.hass), self.entry.entry_id
                )
                if self.device_identifier in device.identifiers
            ),
            None,
        )
        self.hass.bus.async_fire(
            EVENT_SCHEDULE_UPDATED,
            {
                "device_id": device.id if device else None,
                "name": self.name,
                "start": schedule.start.isoformat(),
                "end": schedule.end.isoformat(),
                "summary": schedule_summary(schedule, self.config),
            },
        )

    # --- automatic rescheduling

    @callback
    def _handle_interval(self, now: datetime) -> None:
        """Replan periodically."""
        self._request_auto()

    @callback
    def _handle_entity_change(self, event: Event[EventStateChangedData]) -> None:
        """Replan when a chosen entity changes state (not just attributes)."""
        old, new = event.data["old_state"], event.data["new_state"]
        if new is None or new.state in (STATE_UNAVAILABLE, STATE_UNKNOWN):
            return
        if old is not None and old.state == new.state:
            return
        self._request_auto()

    @callback
    def _handle_soc_change(self, event: Event[EventStateChangedData]) -> None:
        """Replan when the SoC drifts too far from the plan."""
        drift = self.config.auto.soc_drift
        if self.schedule is None or drift is None or self.busy:
            return
        planned = self.schedule.soc_at(dt_util.utcnow())
        if planned is None:
            return
        try:
            actual = read_soc_kwh(self.hass, self.config)
        except ServiceValidationError:
            return
        difference = abs(self.config.from_kwh(actual) - self.config.from_kwh(planned))
        if difference > drift:
            LOGGER.debug(
                "%s: SoC %.2f kWh drifted from plan %.2f kWh",
                self.name,
                actual,
                planned,
            )
            self._request_auto()

    @callback
    def _request_auto(self) -> None:
        """Ask for an automatic replan; merged over the debounce window."""
        if self._debouncer is not None:
            self._debouncer.async_schedule_call()

    async def _async_auto_reschedule(self) -> None:
        """Replan now, unless the rate limit says to wait."""
        now = dt_util.utcnow()
        if self._last_auto is not None and now < self._last_auto + AUTO_MIN_INTERVAL:
            if self._unsub_deferred is None:
                self._unsub_deferred = async_track_point_in_utc_time(
                    self.hass,
                    self._handle_deferred,
                    self._last_auto + AUTO_MIN_INTERVAL,
                )
            return
        if self._retry is not None:
            # The round that lost the server is taken up when it answers.
            LOGGER.debug("Not replanning %s while waiting for the server", self.name)
            return
        self._last_auto = now
        try:
            request = self.build_request(soc_targets=self._remaining_targets())
        except ServiceValidationError as err:
            self.status = ScheduleStatus.FAILED
            self.failure_reason = FailureReason.SOC_UNAVAILABLE
            self.failure_message = ", ".join(
                (err.translation_placeholders or {}).values()
            )
            self.async_update_listeners()
            return
        try:
            await self.async_schedule(request, wait=False)
        except HomeAssistantError:
            return  # recorded in the status already

    @callback
    def _handle_deferred(self, now: datetime) -> None:
        """Run a replan the rate limit held back."""
        self._unsub_deferred = None
        self.entry.async_create_background_task(
            self.hass, self._async_auto_reschedule(), f"{DOMAIN} replan {self.name}"
        )

    def _remaining_targets(self) -> list[tuple[datetime, float]]:
        """Return the last request's targets still ahead, in the device's unit."""
        if self.last_request is not None:
            targets = self.last_request.targets
        elif self.schedule is not None:
            targets = self.schedule.targets
        else:
            return []
        now = dt_util.utcnow()
        end = slot_start(now, self.config.resolution) + self.config.horizon
        return [
            (target.at, self.config.from_kwh(target.kwh))
            for target in targets
            if now < target.at <= end
        ]


def _controlled_devices(
    entry: FlexMeasuresConfigEntry,
) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """Return the controlled-device subentries as comparable (title, data)."""
    return {
        subentry_id: (subentry.title, dict(subentry.data))
        for subentry_id, subentry in entry.subentries.items()
        if subentry.subentry_type == SUBENTRY_CONTROLLED_DEVICE
    }


async def async_setup_schedulers(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry
) -> None:
    """Create, restore and start a scheduler per controlled device."""
    data = entry.runtime_data
    sensors = data.inventory.data.sensors
    for subentry_id, subentry in entry.subentries.items():
        if subentry.subentry_type != SUBENTRY_CONTROLLED_DEVICE:
            continue
        sensor = sensors.get(int(subentry.data[CONF_POWER_SENSOR]))
        config = DeviceConfig.from_subentry(
            subentry, sensor.resolution if sensor else None
        )
        scheduler = DeviceScheduler(hass, entry, subentry_id, config, data.api)
        await scheduler.async_load()
        data.schedulers[subentry_id] = scheduler

    for scheduler in data.schedulers.values():
        scheduler.async_start()
        entry.async_on_unload(scheduler.async_stop)
        entry.async_on_unload(scheduler.async_flush)

    # A controlled device added, changed or removed: reload to rebuild entities.
    known = _controlled_devices(entry)

    async def _async_subentries_changed(
        hass: HomeAssistant, entry: FlexMeasuresConfigEntry
    ) -> None:
        """Reload when the controlled devices changed."""
        current = _controlled_devices(entry)
        if current == known:
            return
        for subentry_id in known.keys() - current.keys():
            await data.schedulers[subentry_id].async_remove_store()
        hass.config_entries.async_schedule_reload(entry.entry_id)

    entry.async_on_unload(entry.add_update_listener(_async_subentries_changed))


async def async_remove_schedules(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry
) -> None:
    """Delete the stored schedules and issues of a removed entry."""
    for subentry_id in _controlled_devices(entry):
        ir.async_delete_issue(hass, DOMAIN, unmet_targets_issue_id(subentry_id))
        await ScheduleStore(hass, subentry_id).async_remove()
