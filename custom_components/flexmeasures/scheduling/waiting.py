"""Following a device's FlexMeasures jobs to their end, learning how long they run."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from functools import partial
from http import HTTPStatus
import time
from typing import Any, Final

from homeassistant.core import HomeAssistant

from ..api import (
    FlexMeasuresApi,
    FlexMeasuresError,
    FlexMeasuresHttpStatusError,
    FlexMeasuresRejectedError,
)
from ..const import CONF_USE_FALLBACK_PLANS, DEFAULT_USE_FALLBACK_PLANS, DOMAIN, LOGGER
from ..data import ErrorKind, FlexMeasuresConfigEntry, error_kind, translated_error
from .jobs import (
    JOB_FAILED,
    JOB_FINISHED,
    JOB_UNSUCCESSFUL,
    ScheduleFailedError,
    job_failure,
    job_status,
    poll_delays,
)
from .model import FailureReason

# How long a job may run before its round fails with a timeout.
JOB_TIMEOUT: Final = 120.0
# The weight of the newest job in the learned duration and spread (moving averages).
LEARNING_WEIGHT: Final = 0.25

# The reasons of failed rounds the server's errors give; others communication.
_FAILURE_REASONS: Final = {
    ErrorKind.AUTHENTICATION: FailureReason.AUTHENTICATION_FAILED,
    ErrorKind.REJECTED: FailureReason.REJECTED,
}


class JobWaiter:
    """Waits for one planner's jobs: adaptive polls, learned durations, fallbacks.

    The planner is a device (its own jobs) or a site (its asset-level jobs);
    ``sensor_id`` is the power sensor whose schedule tells a fallback job.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        entry: FlexMeasuresConfigEntry,
        api: FlexMeasuresApi,
        *,
        name: str,
        sensor_id: int,
    ) -> None:
        """Initialize without a learned job duration."""
        self.hass = hass
        self.entry = entry
        self.api = api
        self.name = name
        self.sensor_id = sensor_id
        # Learned from finished jobs (their mean, and mean deviation from it);
        # kept across restarts.
        self.seconds_per_slot: float | None = None
        self.spread_per_slot: float | None = None

    def map_error(self, err: FlexMeasuresError) -> ScheduleFailedError:
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

    def expected_seconds(self, slots: int) -> float | None:
        """Return how long a job of ``slots`` slots is expected to run."""
        if self.seconds_per_slot is None:
            return None
        return self.seconds_per_slot * slots

    def expected_spread(self, slots: int) -> float | None:
        """Return by how much such a job's duration is expected to deviate."""
        if self.spread_per_slot is None:
            return None
        return self.spread_per_slot * slots

    def learn(
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
        previous = self.seconds_per_slot
        if previous is None:
            self.seconds_per_slot = per_slot
            return
        deviation = abs(per_slot - previous)
        spread = deviation if self.spread_per_slot is None else self.spread_per_slot
        self.spread_per_slot = spread + LEARNING_WEIGHT * (deviation - spread)
        self.seconds_per_slot = previous + LEARNING_WEIGHT * (per_slot - previous)

    async def async_follow(
        self, job_id: str, slots: int, *, resumed: bool = False
    ) -> tuple[Mapping[str, Any], str, str | None]:
        """Wait for a job, or for FlexMeasures' fallback job if it failed.

        Return the finished job's status document, its id and, for a fallback
        plan, why the scheduler failed.
        """
        job = await self.async_wait(job_id, slots, resumed=resumed)
        if job_status(job) != JOB_FAILED:
            return job, job_id, None
        reason, job_id = await self._async_fallback_job(job, job_id)
        job = await self.async_wait(job_id, slots, resumed=True)
        if job_status(job) == JOB_FAILED:
            raise job_failure(job)
        return job, job_id, reason

    async def async_wait(
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
        expected = None if resumed else self.expected_seconds(slots)
        for delay in poll_delays(expected, self.expected_spread(slots)):
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
                    raise self.map_error(err) from err
                # The server lost the job (its queue was emptied, or it expired).
                raise ScheduleFailedError(
                    FailureReason.JOB_FAILED,
                    translation_domain=DOMAIN,
                    translation_key="schedule_job_failed",
                    translation_placeholders={"error": str(err)},
                ) from err
            except FlexMeasuresError as err:
                raise self.map_error(err) from err
            status = job_status(job)
            if status == JOB_FINISHED:
                if not resumed:
                    self.learn(job, time.monotonic() - started, delay, slots)
                return job
            if status == JOB_FAILED:
                return job
            if status in JOB_UNSUCCESSFUL:
                raise job_failure(job)
        raise AssertionError("unreachable")  # pragma: no cover

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
                sensor_id=self.sensor_id, job_id=job_id
            )
        except FlexMeasuresRejectedError as err:
            raise failure from err
        except FlexMeasuresError as err:
            raise self.map_error(err) from err
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
