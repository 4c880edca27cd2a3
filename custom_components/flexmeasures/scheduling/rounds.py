"""Scheduling rounds: one job and who waits for it, taken up again after an outage.

A device's rounds and a site's asset-level rounds alike: who waits for a
round (``RoundWaiters``) and how long an action waits for its plans.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.event import async_call_later
from homeassistant.util import dt as dt_util

from ..const import DOMAIN
from .model import PendingJob, Schedule, ScheduleRequest

# How long an action with a requested response waits for the plans.
RESPONSE_TIMEOUT: Final = 60.0

# A round that lost the server is taken up again once it answers: first after
# RETRY_FIRST s, doubling to RETRY_MAX s, until its plan would have ended.
RETRY_FIRST: Final = 15.0
RETRY_MAX: Final = 300.0


def consume(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen; waiters get it anyway."""
    if not future.cancelled():
        future.exception()


def new_future(hass: HomeAssistant) -> asyncio.Future[Any]:
    """Return a future whose exception counts as seen (waiters get it anyway)."""
    future: asyncio.Future[Any] = hass.loop.create_future()
    future.add_done_callback(consume)
    return future


@dataclass(eq=False, kw_only=True)
class RoundWaiters[T]:
    """Who waits for a round: for its job to be queued, and for its plans."""

    queued: asyncio.Future[str]
    done: asyncio.Future[T]

    async def async_wait(self, *, wait: bool) -> T | None:
        """Return once the job is queued; with ``wait``, its plans (bounded).

        Raise a translated HomeAssistantError when the round fails or the
        plans take longer than RESPONSE_TIMEOUT.
        """
        if not wait:
            await asyncio.shield(self.queued)
            return None
        try:
            async with asyncio.timeout(RESPONSE_TIMEOUT):
                return await asyncio.shield(self.done)
        except TimeoutError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="schedule_timeout",
                translation_placeholders={"seconds": str(int(RESPONSE_TIMEOUT))},
            ) from err

    @callback
    def fail(self, err: HomeAssistantError) -> None:
        """Hand ``err`` to whoever still waits."""
        for future in (self.queued, self.done):
            if not future.done():
                future.set_exception(err)

    @callback
    def cancel(self) -> None:
        """Cancel what still waits (the round was cancelled)."""
        for future in (self.queued, self.done):
            if not future.done():
                future.cancel()


@dataclass(eq=False, kw_only=True)
class Round(RoundWaiters[Schedule]):
    """One scheduling job: what was asked and who waits for it."""

    request: ScheduleRequest
    superseded: list[Round] = field(default_factory=list)
    # A job queued before a restart, to pick up rather than trigger anew.
    resume: PendingJob | None = None
    # The moment sent with the trigger: a repeat with the same moment is the same
    # request, which the server answers with the job it already made for it.
    sent_at: datetime | None = None
    # The job the server made for this round, once known.
    job_id: str | None = None

    @classmethod
    def create(cls, hass: HomeAssistant, request: ScheduleRequest) -> Round:
        """Create a round with its two futures."""
        return cls(request=request, queued=new_future(hass), done=new_future(hass))

    def all(self) -> list[Round]:
        """Return this round and those it replaced."""
        return [self, *self.superseded]


class RoundRetry:
    """Takes a round that lost the server up again later, while it matters.

    The trigger may have reached the server even though no answer came back:
    the retry repeats it unchanged (the server answers with the job it made)
    or follows the job already known, so the outage leaves no orphan job.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        *,
        busy: Callable[[], bool],
        start: Callable[[Round], None],
    ) -> None:
        """Initialize; ``start`` runs a round when ``busy`` says none runs."""
        self.hass = hass
        self._busy = busy
        self._start = start
        # The round waiting for the server, and the wait before its next try.
        self.round: Round | None = None
        self._delay = RETRY_FIRST
        self._unsub: CALLBACK_TYPE | None = None

    @callback
    def later(self, round_: Round) -> None:
        """Try ``round_`` again after a backed-off wait, unless its plan ended."""
        if dt_util.utcnow() >= round_.request.end:
            self.cancel()
            return
        if self.round is not round_:
            self._delay = RETRY_FIRST
        else:
            self._delay = min(self._delay * 2, RETRY_MAX)
        self.round = round_
        if self._unsub is not None:
            self._unsub()
        self._unsub = async_call_later(self.hass, self._delay, self._handle)

    @callback
    def cancel(self) -> None:
        """Forget a round waiting for the server."""
        self.round = None
        self._delay = RETRY_FIRST
        self.async_stop()

    @callback
    def async_stop(self) -> None:
        """Stop the timer of the next try."""
        if self._unsub is not None:
            self._unsub()
            self._unsub = None

    @callback
    def _handle(self, _now: datetime) -> None:
        """Take the waiting round up again, unless another one is running."""
        self._unsub = None
        if (waiting := self.round) is None:
            return
        if self._busy():
            self.later(waiting)
            return
        again = Round.create(self.hass, waiting.request)
        again.sent_at, again.job_id = waiting.sent_at, waiting.job_id
        self.round = again
        self._start(again)
