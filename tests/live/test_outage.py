"""Reliability against the real server: it stops, comes back, changes a password.

50 entities are linked to their own 1-minute sensors on the live server and change
every minute. Mid-run, the server's control agent (see ``server_control``) really
stops the FlexMeasures web server and worker, or PostgreSQL, for five upload
intervals, or changes the account's password. Home Assistant's clock is frozen and
moved a minute at a time, so many intervals pass in a few real seconds; the server
meanwhile runs in real time.

What "one log line down and one up" means here: per component that talks to the
server on its own schedule, one line when it loses the server and one when it has
it back. During a few minutes' outage those are the sensor-value coordinator (its
"Error fetching"/"recovered" pair) and the uploader ("unavailable"/"available
again"); the inventory coordinator polls every 30 minutes and says nothing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from functools import partial
import logging
import random

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import CONF_PASSWORD, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.flexmeasures.aggregation import Aggregation
from custom_components.flexmeasures.const import (
    CONF_EXCLUDED_SENSORS,
    CONF_SCAN_INTERVAL,
    DOMAIN,
)
from custom_components.flexmeasures.data import FlexMeasuresConfigEntry
from custom_components.flexmeasures.identity import sensor_unique_id
from tests.series import aggregate

from .conftest import LiveServer, follow_ingestion
from .server_control import ControlResult, ServerControl, server_control
from .test_uploader import KW, STEP, _link

LINKS = 50
OUTAGE_MINUTES = 5
# The uploader's backoff after five failures (30 s doubling) stays below this.
MAX_RECOVERY_MINUTES = 10
# Disruptions end by themselves after this (the agent restores), should the test die.
LEASE = 300.0
SERVER_START_TIMEOUT = 300.0
NEW_PASSWORD = "a-changed-password"  # noqa: S105
INTEGRATION = "custom_components.flexmeasures"
LIBRARY = "flexmeasures_client"


class Control:
    """The server's control agent, called from the event loop."""

    def __init__(self, hass: HomeAssistant, control: ServerControl) -> None:
        """Send commands through ``control`` in the executor."""
        self._hass = hass
        self._control = control

    async def __call__(self, command: str, *args: str) -> ControlResult:
        """Run a command of the server script on the host; fail if it fails."""
        return await self._hass.async_add_executor_job(
            partial(
                self._control.run,
                command,
                *args,
                timeout=SERVER_START_TIMEOUT,
                lease=LEASE,
            )
        )


@pytest.fixture
async def control(hass: HomeAssistant) -> AsyncIterator[Control]:
    """Return the server's control; the whole server runs before and after."""
    control = Control(hass, server_control())

    await control("restore")
    try:
        yield control
    finally:
        await control("restore")


class Run:
    """Linked entities on the live server, driven a minute at a time."""

    def __init__(
        self,
        hass: HomeAssistant,
        freezer: FrozenDateTimeFactory,
        entry: FlexMeasuresConfigEntry,
        begin: datetime,
        links: int,
    ) -> None:
        """Prepare ``links`` entities; nothing is linked yet."""
        self.hass = hass
        self.freezer = freezer
        self.entry = entry
        self.begin = begin
        self.minute = 0
        self.entities = [f"sensor.outage_meter_{index:02}" for index in range(links)]
        self.points: dict[str, list[tuple[float, float | None]]] = defaultdict(list)
        self.sensor_of: dict[str, int] = {}
        # Values unique to the run: reruns write newer beliefs into the same sensors.
        self.offset = round(random.uniform(0.5, 1.5), 3)  # noqa: S311

    def set_all(self) -> None:
        """Give every entity a new value now, different per entity and minute."""
        now = dt_util.utcnow().timestamp()
        for index, entity_id in enumerate(self.entities):
            value = round(
                self.offset + index * 0.25 + (self.minute * 7 + index) % 5 * 0.5, 3
            )
            self.hass.states.async_set(entity_id, str(value), KW)
            self.points[entity_id].append((now, value))

    async def link_all(self, site_id: int) -> None:
        """Link every entity to its sensor; expose only those sensors, every minute."""
        self.set_all()

        for index, entity_id in enumerate(self.entities):
            self.sensor_of[entity_id] = await _link(
                self.hass, self.entry, entity_id, site_id, f"Outage meter {index:02}"
            )
        await self.hass.async_block_till_done()
        # Sensors the flow created (a fresh server) come with the next inventory
        # refresh, which the flow asks for; the frozen clock holds its debounce.
        await self.entry.runtime_data.inventory.async_refresh()
        await self.hass.async_block_till_done()
        mine = set(self.sensor_of.values())
        others = set(self.entry.runtime_data.inventory.data.sensors) - mine
        self.hass.config_entries.async_update_entry(
            self.entry,
            options={
                CONF_SCAN_INTERVAL: 1,
                CONF_EXCLUDED_SENSORS: sorted(others),
            },
        )
        await self.hass.async_block_till_done()

    async def settle(self) -> None:
        """Wait for everything in flight, background tasks (refresh, upload) too.

        Requests must never be in flight when the clock moves: their timeouts
        would expire at once.
        """
        await self.hass.async_block_till_done(wait_background_tasks=True)

    async def tick(self) -> None:
        """Let a minute pass: timers fire (refresh, upload); every entity changes."""

        self.minute += 1
        await self.settle()
        self.freezer.move_to(self.begin + self.minute * STEP + timedelta(seconds=20))
        async_fire_time_changed(self.hass)
        await self.settle()
        await follow_ingestion(self.entry)
        self.set_all()
        await self.settle()

    def value_entities(self) -> list[str]:
        """Return the entity ids of the linked sensors' FlexMeasures sensor entities."""
        registry = er.async_get(self.hass)
        found = []
        for sensor_id in self.sensor_of.values():
            entity_id = registry.async_get_entity_id(
                "sensor", DOMAIN, sensor_unique_id(self.entry, sensor_id)
            )
            assert entity_id is not None, sensor_id
            found.append(entity_id)
        return found

    def unavailable(self) -> int:
        """Return how many of the linked sensors' entities are unavailable."""
        return sum(
            1
            for entity_id in self.value_entities()
            if (state := self.hass.states.get(entity_id)) is None
            or state.state == STATE_UNAVAILABLE
        )

    @property
    def uploader_pending(self) -> int:
        """Return how many values wait to be sent."""
        return self.entry.runtime_data.uploader.pending_count

    def expected(self) -> dict[int, dict[datetime, float]]:
        """Return, per sensor, the mean of every complete slot until now."""
        end = dt_util.utcnow().timestamp()
        return {
            self.sensor_of[entity_id]: {
                datetime.fromtimestamp(slot, UTC): value
                for slot, value in aggregate(
                    Aggregation.MEAN, int(STEP.total_seconds()), points, end
                )
            }
            for entity_id, points in self.points.items()
        }


async def _start(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    live_server: LiveServer,
    links: int,
) -> Run:
    """Load an entry two hours ago, link ``links`` entities, run three minutes."""
    begin = dt_util.utcnow().replace(second=0, microsecond=0) - timedelta(hours=2)
    freezer.move_to(begin)
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Home",
        unique_id=live_server.unique_id,
        data=live_server.entry_data(),
        options={CONF_SCAN_INTERVAL: 1},
        version=1,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    run = Run(hass, freezer, entry, begin, links)
    await run.link_all(live_server.assets["site"])
    assert len(run.value_entities()) == links
    for _ in range(3):
        await run.tick()
    assert not entry.runtime_data.uploader.server_down
    assert run.uploader_pending == 0
    assert run.unavailable() == 0
    return run


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Return the integration's log lines from INFO up, and the library's warnings.

    (The library says "Sensor data sent successfully" at INFO after every POST.)
    """
    return [
        record.getMessage()
        for record in caplog.records
        if (record.levelno >= logging.INFO and record.name.startswith(INTEGRATION))
        or (record.levelno >= logging.WARNING and record.name.startswith(LIBRARY))
    ]


def _assert_one_line_each(lines: list[str], *fragments: str) -> None:
    """Assert the lines are exactly one per fragment, nothing else."""
    assert len(lines) == len(fragments), lines
    for fragment in fragments:
        assert sum(fragment in line for line in lines) == 1, (fragment, lines)


async def _assert_on_server_once(
    control: Control,
    run: Run,
    posts: list[tuple[int, datetime, int]],
) -> int:
    """Every complete slot was posted once and is on the server once, right; count.

    Each value's belief time is its slot's end (see ``async_post_sensor_data``),
    so the rows of the run's slots are those believed since it began; a rerun
    (the sensors are reused) overwrites the rows of the slots it shares.
    """
    expected = run.expected()
    # Posted: one slot per minute from the first state on, each in exactly one POST.
    sent: dict[int, Counter[datetime]] = defaultdict(Counter)
    for sensor_id, start, count in posts:
        for index in range(count):
            sent[sensor_id][start + index * STEP] += 1
    # Stored: rows per slot in the server's database, from the run's start on
    # (an earlier run's later slots, if any, are no concern of this one).
    result = await control("beliefs", str(run.begin.timestamp()), *map(str, expected))
    last = run.begin + run.minute * STEP
    stored: dict[int, dict[datetime, tuple[int, float]]] = defaultdict(dict)
    for line in result.output.splitlines():
        sensor, epoch, beliefs, value = line.split("\t")
        start = datetime.fromtimestamp(int(epoch), UTC)
        if run.begin <= start < last:
            stored[int(sensor)][start] = (int(beliefs), float(value))
    for sensor_id, slots in expected.items():
        assert len(slots) == run.minute, sensor_id
        assert set(sent[sensor_id]) == set(slots), sensor_id
        assert set(sent[sensor_id].values()) == {1}, sensor_id
        assert set(stored[sensor_id]) == set(slots), sensor_id
        assert {beliefs for beliefs, _ in stored[sensor_id].values()} == {1}, sensor_id
        values = {start: value for start, (_, value) in stored[sensor_id].items()}
        assert values == pytest.approx(slots), sensor_id
    return sum(map(len, expected.values()))


@pytest.mark.parametrize(
    ("stop", "start"),
    [("stop-web", "start-web"), ("stop-db", "start-db")],
    ids=["web_server_and_worker", "postgresql"],
)
async def test_fifty_links_survive_a_server_outage(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    live_server: LiveServer,
    control: Control,
    posts: list[tuple[int, datetime, int]],
    stop: str,
    start: str,
) -> None:
    """Entities go unavailable and recover by themselves; no slot lost or doubled."""
    caplog.set_level(logging.INFO)
    run = await _start(hass, freezer, live_server, LINKS)
    uploader = run.entry.runtime_data.uploader
    caplog.clear()

    # Down for five upload intervals: every entity unavailable, the queue grows.
    await control(stop)
    pending = []
    for _ in range(OUTAGE_MINUTES):
        await run.tick()
        assert uploader.server_down
        assert run.unavailable() == LINKS
        pending.append(run.uploader_pending)
    assert pending == sorted(pending)
    assert pending[-1] >= (OUTAGE_MINUTES - 1) * LINKS

    # Back: everything recovers by itself once the backoff allows it.
    await control(start)
    for _ in range(MAX_RECOVERY_MINUTES):
        await run.tick()
        if not uploader.server_down and run.unavailable() == 0:
            break
    assert not uploader.server_down
    assert run.uploader_pending == 0
    assert run.unavailable() == 0
    assert run.entry.state is ConfigEntryState.LOADED
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)

    # One line down and one up, per component; nothing else.
    _assert_one_line_each(
        _lines(caplog),
        "Error fetching flexmeasures sensor values data",
        "Fetching flexmeasures sensor values data recovered",
        " is unavailable, keeping ",
        " is available again",
    )

    slots = await _assert_on_server_once(control, run, posts)
    assert slots == LINKS * run.minute


async def test_changed_password_goes_to_reauth_and_recovers(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    live_server: LiveServer,
    control: Control,
    posts: list[tuple[int, datetime, int]],
) -> None:
    """A password changed on the server asks for it once; the new one recovers all."""
    caplog.set_level(logging.INFO)
    run = await _start(hass, freezer, live_server, 10)
    entry = run.entry
    caplog.clear()

    await control("set-password", live_server.home.email, NEW_PASSWORD)
    pending = []
    for _ in range(OUTAGE_MINUTES):
        await run.tick()
        flows = hass.config_entries.flow.async_progress_by_handler(
            DOMAIN, match_context={"source": SOURCE_REAUTH}
        )
        assert len(flows) == 1
        assert run.unavailable() == len(run.entities)
        pending.append(run.uploader_pending)
    assert pending == sorted(pending)
    assert pending[-1] >= (OUTAGE_MINUTES - 1) * len(run.entities)
    # One line per component that noticed: the coordinator's, the uploader's.
    _assert_one_line_each(
        _lines(caplog),
        "Authentication failed while fetching flexmeasures sensor values data",
        " is unavailable, keeping ",
    )

    # The new password, entered in the reauth flow, brings everything back.
    result = await hass.config_entries.flow.async_configure(
        flows[0]["flow_id"], {CONF_PASSWORD: NEW_PASSWORD}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.state is ConfigEntryState.LOADED
    assert entry.data[CONF_PASSWORD] == NEW_PASSWORD
    for _ in range(2):
        await run.tick()
    assert not entry.runtime_data.uploader.server_down
    assert run.uploader_pending == 0
    assert run.unavailable() == 0
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)

    # The reloaded entry starts afresh: nothing more to say.
    assert len(_lines(caplog)) == 2

    slots = await _assert_on_server_once(control, run, posts)
    assert slots == len(run.entities) * run.minute
