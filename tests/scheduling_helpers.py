"""What the scheduling tests share: the frozen moment and moving time on.

Devices (test_scheduling, test_replan, test_rounds) and sites (test_sites)
are planned from the same moment and run their timers the same way.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import async_fire_time_changed

# Every scheduling test starts at NOW; plans start at the slot it is in.
NOW = datetime.fromisoformat("2026-11-20T10:05:00+00:00")
START = datetime.fromisoformat("2026-11-20T10:00:00+00:00")


async def advance(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    delta: timedelta,
    *,
    background: bool = True,
) -> None:
    """Let pending state changes land, move time on and run what was due.

    With ``background`` also wait for the rounds that started; without it a
    round held by the fake server is left running.
    """
    await hass.async_block_till_done()
    freezer.tick(delta)
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=background)
