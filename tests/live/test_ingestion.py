"""Uploads against both FlexMeasures 1.0 deployments, and across a frozen server.

The live stage runs these with an ingestion worker on the server (POSTs answer
202 and a job stores the values) and again without one (200, stored at once);
``FLEXMEASURES_SERVER_INGESTION`` says which. A frozen web server (SIGSTOP)
accepts connections and answers nothing: the uploader's requests time out, yet
the server processes them once thawed, and the uploader sends the same slots
again. Each slot's belief time is fixed by the slot, so the replay overwrites:
the database holds one row per slot, with the right value.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
import os
import random
import time
from typing import Final
from unittest.mock import patch

from freezegun import freeze_time
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures.aggregation import Aggregation
from custom_components.flexmeasures.api import FlexMeasuresApi
from custom_components.flexmeasures.const import DOMAIN
from tests.series import aggregate

from .conftest import LiveServer, follow_ingestion
from .server_control import server_control
from .test_uploader import KW, STEP, _link

LINKS: Final = 5
FROZEN_ROUNDS: Final = 3
TIMEOUT: Final = 1.0  # seconds per attempt here (api.py: REQUEST_TIMEOUT = 10)
BUDGET: Final = 2.0  # seconds per call here (api.py: REQUEST_RETRY_BUDGET = 20)
LEASE: Final = 120.0  # the agent thaws the server by itself after this
INGESTION: Final = os.environ.get("FLEXMEASURES_SERVER_INGESTION", "on") != "off"


@contextmanager
def _short_waits() -> Iterator[None]:
    """Let requests to a frozen server time out in seconds (same code paths)."""
    with (
        patch.dict(
            FlexMeasuresApi.__init__.__kwdefaults__, {"request_timeout": TIMEOUT}
        ),
        patch("custom_components.flexmeasures.api.REQUEST_RETRY_BUDGET", BUDGET),
    ):
        yield


async def _control(hass: HomeAssistant, command: str, *args: str) -> str:
    """Run a server script command on the host through the control agent."""
    result = await hass.async_add_executor_job(
        partial(server_control().run, command, *args, lease=LEASE)
    )
    return result.output


async def test_post_answer_matches_the_deployment(
    hass: HomeAssistant, live_server: LiveServer
) -> None:
    """With an ingestion worker a POST names a job; without, it is stored at once."""
    entry = MockConfigEntry(
        domain=DOMAIN, unique_id=live_server.unique_id, data=live_server.entry_data()
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    hass.states.async_set("sensor.ingestion_probe", "1.5", KW)
    sensor_id = await _link(
        hass, entry, "sensor.ingestion_probe", live_server.assets["site"], "Probe"
    )
    start = dt_util.utcnow().replace(second=0, microsecond=0) - timedelta(hours=5)
    job = await entry.runtime_data.api.async_post_sensor_data(
        sensor_id, start=start, resolution=STEP, values=[1.5], unit="kW"
    )
    assert (job is not None) is INGESTION
    if job is not None:
        for _ in range(100):
            status = (await entry.runtime_data.api.async_get_job_status(job))["status"]
            if status not in {"QUEUED", "STARTED"}:
                break
            await hass.async_add_executor_job(time.sleep, 0.1)
        assert status == "FINISHED"


async def test_replays_after_a_freeze_store_each_slot_once(
    hass: HomeAssistant, live_server: LiveServer
) -> None:
    """Uploads time out against a frozen server; after the thaw, one row per slot."""
    begin = dt_util.utcnow().replace(second=0, microsecond=0) - timedelta(hours=4)
    begin += random.randrange(60) * STEP  # noqa: S311 - a stretch of its own per run
    offset = round(random.uniform(0.5, 1.5), 3)  # noqa: S311
    await _control(hass, "restore")
    with _short_waits(), freeze_time(begin + timedelta(seconds=5), tick=True) as clock:
        entry = MockConfigEntry(
            domain=DOMAIN,
            unique_id=live_server.unique_id,
            data=live_server.entry_data(),
        )
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        uploader = entry.runtime_data.uploader
        entities = [f"sensor.ingestion_meter_{index}" for index in range(LINKS)]
        points: dict[str, list[tuple[float, float | None]]] = {e: [] for e in entities}
        minute = 0

        def set_all() -> None:
            for index, entity_id in enumerate(entities):
                value = round(offset + index + (minute * 3 + index) % 4 * 0.5, 3)
                hass.states.async_set(entity_id, str(value), KW)
                # The clock ticks: the state's own time is what the uploader uses.
                state = hass.states.get(entity_id)
                assert state is not None
                points[entity_id].append((state.last_updated_timestamp, value))

        set_all()
        sensor_of = {
            entity_id: await _link(
                hass,
                entry,
                entity_id,
                live_server.assets["site"],
                f"Ingestion meter {index}",
            )
            for index, entity_id in enumerate(entities)
        }
        await hass.async_block_till_done()

        async def next_minute() -> None:
            nonlocal minute
            minute += 1
            # A second later each minute: the clock ticks, and the link is due
            # 60 s after its last flush began, a moment after the previous move.
            clock.move_to(begin + minute * STEP + timedelta(seconds=20 + minute))
            set_all()
            await uploader.async_flush()
            await follow_ingestion(entry)

        for _ in range(2):
            await next_minute()
        assert (uploader.pending_count, uploader.server_down) == (0, False)

        # Frozen: every attempt times out, and the server holds the requests.
        await _control(hass, "freeze-web")
        try:
            for _ in range(FROZEN_ROUNDS):
                await next_minute()  # the backoff (30 s, 60 s) lets each one try
                assert uploader.server_down
        finally:
            await _control(hass, "thaw-web")
        for _ in range(10):
            await next_minute()
            if not uploader.server_down and uploader.pending_count == 0:
                break
        assert (uploader.pending_count, uploader.server_down) == (0, False)
        assert await hass.config_entries.async_unload(entry.entry_id)

    # One row per slot in the database, with the mean of that minute.
    end = (begin + minute * STEP + timedelta(seconds=20 + minute)).timestamp()
    output = await _control(
        hass, "beliefs", str(begin.timestamp()), *map(str, sensor_of.values())
    )
    rows: dict[int, dict[datetime, tuple[int, float]]] = {}
    for line in output.splitlines():
        sensor, epoch, count, value = line.split("\t")
        start = datetime.fromtimestamp(int(epoch), UTC)
        if begin <= start < begin + minute * STEP:
            rows.setdefault(int(sensor), {})[start] = (int(count), float(value))
    for entity_id, sensor_id in sensor_of.items():
        expected = {
            datetime.fromtimestamp(slot, UTC): value
            for slot, value in aggregate(
                Aggregation.MEAN, int(STEP.total_seconds()), points[entity_id], end
            )
        }
        assert len(expected) == minute, entity_id
        assert set(rows[sensor_id]) == set(expected), entity_id
        assert {count for count, _ in rows[sensor_id].values()} == {1}, entity_id
        stored = {start: value for start, (_, value) in rows[sensor_id].items()}
        # (the database keeps single precision: 7 digits)
        assert stored == pytest.approx(expected, rel=1e-5), entity_id
