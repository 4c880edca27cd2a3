"""Waiting for FlexMeasures jobs: the polling plan and what a job's status means."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from homeassistant.exceptions import HomeAssistantError

from ..const import DOMAIN
from .model import FailureReason

# Job polling: the first look-up after POLL_FIRST s, doubling to POLL_MAX s; once
# a job duration has been learned, sparse until shortly before the expected end,
# then every POLL_FINE s around it. Bounded by JOB_TIMEOUT.
POLL_FIRST: Final = 0.1
POLL_FINE: Final = 0.2
POLL_MAX: Final = 2.0


JOB_FINISHED: Final = "FINISHED"
JOB_FAILED: Final = "FAILED"
JOB_UNSUCCESSFUL: Final = frozenset({"FAILED", "STOPPED", "CANCELED"})


def poll_delays(expected: float | None) -> Iterator[float]:
    """Yield the waits (s) before successive job-status look-ups.

    Without a learned job duration: 0.1 s, doubling up to POLL_MAX. With one: one
    wait until shortly before the expected end, then POLL_FINE steps until shortly
    after it, then doubling again. This keeps the lag after the job ends small
    without flooding the server during the run.
    """
    interval = POLL_FIRST
    if expected is not None and expected > 0:
        margin = 0.25 + 0.1 * expected
        first = max(POLL_FIRST, expected - margin)
        yield first
        elapsed = first
        while elapsed < expected + margin:
            yield POLL_FINE
            elapsed += POLL_FINE
        interval = POLL_FINE
    else:
        yield interval
    while True:
        interval = min(interval * 2, POLL_MAX)
        yield interval


class ScheduleFailedError(HomeAssistantError):
    """A scheduling round failed on the server side; carries the reason."""

    def __init__(self, reason: FailureReason, **kwargs: Any) -> None:
        """Remember why, for the status entity."""
        super().__init__(**kwargs)
        self.reason = reason


def job_status(job: Mapping[str, Any]) -> str:
    """Return a job status document's status, upper case."""
    return str(job.get("status", "")).upper()


def job_failure(job: Mapping[str, Any]) -> ScheduleFailedError:
    """Return the error of a job that ended without finishing."""
    return ScheduleFailedError(
        FailureReason.JOB_FAILED,
        translation_domain=DOMAIN,
        translation_key="schedule_job_failed",
        translation_placeholders={"error": str(job.get("message") or job_status(job))},
    )
