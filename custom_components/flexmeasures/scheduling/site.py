"""Sites: several controlled devices planned together in one asset-level job.

A site is a FlexMeasures parent asset whose devices share a grid connection.
Its scheduler asks each device's scheduler for a request (the device's own
validation) and flex-model, triggers ONE job on the asset with a flex-model
per device and the site's flex-context (prices, ``site-power-capacity``,
inflexible sensors), follows it with a ``JobWaiter`` (learning its durations)
and hands each device's plan to that device through
``DeviceScheduler.async_take_plan``: the path the device's own plans take.

Never two jobs in flight for a device. While the site's job runs, each device
shows ``computing`` and its own rounds (the action, its replans, S2) queue
behind the job, as behind one of its own. A site round is refused with a
translated error while the site's previous job runs (``site_busy``) or while
one of its devices plans on its own or waits for the server to take a round up
again (``site_device_busy``): the caller tries again once that is done.

A site job in flight is stored at once, with each device's request: after a
restart it is followed to its end, or (too old, its plan over, or failed on
the server) planned anew from the SoC now and the targets still ahead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from ..api import FlexMeasuresApi, FlexMeasuresError
from ..const import DOMAIN, LOGGER
from ..data import FlexMeasuresConfigEntry
from ..identity import site_identifier
from ..signals import signal_forecast_posted
from .jobs import ScheduleFailedError, failure_message
from .model import (
    FailureReason,
    Schedule,
    ScheduleRecovery,
    ScheduleRequest,
    ScheduleStatus,
    SiteConfig,
    SitePendingJob,
)
from .recovery import async_recover, replan_request
from .replan import ReplanTrigger
from .request import build_flex_model
from .rounds import RoundWaiters, new_future
from .scheduler import DeviceScheduler
from .store import STORE_DELAY, PlanKeeper, SiteStore, StoredSite
from .waiting import JobWaiter

# The site's status is its devices' worst: the first of these any device has.
_STATUS_ORDER: Final = (
    ScheduleStatus.FAILED,
    ScheduleStatus.COMPUTING,
    ScheduleStatus.STALE,
    ScheduleStatus.FALLBACK,
    ScheduleStatus.READY,
)


@dataclass(eq=False, kw_only=True)
class SiteRound(RoundWaiters[dict[str, Schedule]]):
    """One asset-level job: each device's request and who waits for the plans."""

    requests: dict[str, ScheduleRequest]
    # A job queued before a restart, to pick up rather than trigger anew.
    resume: SitePendingJob | None = None
    job_id: str | None = None
    # The devices whose plan arrived (a later device's fetch may still fail).
    taken: set[str] = field(default_factory=set)

    @classmethod
    def create(
        cls, hass: HomeAssistant, requests: Mapping[str, ScheduleRequest]
    ) -> SiteRound:
        """Create a round with its two futures."""
        return cls(
            requests=dict(requests), queued=new_future(hass), done=new_future(hass)
        )


class SiteScheduler(DataUpdateCoordinator[None]):
    """Plans the devices of a site together; their plans go to the devices.

    ``config`` is the site's settings and ``devices`` its devices' schedulers
    (the card and the site's entities read these). It polls nothing; its
    listeners hear of its own rounds and of every plan of its devices.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        entry: FlexMeasuresConfigEntry,
        subentry_id: str,
        config: SiteConfig,
        api: FlexMeasuresApi,
        devices: list[DeviceScheduler],
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
        self._devices = devices
        # A fallback job is told by the schedule of the first device's sensor.
        self.waiter = JobWaiter(
            hass, entry, api, name=config.name, sensor_id=devices[0].config.sensor_id
        )
        self.store = PlanKeeper(
            SiteStore(hass, subentry_id),
            config.name,
            self._stored,
            StoredSite.from_dict,
        )
        self.failure_reason: FailureReason | None = None
        self.failure_message: str | None = None
        self.last_updated: datetime | None = None
        self.pending_job: SitePendingJob | None = None
        self.recovery: ScheduleRecovery | None = None
        self._round: SiteRound | None = None
        self._unsubs: list[CALLBACK_TYPE] = []
        # Replans on new prices: merged, rate limited, and held while busy.
        self._replan: ReplanTrigger[dict[str, ScheduleRequest]] | None = None
        self._replan_wanted = False

    @property
    def devices(self) -> list[DeviceScheduler]:
        """Return the schedulers of the site's devices, in the site's order."""
        return list(self._devices)

    @property
    def device_identifier(self) -> tuple[str, str]:
        """Return the device registry identifier of the site."""
        return site_identifier(self.subentry_id)

    @property
    def busy(self) -> bool:
        """Return whether the site's job is in flight."""
        return self._round is not None

    @property
    def status(self) -> ScheduleStatus:
        """Return where the site's plan stands.

        Computing while its job runs, failed when its last round failed, idle
        before its first plan; otherwise the worst of its devices' statuses
        (a device may have planned on its own since).
        """
        if self._round is not None:
            return ScheduleStatus.COMPUTING
        if self.failure_reason is not None:
            return ScheduleStatus.FAILED
        if self.last_updated is None:
            return ScheduleStatus.IDLE
        statuses = {device.status for device in self._devices}
        return next(
            (status for status in _STATUS_ORDER if status in statuses),
            ScheduleStatus.IDLE,
        )

    # --- the plan of the site, from its devices' plans

    def planned_power_at(self, moment: datetime) -> float | None:
        """Return the site's planned power (kW) at ``moment``: its devices' sum."""
        powers = [
            power
            for device in self._devices
            if device.schedule is not None
            and (power := device.schedule.power_at(moment)) is not None
        ]
        return sum(powers) if powers else None

    def planned_peak(self, moment: datetime) -> float | None:
        """Return the highest planned site power (kW) from ``moment`` on."""
        boundaries: set[datetime] = set()
        for device in self._devices:
            schedule = device.schedule
            if schedule is None or moment >= schedule.end:
                continue
            first = schedule.index_at(moment) or 0
            boundaries.update(
                schedule.start + schedule.resolution * index
                for index in range(first, len(schedule.values))
            )
        if not boundaries:
            return None
        return max(
            self.planned_power_at(max(boundary, moment)) or 0.0
            for boundary in boundaries
        )

    # --- lifecycle

    async def async_load(self) -> None:
        """Restore the learned job durations and a job in flight."""
        stored = await self.store.async_load()
        if stored is None:
            return
        self.last_updated = stored.last_updated
        self.waiter.seconds_per_slot = stored.job_seconds_per_slot
        self.waiter.spread_per_slot = stored.job_spread_per_slot
        pending = stored.pending_job
        if pending is not None and set(pending.requests) != {
            device.subentry_id for device in self._devices
        }:
            LOGGER.info(
                "Dropping the job in flight of site %s: its devices changed",
                self.name,
            )
            pending = None
        self.pending_job = pending

    @callback
    def async_start(self) -> None:
        """Follow the devices' plans, pick a stored job up, listen for prices."""
        for device in self._devices:
            self._unsubs.append(device.async_add_listener(self._handle_device_update))
        if self.config.replan_on_prices and self.config.price_sensors:
            self._replan = ReplanTrigger(
                self.hass,
                self.entry,
                f"site {self.name}",
                ready=self._replan_ready,
                build=self._replan_requests,
                schedule=partial(self.async_schedule, wait=False),
                failed=self._replan_failed,
            )
            self._unsubs.append(
                async_dispatcher_connect(
                    self.hass,
                    signal_forecast_posted(self.entry.entry_id),
                    self._handle_forecast_posted,
                )
            )
        if self.pending_job is not None:
            round_ = SiteRound.create(self.hass, self.pending_job.requests)
            round_.resume = self.pending_job
            self._start(round_)

    @callback
    def async_stop(self) -> None:
        """Stop listening and a deferred replan."""
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        if self._replan is not None:
            self._replan.async_stop()

    async def async_flush(self) -> None:
        """Write what a delayed save still holds."""
        await self.store.async_flush()

    async def async_remove_store(self) -> None:
        """Delete what the site stored (it was removed)."""
        await self.store.async_remove()

    async def _async_update_data(self) -> None:
        """Nothing to poll: the site's state is its rounds and its devices' plans."""

    @callback
    def _handle_device_update(self) -> None:
        """Let the site's entities re-read: a device's plan or status changed."""
        if self._replan_wanted and not self._blocked():
            self._replan_wanted = False
            self._request_replan()
        self.async_update_listeners()

    # --- requests

    def build_requests(
        self,
        *,
        start: datetime | None = None,
        duration: timedelta | None = None,
        values: Mapping[str, Mapping[str, Any]] | None = None,
        force: bool = False,
    ) -> dict[str, ScheduleRequest]:
        """Validate a request per device, each with its own settings and checks.

        ``values`` holds per device (by subentry id) what only that device
        knows: ``soc_at_start`` and ``soc_targets``, in its SoC unit. The
        devices share the start and the horizon (by default the longest of
        theirs). Every problem is a translated ServiceValidationError.
        """
        values = values or {}
        if duration is None:
            duration = max(device.config.horizon for device in self._devices)
        return {
            device.subentry_id: device.build_request(
                start=start,
                duration=duration,
                force=force,
                **values.get(device.subentry_id, {}),
            )
            for device in self._devices
        }

    def _blocked(self) -> list[str]:
        """Return the devices that plan on their own or wait for the server."""
        return [
            device.name
            for device in self._devices
            if device.busy or device.waiting_for_server
        ]

    async def async_schedule(
        self, requests: Mapping[str, ScheduleRequest], *, wait: bool
    ) -> dict[str, Schedule] | None:
        """Plan the site; with ``wait``, return each device's plan (bounded).

        Without ``wait`` this returns once the job is queued on the server.
        Raise a translated HomeAssistantError when the site or one of its
        devices is busy, or when the round fails (each device's status says
        why too).
        """
        if self._round is not None:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="site_busy",
                translation_placeholders={"site": self.name},
            )
        if blocked := self._blocked():
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="site_device_busy",
                translation_placeholders={
                    "site": self.name,
                    "devices": ", ".join(blocked),
                },
            )
        round_ = SiteRound.create(self.hass, requests)
        self._start(round_)
        return await round_.async_wait(wait=wait)

    @callback
    def _start(self, round_: SiteRound) -> None:
        """Run a round in the background; the devices show ``computing``."""
        self._round = round_
        if round_.resume is None:
            self.recovery = None
        for device in self._devices:
            device.async_site_round_started(
                self.name, round_.requests[device.subentry_id]
            )
        self.async_update_listeners()
        self.entry.async_create_background_task(
            self.hass, self._async_run(round_), f"{DOMAIN} site schedule {self.name}"
        )

    async def _async_run(self, round_: SiteRound) -> None:
        """Compute the site's plans and hand each to its device."""
        cancelled = False
        try:
            if round_.resume is not None:
                plans = await self._async_recover(round_, round_.resume)
            else:
                plans = await self._async_compute(round_)
        except ScheduleFailedError as err:
            self._fail(round_, err)
        except asyncio.CancelledError:
            # Unloaded or stopping: the job stays stored, to be picked up later.
            cancelled = True
            round_.cancel()
            raise
        else:
            self.failure_reason = self.failure_message = None
            round_.done.set_result(plans)
        finally:
            self._round = None
            for device in self._devices:
                device.async_site_round_ended(start_queued=not cancelled)
            self.async_update_listeners()

    @callback
    def _fail(self, round_: SiteRound, err: ScheduleFailedError) -> None:
        """Record a failed round at the site and each device not yet planned."""
        self.failure_reason = err.reason
        self.failure_message = failure_message(err, err.reason)
        LOGGER.warning("Scheduling site %s failed: %s", self.name, self.failure_message)
        if self.pending_job is not None:
            self.pending_job = None
            self.store.async_save(STORE_DELAY)
        for device in self._devices:
            if device.subentry_id not in round_.taken:
                device.record_failure(err.reason, self.failure_message)
        round_.fail(err)

    async def _async_compute(self, round_: SiteRound) -> dict[str, Schedule]:
        """Trigger one job for all devices, then take its plans."""
        requests = round_.requests
        start = min(request.start for request in requests.values())
        end = max(request.end for request in requests.values())
        flex_models = [
            {
                **build_flex_model(requests[device.subentry_id]),
                "sensor": device.config.sensor_id,
            }
            for device in self._devices
        ]
        now = dt_util.utcnow()
        try:
            job_id = await self.api.async_trigger_site_schedule(
                asset_id=self.config.asset_id,
                start=start,
                duration=end - start,
                flex_models=flex_models,
                flex_context=self.config.flex_context(),
                force=any(request.force for request in requests.values()),
                now=now,
            )
        except FlexMeasuresError as err:
            raise self.waiter.map_error(err) from err
        round_.job_id = job_id
        # Stored at once: a restart from here on picks this job up.
        self.pending_job = SitePendingJob(
            job_id=job_id, triggered_at=dt_util.utcnow(), requests=requests
        )
        self.store.async_save(0)
        return await self._async_finish(round_, job_id)

    async def _async_finish(
        self, round_: SiteRound, job_id: str, *, resumed: bool = False
    ) -> dict[str, Schedule]:
        """Wait for the site's job, then hand each device its plan."""
        if not round_.queued.done():
            round_.queued.set_result(job_id)
        requests = round_.requests
        resolution = min(device.config.resolution for device in self._devices)
        duration = max(request.end for request in requests.values()) - min(
            request.start for request in requests.values()
        )
        slots = max(int(duration / resolution), 1)
        job, job_id, fallback_reason = await self.waiter.async_follow(
            job_id, slots, resumed=resumed
        )
        sensors = self.entry.runtime_data.inventory.data.sensors
        plans: dict[str, Schedule] = {}
        for device in self._devices:
            sensor = sensors.get(device.config.sensor_id)
            plans[device.subentry_id] = await device.async_take_plan(
                job,
                job_id,
                requests[device.subentry_id],
                fallback_reason,
                asset_id=sensor.asset_id if sensor is not None else None,
            )
            round_.taken.add(device.subentry_id)
        self.last_updated = dt_util.utcnow()
        self.pending_job = None
        self.store.async_save(STORE_DELAY)
        return plans

    async def _async_recover(
        self, round_: SiteRound, pending: SitePendingJob
    ) -> dict[str, Schedule]:
        """Pick up a job queued before a restart, or plan the site anew."""

        def _requests(now: datetime) -> dict[str, ScheduleRequest]:
            return {
                device.subentry_id: replan_request(
                    self.hass, device.config, pending.requests[device.subentry_id], now
                )
                for device in self._devices
            }

        async def _async_replan(
            requests: dict[str, ScheduleRequest],
        ) -> dict[str, Schedule]:
            round_.requests = requests
            round_.job_id = None
            return await self._async_compute(round_)

        return await async_recover(
            self.hass,
            f"site {self.name}",
            pending,
            mark=self._mark,
            follow=lambda job_id: self._async_finish(round_, job_id, resumed=True),
            requests=_requests,
            replan=_async_replan,
        )

    @callback
    def _mark(self, recovery: ScheduleRecovery) -> None:
        """Record how a job in flight at a restart is dealt with, site and devices."""
        self.recovery = recovery
        for device in self._devices:
            device.recovery = recovery
            device.async_update_listeners()
        self.async_update_listeners()

    def _stored(self) -> StoredSite:
        """Return what survives a restart."""
        return StoredSite(
            last_updated=self.last_updated,
            job_seconds_per_slot=self.waiter.seconds_per_slot,
            job_spread_per_slot=self.waiter.spread_per_slot,
            pending_job=self.pending_job,
        )

    # --- replanning when a forecast link posted new prices

    @callback
    def _handle_forecast_posted(self, sensor_id: int) -> None:
        """Replan when one of the site's price sensors got new prices."""
        if sensor_id in self.config.price_sensors:
            self._request_replan()

    @callback
    def _request_replan(self) -> None:
        """Ask for a replan; merged over the debounce window, rate limited."""
        if self._replan is not None:
            self._replan.request()

    def _replan_ready(self) -> bool:
        """Return whether to replan now; one asked while busy runs once done."""
        if self.busy or self._blocked():
            LOGGER.debug("Site %s is busy: replanning once it is done", self.name)
            self._replan_wanted = True
            return False
        return True

    def _replan_requests(self) -> dict[str, ScheduleRequest]:
        """Return each device's request: its SoC now, its targets still ahead."""
        return self.build_requests(
            values={
                device.subentry_id: {
                    "soc_targets": device.replanner.remaining_targets()
                }
                for device in self._devices
            }
        )

    @callback
    def _replan_failed(self, message: str) -> None:
        """Record a replan that could not be asked (a device's SoC is unknown)."""
        LOGGER.warning("Cannot replan site %s: %s", self.name, message)
        self.failure_reason = FailureReason.SOC_UNAVAILABLE
        self.failure_message = message
        self.async_update_listeners()
