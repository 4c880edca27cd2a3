"""Tests for scheduling rounds and taking one up again after an outage."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest

from custom_components.flexmeasures.scheduling import (
    RETRY_FIRST,
    RETRY_MAX,
    ScheduleRequest,
)
from custom_components.flexmeasures.scheduling.rounds import Round, RoundRetry

from .scheduling_helpers import NOW, advance


def _request(duration: timedelta) -> ScheduleRequest:
    """Return a request from NOW that lasts ``duration``."""
    return ScheduleRequest(
        start=NOW,
        duration=duration,
        soc_at_start_kwh=5.0,
        soc_min_kwh=1.0,
        soc_max_kwh=9.0,
        charge_power_kw=5.0,
        discharge_power_kw=5.0,
    )


class _Runner:
    """Records when a retry tried and what it started; busy while told to be."""

    def __init__(self) -> None:
        """Start idle, with nothing tried."""
        self.busy = False
        self.tries: list[datetime] = []
        self.started: list[Round] = []

    def is_busy(self) -> bool:
        """Record a try."""
        self.tries.append(dt_util.utcnow())
        return self.busy

    def start(self, round_: Round) -> None:
        """Record a started round."""
        self.started.append(round_)


@pytest.fixture
def runner(freezer: FrozenDateTimeFactory) -> _Runner:
    """Return an idle runner, at NOW."""
    freezer.move_to(NOW)
    return _Runner()


@pytest.fixture
def retry(hass: HomeAssistant, runner: _Runner) -> RoundRetry:
    """Return a retry that tries and starts rounds on ``runner``."""
    return RoundRetry(hass, busy=runner.is_busy, start=runner.start)


async def test_retry_backs_off_while_busy_and_repeats_the_round(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    runner: _Runner,
    retry: RoundRetry,
) -> None:
    """Busy tries double the wait up to RETRY_MAX; the repeat keeps the job."""
    lost = Round.create(hass, _request(timedelta(days=1)))
    lost.sent_at, lost.job_id = NOW, "job-1"
    runner.busy = True
    retry.later(lost)
    # Five-second steps land on every try (all multiples of RETRY_FIRST).
    while len(runner.tries) < 6:
        await advance(hass, freezer, timedelta(seconds=5))
    assert retry.round is lost
    assert runner.started == []
    waits = [
        (later - earlier).total_seconds()
        for earlier, later in pairwise([NOW, *runner.tries])
    ]
    assert waits == [RETRY_FIRST * 2**n for n in range(5)] + [RETRY_MAX]
    # Idle at last: the round is repeated.
    runner.busy = False
    await advance(hass, freezer, timedelta(seconds=RETRY_MAX))
    assert len(runner.started) == 1
    again = runner.started[0]
    assert again is not lost
    assert retry.round is again
    assert (again.request, again.sent_at, again.job_id) == (
        lost.request,
        NOW,
        "job-1",
    )


@pytest.mark.parametrize("how", ["cancel", "stop"])
async def test_retry_cancelled_or_stopped_starts_nothing(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    runner: _Runner,
    retry: RoundRetry,
    how: str,
) -> None:
    """A cancelled retry forgets its round; a stopped one keeps it, untimed."""
    lost = Round.create(hass, _request(timedelta(days=1)))
    retry.later(lost)
    if how == "cancel":
        retry.cancel()
        assert retry.round is None
    else:
        retry.async_stop()
        assert retry.round is lost
    await advance(hass, freezer, timedelta(seconds=RETRY_MAX))
    assert runner.started == []


async def test_retry_ends_with_the_plan(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    runner: _Runner,
    retry: RoundRetry,
) -> None:
    """A round whose plan would be over by the next try is forgotten."""
    lost = Round.create(hass, _request(timedelta(minutes=15)))
    retry.later(lost)
    freezer.tick(timedelta(minutes=15))
    retry.later(lost)
    assert retry.round is None
    await advance(hass, freezer, timedelta(seconds=RETRY_MAX))
    assert runner.started == []
