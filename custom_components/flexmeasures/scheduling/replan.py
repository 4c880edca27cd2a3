"""Automatic replanning: the triggers that ask a device or site for a round."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import (
    CALLBACK_TYPE,
    Event,
    EventStateChangedData,
    HomeAssistant,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers.debounce import Debouncer
from homeassistant.helpers.event import (
    async_track_point_in_utc_time,
    async_track_state_change_event,
    async_track_time_interval,
)
from homeassistant.util import dt as dt_util

from ..const import DOMAIN, LOGGER
from ..data import FlexMeasuresConfigEntry
from .model import FailureReason, ScheduleRequest, slot_start
from .request import read_soc_kwh

if TYPE_CHECKING:
    from .scheduler import DeviceScheduler

# Automatic rescheduling: triggers are merged over AUTO_DEBOUNCE and at most one
# automatic job starts per AUTO_MIN_INTERVAL.
AUTO_DEBOUNCE: Final = 10.0
AUTO_MIN_INTERVAL: Final = timedelta(minutes=2)


class ReplanTrigger[R]:
    """Replans when asked: merged over AUTO_DEBOUNCE, rate limited.

    At most one replan starts per AUTO_MIN_INTERVAL; one asked within it runs
    once the interval has passed. ``ready`` is asked just before a replan
    starts: False skips it (and does not count for the rate limit), the owner
    says when to ask again. Then ``build`` makes the request from the SoC now
    (a ServiceValidationError goes to ``failed``, joined into one message)
    and ``schedule`` queues it (a failed round records itself in the status).
    A device's automatic triggers and a site's new prices both replan this way.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        entry: FlexMeasuresConfigEntry,
        name: str,
        *,
        ready: Callable[[], bool],
        build: Callable[[], R],
        schedule: Callable[[R], Awaitable[object]],
        failed: Callable[[str], None],
    ) -> None:
        """Initialize; ``name`` names the planner in the log and in tasks."""
        self._hass = hass
        self._entry = entry
        self._name = name
        self._ready = ready
        self._build = build
        self._schedule = schedule
        self._failed = failed
        self._last: datetime | None = None
        self._unsub_deferred: CALLBACK_TYPE | None = None
        self._debouncer: Debouncer[Any] = Debouncer(
            hass,
            LOGGER,
            cooldown=AUTO_DEBOUNCE,
            immediate=False,
            function=self._async_run,
            background=True,
        )

    @callback
    def request(self) -> None:
        """Ask for a replan; merged over the debounce window."""
        self._debouncer.async_schedule_call()

    @callback
    def async_stop(self) -> None:
        """Drop a replan asked for or deferred."""
        if self._unsub_deferred is not None:
            self._unsub_deferred()
            self._unsub_deferred = None
        self._debouncer.async_shutdown()

    async def _async_run(self) -> None:
        """Replan now, unless the rate limit says to wait or the owner is not ready."""
        now = dt_util.utcnow()
        if self._last is not None and now < self._last + AUTO_MIN_INTERVAL:
            if self._unsub_deferred is None:
                self._unsub_deferred = async_track_point_in_utc_time(
                    self._hass, self._handle_deferred, self._last + AUTO_MIN_INTERVAL
                )
            return
        if not self._ready():
            return
        self._last = now
        try:
            request = self._build()
        except ServiceValidationError as err:
            self._failed(", ".join((err.translation_placeholders or {}).values()))
            return
        LOGGER.debug("Replanning %s", self._name)
        try:
            await self._schedule(request)
        except HomeAssistantError:
            return  # recorded in the status already

    @callback
    def _handle_deferred(self, _now: datetime) -> None:
        """Run a replan the rate limit held back."""
        self._unsub_deferred = None
        self._entry.async_create_background_task(
            self._hass, self._async_run(), f"{DOMAIN} replan {self._name}"
        )


class Replanner:
    """Asks a device's scheduler for a round when its automatic triggers fire.

    The triggers are an interval, chosen entities changing state and the state
    of charge drifting from the plan; the replan keeps the targets still ahead.
    """

    def __init__(self, scheduler: DeviceScheduler) -> None:
        """Initialize; async_start sets up the triggers the device asks for."""
        self._scheduler = scheduler
        self._unsubs: list[CALLBACK_TYPE] = []
        self._trigger: ReplanTrigger[ScheduleRequest] | None = None

    @callback
    def async_start(self) -> None:
        """Set up the device's triggers, if it replans automatically."""
        scheduler = self._scheduler
        hass, config = scheduler.hass, scheduler.config
        auto = config.auto
        if not auto.enabled:
            return
        self._trigger = ReplanTrigger(
            hass,
            scheduler.entry,
            config.name,
            ready=self._ready,
            build=lambda: scheduler.build_request(soc_targets=self.remaining_targets()),
            schedule=partial(scheduler.async_schedule, wait=False),
            failed=partial(scheduler.record_failure, FailureReason.SOC_UNAVAILABLE),
        )
        if auto.interval:
            self._unsubs.append(
                async_track_time_interval(
                    hass,
                    self._handle_interval,
                    auto.interval,
                    name=f"{DOMAIN} replan {config.name}",
                )
            )
        if auto.soc_drift:
            self._unsubs.append(
                async_track_state_change_event(
                    hass, config.soc_entity_id, self._handle_soc_change
                )
            )
        if auto.entities:
            self._unsubs.append(
                async_track_state_change_event(
                    hass, list(auto.entities), self._handle_entity_change
                )
            )

    @callback
    def async_stop(self) -> None:
        """Remove the triggers and a deferred replan."""
        for unsub in self._unsubs:
            unsub()
        self._unsubs.clear()
        if self._trigger is not None:
            self._trigger.async_stop()

    def remaining_targets(self) -> list[tuple[datetime, float]]:
        """Return the last request's targets still ahead, in the device's unit."""
        scheduler = self._scheduler
        config = scheduler.config
        if scheduler.last_request is not None:
            targets = scheduler.last_request.targets
        elif scheduler.schedule is not None:
            targets = scheduler.schedule.targets
        else:
            return []
        now = dt_util.utcnow()
        end = slot_start(now, config.resolution) + config.horizon
        return [
            (target.at, config.from_kwh(target.kwh))
            for target in targets
            if now < target.at <= end
        ]

    @callback
    def _handle_interval(self, now: datetime) -> None:
        """Replan periodically."""
        self._request()

    @callback
    def _handle_entity_change(self, event: Event[EventStateChangedData]) -> None:
        """Replan when a chosen entity changes state (not just attributes)."""
        old, new = event.data["old_state"], event.data["new_state"]
        if new is None or new.state in (STATE_UNAVAILABLE, STATE_UNKNOWN):
            return
        if old is not None and old.state == new.state:
            return
        self._request()

    @callback
    def _handle_soc_change(self, event: Event[EventStateChangedData]) -> None:
        """Replan when the SoC drifts too far from the plan."""
        scheduler = self._scheduler
        config, schedule = scheduler.config, scheduler.schedule
        drift = config.auto.soc_drift
        if schedule is None or drift is None or scheduler.busy:
            return
        planned = schedule.soc_at(dt_util.utcnow())
        if planned is None:
            return
        try:
            actual = read_soc_kwh(scheduler.hass, config)
        except ServiceValidationError:
            return
        difference = abs(config.from_kwh(actual) - config.from_kwh(planned))
        if difference > drift:
            LOGGER.debug(
                "%s: SoC %.2f kWh drifted from plan %.2f kWh",
                config.name,
                actual,
                planned,
            )
            self._request()

    @callback
    def _request(self) -> None:
        """Ask for an automatic replan; merged over the debounce window."""
        if self._trigger is not None:
            self._trigger.request()

    def _ready(self) -> bool:
        """Return whether to replan now (not while waiting for the server)."""
        scheduler = self._scheduler
        if scheduler.waiting_for_server:
            # The round that lost the server is taken up when it answers.
            LOGGER.debug(
                "Not replanning %s while waiting for the server", scheduler.name
            )
            return False
        return True
