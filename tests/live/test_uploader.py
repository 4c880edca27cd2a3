"""Measurement uploads (issue 5) against the real server: 20 links, an outage."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
import random

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures.aggregation import Aggregation
from custom_components.flexmeasures.const import (
    CONF_SENSOR_ID,
    DOMAIN,
    SUBENTRY_MEASUREMENT_LINK,
)
from custom_components.flexmeasures.data import FlexMeasuresConfigEntry
from tests.series import aggregate

from .conftest import LiveServer, follow_ingestion, stored_values
from .proxy import FaultProxy

LINKS = 20
STEP = timedelta(minutes=1)  # the new sensors' resolution
KW = {"unit_of_measurement": "kW"}
MAX_RECOVERY_MINUTES = 10  # backoff after a few failures stays below this


async def _at(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, when: datetime
) -> None:
    """Move the clock to ``when``."""
    await hass.async_block_till_done()
    freezer.move_to(when)


async def _flush(hass: HomeAssistant, entry: FlexMeasuresConfigEntry) -> None:
    """Send what is due now, as the upload timer does, until it is stored."""
    await entry.runtime_data.uploader.async_flush()
    await follow_ingestion(entry)
    await hass.async_block_till_done()


async def _link(
    hass: HomeAssistant,
    entry: FlexMeasuresConfigEntry,
    entity_id: str,
    site_id: int,
    name: str,
) -> int:
    """Link an entity to the site's 1-minute kW sensor ``name`` via the subentry flow.

    The first run creates the sensor in the flow's new-sensor step; later runs
    pick it, so the seeded site does not grow with every run (FlexMeasures 1.0.1
    cannot delete a sensor on this PostgreSQL: its query fails with HTTP 500).
    """
    inventory = entry.runtime_data.inventory.data
    existing = next(
        (
            sensor.id
            for sensor in inventory.sensors.values()
            if sensor.name == name and sensor.asset_id == site_id
        ),
        None,
    )
    flows = hass.config_entries.subentries
    result = await flows.async_init(
        (entry.entry_id, SUBENTRY_MEASUREMENT_LINK), context={"source": SOURCE_USER}
    )
    result = await flows.async_configure(result["flow_id"], {"entity_id": entity_id})
    assert result["step_id"] == "sensor"
    result = await flows.async_configure(
        result["flow_id"],
        {
            "sensor": "new" if existing is None else str(existing),
            "invert": False,
            "aggregation": Aggregation.MEAN.value,
            "upload_interval": {"hours": 0, "minutes": 1, "seconds": 0},
        },
    )
    if existing is None:
        assert result["step_id"] == "new_sensor"
        result = await flows.async_configure(
            result["flow_id"],
            {
                "asset": str(site_id),
                "name": name,
                "unit_of_measurement": "kW",
                "resolution": {"hours": 0, "minutes": 1, "seconds": 0},
            },
        )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    assert result["data"]["sensor_resolution"] == STEP.total_seconds()
    return int(result["data"][CONF_SENSOR_ID])


async def test_twenty_links_survive_an_outage_and_a_reload(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    live_server: LiveServer,
    proxy: FaultProxy,
    posts: list[tuple[int, datetime, int]],
) -> None:
    """Every complete slot arrives once, with the right mean, across both."""
    # Two hours ago, on a whole minute: complete slots fill quickly in frozen time.
    begin = dt_util.utcnow().replace(second=0, microsecond=0) - timedelta(hours=2)
    freezer.move_to(begin)
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Home (proxy)",
        unique_id=live_server.unique_id,
        data={**live_server.entry_data(), CONF_URL: proxy.url},
        version=1,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED

    entities = [f"sensor.live_meter_{index:02}" for index in range(LINKS)]
    points: dict[str, list[tuple[float, float | None]]] = defaultdict(list)

    # Values unique to the run: a rerun writes newer beliefs into the same sensors.
    offset = round(random.uniform(0.5, 1.5), 3)  # noqa: S311

    def set_all(minute: int) -> None:
        """Give every entity a new value now, different per entity and minute."""
        now = dt_util.utcnow().timestamp()
        for index, entity_id in enumerate(entities):
            value = round(offset + index * 0.25 + (minute * 7 + index) % 5 * 0.5, 3)
            hass.states.async_set(entity_id, str(value), KW)
            points[entity_id].append((now, value))

    set_all(0)
    sensor_of: dict[str, int] = {}
    for index, entity_id in enumerate(entities):
        sensor_of[entity_id] = await _link(
            hass, entry, entity_id, live_server.assets["site"], f"Live meter {index:02}"
        )
    await hass.async_block_till_done()
    uploader = entry.runtime_data.uploader
    assert len(uploader.links) == LINKS

    # Up: three minutes of changes at 20 s past each minute, sent each minute.
    minute = 0
    for minute in range(1, 4):
        await _at(hass, freezer, begin + minute * STEP + timedelta(seconds=20))
        set_all(minute)
        await _flush(hass, entry)
    assert not uploader.server_down
    assert uploader.pending_count == 0
    sent_before_outage = len(posts)
    assert sent_before_outage >= LINKS

    # Down for four upload intervals: nothing is lost, the queue grows.
    await proxy.down()
    pending: list[int] = []
    for minute in range(4, 8):
        await _at(hass, freezer, begin + minute * STEP + timedelta(seconds=20))
        set_all(minute)
        await _flush(hass, entry)
        assert uploader.server_down
        pending.append(uploader.pending_count)
    assert len(posts) == sent_before_outage
    assert pending == sorted(pending)
    assert pending[-1] >= 4 * LINKS

    # Back: the backlog goes out once the backoff allows it.
    await proxy.up()
    for _ in range(MAX_RECOVERY_MINUTES):
        minute += 1
        await _at(hass, freezer, begin + minute * STEP + timedelta(seconds=20))
        set_all(minute)
        await _flush(hass, entry)
        if not uploader.server_down:
            break
    assert not uploader.server_down
    assert uploader.pending_count == 0

    # A backlog across a reload: queued while down, sent by the reloaded entry.
    await proxy.down()
    for _ in range(2):
        minute += 1
        await _at(hass, freezer, begin + minute * STEP + timedelta(seconds=20))
        set_all(minute)
        await _flush(hass, entry)
    backlog = uploader.pending_count
    assert backlog >= 2 * LINKS
    await proxy.up()
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    uploader = entry.runtime_data.uploader
    assert uploader.pending_count >= backlog
    minute += 2
    end = begin + minute * STEP + timedelta(seconds=20)
    await _at(hass, freezer, end)
    await _flush(hass, entry)
    assert not uploader.server_down
    assert uploader.pending_count == 0

    # Each complete slot was posted exactly once per link: one POST per successful
    # round (three before the outage, the backlog after it, the backlog after the
    # reload), every slot in exactly one of them...
    api = entry.runtime_data.api
    assert Counter(sensor_id for sensor_id, _, _ in posts) == dict.fromkeys(
        sensor_of.values(), 5
    )
    slots_sent: dict[int, Counter[datetime]] = defaultdict(Counter)
    for sensor_id, start, count in posts:
        for index in range(count):
            slots_sent[sensor_id][start + index * STEP] += 1
    for entity_id, sensor_id in sensor_of.items():
        expected = {
            datetime.fromtimestamp(slot, UTC): value
            for slot, value in aggregate(
                Aggregation.MEAN,
                int(STEP.total_seconds()),
                points[entity_id],
                end.timestamp(),
            )
        }
        # One slot per minute from the first state on: no gap, none missing.
        assert len(expected) == minute, entity_id
        assert set(slots_sent[sensor_id]) == set(expected), entity_id
        assert set(slots_sent[sensor_id].values()) == {1}, entity_id
        # ... and the server holds exactly those values at those times.
        stored = await stored_values(
            api, sensor_id, min(expected), max(expected) + STEP, STEP
        )
        assert stored == pytest.approx(expected), entity_id
