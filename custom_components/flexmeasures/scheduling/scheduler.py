"""The device scheduler: the one planner and plan coordinator of a device.

It queues rounds (never more than one job in flight), takes a round that lost
the server up again once it answers, fetches the card's prices and fires
``flexmeasures_schedule_updated``; its collaborators wait for jobs, keep and
recover the plan, report missed targets and replan automatically.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
import logging
from typing import Any

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from ..api import FlexMeasuresApi, FlexMeasuresError, TimeSeries
from ..availability import ServerAvailability
from ..const import DOMAIN, EVENT_SCHEDULE_UPDATED, LOGGER
from ..data import FlexMeasuresConfigEntry
from ..identity import controlled_device_identifier
from .jobs import ScheduleFailedError, failure_message
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
    unmet_targets,
)
from .prices import PlanPrices
from .recovery import async_recover, replan_request
from .replan import Replanner
from .request import build_flex_model, build_request
from .rounds import Round, RoundRetry
from .store import STORE_DELAY, PlanKeeper, ScheduleStore, StoredPlan
from .targets import async_delete_unmet_targets_issue, async_report_unmet_targets
from .waiting import JobWaiter


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
        self.store = PlanKeeper(
            ScheduleStore(hass, subentry_id),
            config.name,
            self._stored,
            StoredPlan.from_dict,
        )
        self.waiter = JobWaiter(
            hass, entry, api, name=config.name, sensor_id=config.sensor_id
        )
        self.replanner = Replanner(self)
        self.status = ScheduleStatus.IDLE
        self.failure_reason: FailureReason | None = None
        self.failure_message: str | None = None
        self.last_updated: datetime | None = None
        self.last_request: ScheduleRequest | None = None
        # The job in flight, stored so that a restart can pick it up.
        self.pending_job: PendingJob | None = None
        self.recovery: ScheduleRecovery | None = None
        self._active: Round | None = None
        self._pending: Round | None = None
        # The site whose asset-level job plans this device right now, if any.
        self.site_round: str | None = None
        self._unsub_tick: CALLBACK_TYPE | None = None
        # The consumption prices over the plan, for the dashboard card.
        self._prices = PlanPrices(entry, config, api)
        self._availability = ServerAvailability(
            LOGGER, f"Scheduling {config.name}", api.url
        )
        # A round that lost the server, to take up again when it answers.
        self._retry = RoundRetry(hass, busy=lambda: self.busy, start=self._start)

    @property
    def device_identifier(self) -> tuple[str, str]:
        """Return the device registry identifier of this controlled device."""
        return controlled_device_identifier(self.subentry_id)

    @property
    def busy(self) -> bool:
        """Return whether a job is in flight: the device's own or its site's."""
        return self._active is not None or self.site_round is not None

    @property
    def waiting_for_server(self) -> bool:
        """Return whether a round that lost the server waits for it to answer."""
        return self._retry.round is not None

    # --- lifecycle

    async def async_load(self) -> None:
        """Restore the last schedule and a job in flight from the store."""
        stored = await self.store.async_load()
        if stored is None:
            return
        self.schedule = stored.schedule
        self.last_updated = stored.last_updated
        self.waiter.seconds_per_slot = stored.job_seconds_per_slot
        self.waiter.spread_per_slot = stored.job_spread_per_slot
        if self.schedule is not None:
            self.status = self.schedule.status_at(dt_util.utcnow())
            # Issues of the last session are gone: raise it again.
            self._report_unmet_targets(self.schedule)
        if stored.pending_job is not None:
            self.pending_job = stored.pending_job
            # async_start picks it up; until then the plan is being computed.
            self.status = ScheduleStatus.COMPUTING

    @callback
    def async_start(self) -> None:
        """Start the slot-boundary timer, a stored job in flight, the triggers."""
        self._schedule_tick()
        if self.pending_job is not None:
            # Its targets carry over to automatic replans, as a fresh request's do.
            self.last_request = self.pending_job.request
            round_ = Round.create(self.hass, self.pending_job.request)
            round_.resume = self.pending_job
            self._start(round_)
        self.replanner.async_start()

    @callback
    def async_stop(self) -> None:
        """Stop timers and triggers."""
        self.replanner.async_stop()
        self._retry.async_stop()
        if self._unsub_tick is not None:
            self._unsub_tick()
            self._unsub_tick = None

    # --- prices for the dashboard card

    async def async_get_prices(self) -> TimeSeries | None:
        """Return the consumption prices over the schedule's window, or None.

        Fetched once per job. A failure is logged at debug level and answers
        None, so the card shows the plan without prices; the next call retries.
        """
        return await self._prices.async_get(self.schedule)

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
            soc_targets=self.replanner.remaining_targets(),
            soc_min=config.from_kwh(min(low, high)),
            soc_max=config.from_kwh(high),
            charge_power=min(config.charge_power_kw, charge_power_kw or 0.0),
            discharge_power=min(config.discharge_power_kw, discharge_power_kw or 0.0),
        )
        await self.async_schedule(request, wait=False)

    async def async_schedule(
        self, request: ScheduleRequest, *, wait: bool
    ) -> Schedule | None:
        """Plan with ``request``; with ``wait``, return the schedule (bounded).

        Without ``wait`` this returns once the job is queued on the server; if a
        job is already in flight, the request is queued behind it (replacing an
        earlier queued one) and this returns at once.
        """
        round_ = Round.create(self.hass, request)
        self.last_request = request
        if not self.busy:
            self._start(round_)
        else:
            if self._pending is not None:
                round_.superseded = self._pending.all()
            self._pending = round_
            if not wait:
                return None
        return await round_.async_wait(wait=wait)

    @callback
    def _start(self, round_: Round) -> None:
        """Run a round in the background."""
        self._active = round_
        if round_.resume is None:
            self.recovery = None
        self.status = ScheduleStatus.COMPUTING
        self.async_update_listeners()
        self.entry.async_create_background_task(
            self.hass, self._async_run(round_), f"{DOMAIN} schedule {self.name}"
        )

    async def _async_run(self, round_: Round) -> None:
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
                self._retry.later(round_)
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
            self._retry.cancel()
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

    # --- site rounds: the device planned with others in one asset-level job

    @callback
    def async_site_round_started(self, site: str, request: ScheduleRequest) -> None:
        """Show that ``site``'s job plans this device; its own rounds queue behind.

        ``request`` is what the site asked for this device: its targets carry
        over to automatic replans, as those of the device's own requests do.
        """
        self.site_round = site
        self.last_request = request
        self.recovery = None
        self.status = ScheduleStatus.COMPUTING
        self.async_update_listeners()

    @callback
    def async_site_round_ended(self, *, start_queued: bool = True) -> None:
        """Start a round of the device's own that queued behind the site's job."""
        self.site_round = None
        if start_queued and self._active is None and self._pending is not None:
            pending, self._pending = self._pending, None
            self._start(pending)
        else:
            self.async_update_listeners()

    @callback
    def record_failure(self, reason: FailureReason, message: str) -> None:
        """Record a failure outside a round (a replan that could not be asked)."""
        self.status = ScheduleStatus.FAILED
        self.failure_reason = reason
        self.failure_message = message
        self.async_update_listeners()

    @callback
    def _fail(
        self,
        round_: Round,
        err: HomeAssistantError,
        reason: FailureReason,
        level: int = logging.WARNING,
    ) -> None:
        """Record a failed round and hand the error to its waiters."""
        self.status = ScheduleStatus.FAILED
        self.failure_reason = reason
        self.failure_message = failure_message(err, reason)
        if reason is FailureReason.COMMUNICATION_ERROR:
            self._availability.mark_down(
                f"keeping the current plan: {self.failure_message}"
            )
        else:
            LOGGER.log(
                level, "Scheduling %s failed: %s", self.name, self.failure_message
            )
        for item in round_.all():
            item.fail(err)

    async def _async_until_answering(self) -> None:
        """Ask the server something harmless before repeating a trigger.

        While it does not answer, a repeated trigger would only wait in its
        queue beside the first, and a server running both at once may make two
        jobs of one request.
        """
        try:
            await self.api.async_get_server_version()
        except FlexMeasuresError as err:
            raise self.waiter.map_error(err) from err

    async def _async_compute(self, round_: Round) -> Schedule:
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
            raise self.waiter.map_error(err) from err
        round_.job_id = job_id
        # Stored at once: a restart from here on picks this job up.
        self.pending_job = PendingJob(
            job_id=job_id, triggered_at=dt_util.utcnow(), request=request
        )
        self.store.async_save(0)
        return await self._async_finish(round_, job_id, request)

    async def _async_finish(
        self,
        round_: Round,
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
        job, job_id, fallback_reason = await self.waiter.async_follow(
            job_id, slots, resumed=resumed
        )
        return await self.async_take_plan(job, job_id, request, fallback_reason)

    async def async_take_plan(
        self,
        job: Mapping[str, Any],
        job_id: str,
        request: ScheduleRequest,
        fallback_reason: str | None,
        *,
        asset_id: int | None = None,
    ) -> Schedule:
        """Fetch this device's plan of a finished job and make it the device's plan.

        The one path a plan takes to the device, whether its own job or its
        site's asset-level job made it: status, missed-target issue, store,
        event and every follower (entities, calendar, card, S2 instructions).
        ``asset_id`` (a site's job) picks the device's missed targets from
        those of all devices. Raise ScheduleFailedError when the plan cannot
        be fetched.
        """
        try:
            series = await self.api.async_get_schedule(
                sensor_id=self.config.sensor_id,
                job_id=job_id,
                duration=request.duration,
                unit="kW",
            )
        except FlexMeasuresError as err:
            raise self.waiter.map_error(err) from err
        now = dt_util.utcnow()
        schedule = schedule_from_series(
            job_id,
            series,
            request,
            now,
            fallback_reason=fallback_reason,
            unmet=unmet_targets(job.get("result"), request.targets, asset_id),
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
        self.store.async_save(STORE_DELAY)
        return schedule

    async def _async_recover(self, round_: Round, pending: PendingJob) -> Schedule:
        """Pick up a job queued before a restart, or replace it by a fresh one."""

        @callback
        def _mark(recovery: ScheduleRecovery) -> None:
            self.recovery = recovery
            self.async_update_listeners()

        async def _async_follow(job_id: str) -> Schedule:
            round_.job_id = job_id
            return await self._async_finish(
                round_, job_id, pending.request, resumed=True
            )

        async def _async_replan(request: ScheduleRequest) -> Schedule:
            round_.job_id = None
            round_.request = self.last_request = request
            return await self._async_compute(round_)

        return await async_recover(
            self.hass,
            self.name,
            pending,
            mark=_mark,
            follow=_async_follow,
            requests=lambda now: replan_request(
                self.hass, self.config, pending.request, now
            ),
            replan=_async_replan,
        )

    @callback
    def _job_done(self) -> None:
        """Forget the job in flight: it ended, one way or another."""
        if self.pending_job is not None:
            self.pending_job = None
            self.store.async_save(STORE_DELAY)

    async def async_flush(self) -> None:
        """Write a schedule whose delayed save is still pending."""
        await self.store.async_flush()

    async def async_remove_store(self) -> None:
        """Delete the stored schedule and the device's issue (it was removed)."""
        async_delete_unmet_targets_issue(self.hass, self.subentry_id)
        await self.store.async_remove()

    @callback
    def _report_unmet_targets(self, schedule: Schedule) -> None:
        """Raise, update or clear the repair issue about targets the plan misses."""
        async_report_unmet_targets(self.hass, self.subentry_id, self.config, schedule)

    def _stored(self) -> StoredPlan:
        """Return what survives a restart."""
        return StoredPlan(
            schedule=self.schedule,
            last_updated=self.last_updated,
            job_seconds_per_slot=self.waiter.seconds_per_slot,
            job_spread_per_slot=self.waiter.spread_per_slot,
            pending_job=self.pending_job,
        )

    @property
    def device_id(self) -> str | None:
        """Return the device registry id of this controlled device, if registered."""
        return next(
            (
                device.id
                for device in dr.async_entries_for_config_entry(
                    dr.async_get(self.hass), self.entry.entry_id
                )
                if self.device_identifier in device.identifiers
            ),
            None,
        )

    @callback
    def _fire_updated(self, schedule: Schedule) -> None:
        """Announce a new schedule on the event bus."""
        self.hass.bus.async_fire(
            EVENT_SCHEDULE_UPDATED,
            {
                "device_id": self.device_id,
                "name": self.name,
                "start": schedule.start.isoformat(),
                "end": schedule.end.isoformat(),
                "summary": schedule_summary(schedule, self.config),
            },
        )
