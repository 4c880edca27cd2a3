"""Waiting for FlexMeasures jobs: the polling plan and what a job's status means."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from homeassistant.exceptions import HomeAssistantError

from ..const import DOMAIN
from .model import FailureReason

# Job polling: the first look-up after POLL_FIRST s, doubling to POLL_MAX s. Once
# job durations have been learned (their mean and spread), one wait until the
# window of likely ends, POLL_WINDOW_POLLS look-ups across it (POLL_FINE_MIN to
# POLL_FINE_MAX s apart), then waits growing by POLL_GROWTH. Bounded by JOB_TIMEOUT.
POLL_FIRST: Final = 0.1
POLL_MAX: Final = 2.0
POLL_FINE_MIN: Final = 0.1
POLL_FINE_MAX: Final = 0.25
POLL_WINDOW_POLLS: Final = 8
# The window's half-width: this many mean deviations, at least POLL_WINDOW_MIN s.
POLL_WINDOW_SPREADS: Final = 1.5
POLL_WINDOW_MIN: Final = 0.15
# Without a learned spread, it is taken as this share of the expected duration.
POLL_SPREAD_SHARE: Final = 0.1
POLL_GROWTH: Final = 1.5


JOB_FINISHED: Final = "FINISHED"
JOB_FAILED: Final = "FAILED"
JOB_UNSUCCESSFUL: Final = frozenset({"FAILED", "STOPPED", "CANCELED"})


def poll_delays(expected: float | None, spread: float | None = None) -> Iterator[float]:
    """Yield the waits (s) before successive job-status look-ups.

    ``expected`` is the learned job duration, ``spread`` the learned mean
    deviation from it. Without a learned duration: POLL_FIRST, doubling up to
    POLL_MAX. With one: a single wait until the window of likely ends, a few
    evenly spaced look-ups across it, then growing waits. The lag after a job
    ends stays small without flooding the server while it runs.
    """
    if expected is None or expected <= 0:
        interval = POLL_FIRST
        yield interval
        while True:
            interval = min(interval * 2, POLL_MAX)
            yield interval
    if spread is None:
        spread = POLL_SPREAD_SHARE * expected
    half = max(POLL_WINDOW_MIN, POLL_WINDOW_SPREADS * spread)
    step = min(max(2 * half / POLL_WINDOW_POLLS, POLL_FINE_MIN), POLL_FINE_MAX)
    elapsed = max(POLL_FIRST, expected - half)
    yield elapsed
    while elapsed < expected + half:
        yield step
        elapsed += step
    interval = step
    while True:
        interval = min(interval * POLL_GROWTH, POLL_MAX)
        yield interval


class ScheduleFailedError(HomeAssistantError):
    """A scheduling round failed on the server side; carries the reason."""

    def __init__(self, reason: FailureReason, **kwargs: Any) -> None:
        """Remember why, for the status entity."""
        super().__init__(**kwargs)
        self.reason = reason


def failure_message(err: HomeAssistantError, reason: FailureReason) -> str:
    """Return what a failed round's status says: the server's error, or why."""
    return (err.translation_placeholders or {}).get("error") or reason.value


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
