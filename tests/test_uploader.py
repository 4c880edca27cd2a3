"""Tests for the measurement uploader: batching, outages, restarts, rejections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
import logging
from types import MappingProxyType
from typing import Any

from aiohttp import ClientConnectionError
from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigSubentry, ConfigSubentryData
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.flexmeasures.const import DOMAIN
from custom_components.flexmeasures.uploader import (
    REJECTED_RETRY,
    LinkConfig,
    issue_id_for,
)

from .conftest import POWER_ENTITY, FakeFlexMeasures, link_subentry, posted

# Logs at debug level, asserted free of the password, token and e-mail.
pytestmark = pytest.mark.usefixtures("no_secrets_logged")

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KW = {"unit_of_measurement": "kW"}
POWER_PATH = "POST /api/v3_0/sensors/20/data"


async def at(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, when: datetime
) -> None:
    """Move the clock to ``when`` and run what is due."""
    await hass.async_block_till_done()
    freezer.move_to(when)
    async_fire_time_changed(hass, when)
    await hass.async_block_till_done()


async def walk(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, until: datetime
) -> None:
    """Move the clock to ``until`` in 30-second steps, running every timer."""
    now = dt_util.utcnow()
    while now < until:
        now = min(now + timedelta(seconds=30), until)
        await at(hass, freezer, now)


async def setup(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, entry: MockConfigEntry
) -> None:
    """Set the entry up at START."""
    freezer.move_to(START)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


def slot_values(bodies: list[dict[str, Any]]) -> dict[datetime, float]:
    """Return {slot start: value} over all posts, failing on any duplicate slot."""
    result: dict[datetime, float] = {}
    for body in bodies:
        start = datetime.fromisoformat(body["start"])
        duration = dt_util.parse_duration(body["duration"])
        assert duration is not None
        step = duration / len(body["values"])
        for index, value in enumerate(body["values"]):
            slot = start + index * step
            assert slot not in result, f"{slot} was sent twice"
            result[slot] = value
    return result


async def test_time_weighted_mean_of_a_slot(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
) -> None:
    """A slot gets the mean over the time it was known, in the sensor's unit."""
    hass.states.async_set(POWER_ENTITY, "2.0", KW)
    await setup(hass, freezer, linked_entry)

    await walk(hass, freezer, START + timedelta(minutes=5))
    hass.states.async_set(POWER_ENTITY, "4000", {"unit_of_measurement": "W"})
    await walk(hass, freezer, START + timedelta(minutes=10))
    hass.states.async_set(POWER_ENTITY, STATE_UNAVAILABLE)
    await walk(hass, freezer, START + timedelta(minutes=14, seconds=30))
    assert posted(fake_server, 20) == []

    await walk(hass, freezer, START + timedelta(minutes=45))
    bodies = posted(fake_server, 20)
    assert len(bodies) == 1
    assert bodies[0]["start"] == "2026-11-26T12:00:00+00:00"
    assert dt_util.parse_duration(bodies[0]["duration"]) == timedelta(minutes=15)
    assert bodies[0]["unit"] == "kW"
    assert bodies[0]["values"] == pytest.approx([3.0])


async def test_at_most_one_post_per_interval(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
) -> None:
    """Changes every two seconds for an hour make one POST per upload interval."""
    hass.states.async_set(POWER_ENTITY, "0", KW)
    await setup(hass, freezer, linked_entry)
    expected: dict[datetime, float] = {}
    for second in range(0, 3600, 2):
        now = START + timedelta(seconds=second)
        freezer.move_to(now)
        value = float(second % 7)
        hass.states.async_set(POWER_ENTITY, str(value), KW)
        await hass.async_block_till_done()
        slot = START + timedelta(minutes=15 * (second // 900))
        expected[slot] = expected.get(slot, 0.0) + value * 2 / 900
        if second % 30 == 0:
            async_fire_time_changed(hass, now)
            await hass.async_block_till_done()
    await walk(hass, freezer, START + timedelta(minutes=65))

    bodies = posted(fake_server, 20)
    assert len(bodies) <= 65 / 5
    assert slot_values(bodies) == pytest.approx(expected)


@pytest.mark.parametrize(
    "measurement_links",
    [
        [
            link_subentry(
                entity_id="sensor.meter",
                sensor_id=23,
                sensor_unit="kWh",
                aggregation="difference",
            )
        ]
    ],
)
async def test_meter_difference_across_a_reset(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
) -> None:
    """A meter sends its increase per slot, converted, counting across a reset."""
    wh = {"unit_of_measurement": "Wh", "state_class": "total_increasing"}
    hass.states.async_set("sensor.meter", "1000000", wh)
    await setup(hass, freezer, linked_entry)
    readings = {10: "1000500", 17: "1000400", 20: "100", 25: "600", 40: "900"}
    for minute, reading in readings.items():
        await walk(hass, freezer, START + timedelta(minutes=minute))
        hass.states.async_set("sensor.meter", reading, wh)
    await walk(hass, freezer, START + timedelta(minutes=50))

    values = slot_values(posted(fake_server, 23))
    assert values == pytest.approx(
        {
            START: 0.5,
            START + timedelta(minutes=15): 0.6,  # 0.1 after the reset, then 0.5
            START + timedelta(minutes=30): 0.3,
        }
    )


@pytest.mark.parametrize(
    "measurement_links",
    [[link_subentry(sensor_id=24, sensor_unit="%", sensor_resolution=0)]],
)
async def test_instantaneous_sensor_gets_last_value(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
) -> None:
    """A sensor without resolution gets the last value at each interval's end."""
    percent = {"unit_of_measurement": "%"}
    hass.states.async_set(POWER_ENTITY, "50", percent)
    await setup(hass, freezer, linked_entry)
    await walk(hass, freezer, START + timedelta(minutes=2))
    hass.states.async_set(POWER_ENTITY, "55", percent)
    await walk(hass, freezer, START + timedelta(minutes=11))

    bodies = posted(fake_server, 24)
    assert [
        (body["start"], dt_util.parse_duration(body["duration"]), body["values"])
        for body in bodies
    ] == [
        ("2026-11-26T12:05:00+00:00", timedelta(0), [55.0]),
        ("2026-11-26T12:10:00+00:00", timedelta(0), [55.0]),
    ]


@pytest.mark.parametrize("measurement_links", [[link_subentry(invert=True)]])
async def test_invert(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
) -> None:
    """An inverted link flips the sign."""
    hass.states.async_set(POWER_ENTITY, "1.5", KW)
    await setup(hass, freezer, linked_entry)
    await walk(hass, freezer, START + timedelta(minutes=16))
    assert slot_values(posted(fake_server, 20)) == {START: -1.5}


@pytest.mark.parametrize(
    ("state", "attributes"),
    [
        ("21.5", {"unit_of_measurement": "°C"}),
        ("not a number", KW),
        ("nan", KW),
    ],
)
async def test_unusable_states_are_gaps(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
    state: str,
    attributes: dict[str, str],
) -> None:
    """States in a foreign unit or without a number are gaps, not zeros."""
    hass.states.async_set(POWER_ENTITY, "2", KW)
    await setup(hass, freezer, linked_entry)
    await walk(hass, freezer, START + timedelta(minutes=5))
    hass.states.async_set(POWER_ENTITY, state, attributes)
    await walk(hass, freezer, START + timedelta(minutes=10))
    hass.states.async_remove(POWER_ENTITY)
    await walk(hass, freezer, START + timedelta(minutes=35))
    assert slot_values(posted(fake_server, 20)) == {START: 2.0}


async def test_outage_backoff_and_backlog(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While the server is down, retries back off; the backlog follows in order."""
    caplog.set_level(logging.INFO)
    hass.states.async_set(POWER_ENTITY, "2", KW)
    fake_server.errors[POWER_PATH] = ClientConnectionError("refused")
    await setup(hass, freezer, linked_entry)

    attempts: list[datetime] = []
    now = START
    while now < START + timedelta(hours=2):
        before = len(posted(fake_server, 20))
        now += timedelta(seconds=30)
        await at(hass, freezer, now)
        attempts.extend([now] * (len(posted(fake_server, 20)) - before))
    gaps = [later - earlier for earlier, later in pairwise(attempts)]
    assert len(attempts) >= 5
    assert gaps == sorted(gaps)
    assert gaps[-1] > 4 * gaps[0]
    assert caplog.text.count("is unavailable") == 1
    uploader = linked_entry.runtime_data.uploader
    assert uploader.server_down
    assert uploader.pending_count == (now - START) // timedelta(minutes=15)

    fake_server.errors.clear()
    failed = len(posted(fake_server, 20))
    end = now + timedelta(minutes=31)
    await walk(hass, freezer, end)
    successful = posted(fake_server, 20)[failed:]
    assert len(successful[0]["values"]) >= (now - START) // timedelta(minutes=15)
    values = slot_values(successful)
    assert max(values) >= end - timedelta(minutes=15 + 15 + 5)  # slot, slot, interval
    assert values == {
        START + timedelta(minutes=15 * index): 2.0 for index in range(len(values))
    }
    assert caplog.text.count("is available again") == 1
    assert not uploader.server_down
    assert uploader.pending_count + len(values) == (end - START) // timedelta(
        minutes=15
    )


async def _unload_with_a_backlog(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
) -> None:
    """Keep 2 kW in one slot while the server refuses, then unload the entry."""
    hass.states.async_set(POWER_ENTITY, "2", KW)
    fake_server.errors[POWER_PATH] = ClientConnectionError("refused")
    await setup(hass, freezer, linked_entry)
    await walk(hass, freezer, START + timedelta(minutes=20))
    assert await hass.config_entries.async_unload(linked_entry.entry_id)
    await hass.async_block_till_done()


async def test_nothing_lost_or_doubled_across_a_restart(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """Pending slots and the open slot survive an unload; each slot is sent once."""
    await _unload_with_a_backlog(hass, freezer, fake_server, linked_entry)

    stored = hass_storage[f"{DOMAIN}.measurements.{linked_entry.entry_id}"]["data"]
    (link,) = stored["links"].values()
    assert link["pending"] == [[START.timestamp(), 2.0]]

    # Home Assistant is down for five minutes; the entity changes meanwhile.
    freezer.move_to(START + timedelta(minutes=25))
    hass.states.async_set(POWER_ENTITY, "6", KW)
    fake_server.errors.clear()
    failed = len(posted(fake_server, 20))
    assert await hass.config_entries.async_setup(linked_entry.entry_id)
    await hass.async_block_till_done()
    await walk(hass, freezer, START + timedelta(minutes=50))

    assert slot_values(posted(fake_server, 20)[failed:]) == pytest.approx(
        {
            START: 2.0,
            START + timedelta(minutes=15): 4.0,  # 2 kW before, 6 kW after the restart
            START + timedelta(minutes=30): 6.0,
        }
    )


async def test_removed_with_the_entry(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """Removing the entry deletes the measurements it still kept."""
    await _unload_with_a_backlog(hass, freezer, fake_server, linked_entry)
    key = f"{DOMAIN}.measurements.{linked_entry.entry_id}"
    assert hass_storage[key]["data"]["links"]
    await hass.config_entries.async_remove(linked_entry.entry_id)
    await hass.async_block_till_done()
    assert key not in hass_storage


async def test_saved_when_home_assistant_stops(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """Stopping Home Assistant writes the queue, with the open slot closed."""
    hass.states.async_set(POWER_ENTITY, "2", KW)
    fake_server.errors[POWER_PATH] = ClientConnectionError("refused")
    await setup(hass, freezer, linked_entry)
    await walk(hass, freezer, START + timedelta(minutes=16))
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()

    stored = hass_storage[f"{DOMAIN}.measurements.{linked_entry.entry_id}"]["data"]
    (link,) = stored["links"].values()
    assert link["pending"] == [[START.timestamp(), 2.0]]
    assert link["aggregator"]["value"] is None
    assert link["aggregator"]["covered"] == 60.0
    # Unloading afterwards does not close anything twice.
    assert await hass.config_entries.async_unload(linked_entry.entry_id)


async def test_rejection_raises_repair_issue_and_keeps_data(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    """A refusal raises a repair issue, keeps the data, and retries hourly."""
    hass.states.async_set(POWER_ENTITY, "2", KW)
    fake_server.statuses[POWER_PATH] = 422
    fake_server.responses[POWER_PATH] = {"message": "Unit mismatch", "status": 422}
    await setup(hass, freezer, linked_entry)
    await walk(hass, freezer, START + timedelta(minutes=40))

    subentry_id = next(iter(linked_entry.subentries))
    issue = issue_registry.async_get_issue(DOMAIN, issue_id_for(subentry_id))
    assert issue is not None
    assert issue.translation_key == "upload_rejected"
    assert issue.is_fixable
    assert issue.translation_placeholders is not None
    assert "Unit mismatch" in issue.translation_placeholders["error"]
    assert len(posted(fake_server, 20)) == 1
    assert linked_entry.runtime_data.uploader.pending_count == 2

    # Still refused an hour later: no second issue, data still kept.
    retried = START + timedelta(minutes=15, seconds=REJECTED_RETRY)
    await walk(hass, freezer, retried)
    assert len(posted(fake_server, 20)) == 2
    assert linked_entry.runtime_data.uploader.pending_count == (
        retried - START
    ) // timedelta(minutes=15)
    assert len(issue_registry.issues) == 1

    # Fixed on the server: the next hourly retry sends everything.
    fake_server.statuses.pop(POWER_PATH)
    await walk(hass, freezer, START + timedelta(minutes=16, seconds=2 * REJECTED_RETRY))
    assert slot_values(posted(fake_server, 20)[-1:]) == {
        START + timedelta(minutes=15 * index): 2.0 for index in range(9)
    }
    assert issue_registry.async_get_issue(DOMAIN, issue_id_for(subentry_id)) is None


async def test_changing_the_link_clears_the_issue(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    """Pointing a refused link at another sensor moves its data there."""
    hass.states.async_set(POWER_ENTITY, "2", KW)
    fake_server.statuses[POWER_PATH] = 403
    fake_server.responses[POWER_PATH] = {"message": "Forbidden", "status": 403}
    await setup(hass, freezer, linked_entry)
    await walk(hass, freezer, START + timedelta(minutes=16))
    subentry = next(iter(linked_entry.subentries.values()))
    assert issue_registry.async_get_issue(DOMAIN, issue_id_for(subentry.subentry_id))

    fake_server.responses["POST /api/v3_0/sensors/22/data"] = {"status": "PROCESSED"}
    hass.config_entries.async_update_subentry(
        linked_entry, subentry, data={**subentry.data, "sensor_id": 22}
    )
    await hass.async_block_till_done()
    assert not issue_registry.async_get_issue(
        DOMAIN, issue_id_for(subentry.subentry_id)
    )
    await walk(hass, freezer, START + timedelta(minutes=22))
    assert slot_values(posted(fake_server, 22)) == {START: 2.0}


@pytest.mark.parametrize(
    ("change", "kept"),
    [
        ({"sensor_unit": "MW"}, {START: 0.002}),
        ({"sensor_unit": "°C"}, {}),
        ({"sensor_resolution": 3600}, {}),
    ],
)
async def test_changed_sensor_keeps_what_fits(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
    change: dict[str, Any],
    kept: dict[datetime, float],
) -> None:
    """Pending values follow a unit change; they are dropped if they cannot."""
    hass.states.async_set(POWER_ENTITY, "2", KW)
    fake_server.errors[POWER_PATH] = ClientConnectionError("refused")
    await setup(hass, freezer, linked_entry)
    await walk(hass, freezer, START + timedelta(minutes=16))
    subentry = next(iter(linked_entry.subentries.values()))
    hass.config_entries.async_update_subentry(
        linked_entry, subentry, data={**subentry.data, **change}
    )
    await hass.async_block_till_done()
    hass.states.async_remove(POWER_ENTITY)
    fake_server.errors.clear()
    failed = len(posted(fake_server, 20))
    await walk(hass, freezer, START + timedelta(minutes=60))
    assert slot_values(posted(fake_server, 20)[failed:]) == pytest.approx(kept)


async def test_links_added_and_removed_at_run_time(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
) -> None:
    """A new link starts sending without a reload; a removed one stops."""
    hass.states.async_set(POWER_ENTITY, "2", KW)
    hass.states.async_set("sensor.charger", "7", KW)
    await setup(hass, freezer, linked_entry)
    fake_server.responses["POST /api/v3_0/sensors/22/data"] = {"status": "PROCESSED"}
    data = link_subentry(entity_id="sensor.charger", sensor_id=22)
    hass.config_entries.async_add_subentry(
        linked_entry,
        ConfigSubentry(
            data=MappingProxyType(dict(data["data"])),
            subentry_type=data["subentry_type"],
            title=data["title"],
            unique_id=data["unique_id"],
        ),
    )
    await hass.async_block_till_done()
    power = next(
        subentry_id
        for subentry_id, subentry in linked_entry.subentries.items()
        if subentry.data["sensor_id"] == 20
    )
    hass.config_entries.async_remove_subentry(linked_entry, power)
    await hass.async_block_till_done()
    await walk(hass, freezer, START + timedelta(minutes=16))

    assert slot_values(posted(fake_server, 22)) == {START: 7.0}
    assert posted(fake_server, 20) == []
    assert set(linked_entry.runtime_data.uploader.links) == set(linked_entry.subentries)


async def test_authentication_failure_starts_reauth(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
) -> None:
    """A refused login while posting keeps the data and asks to log in again."""
    hass.states.async_set(POWER_ENTITY, "2", KW)
    await setup(hass, freezer, linked_entry)
    fake_server.password = "changed"  # noqa: S105
    fake_server.unauthorized_requests = 10_000
    await walk(hass, freezer, START + timedelta(minutes=16))
    assert linked_entry.runtime_data.uploader.pending_count == 1
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == ["reauth"]


def test_link_config_defaults() -> None:
    """A link without an upload interval uses the default."""
    data: ConfigSubentryData = link_subentry()
    subentry = ConfigSubentry(
        data=MappingProxyType(
            {k: v for k, v in data["data"].items() if k != "upload_interval"}
        ),
        subentry_type=data["subentry_type"],
        title=data["title"],
        unique_id=data["unique_id"],
    )
    config = LinkConfig.from_subentry(subentry)
    assert config.upload_interval == 300
    assert config.step == 900


async def test_flush_in_progress_is_not_repeated(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
) -> None:
    """A tick while a slow POST is under way does not start a second one."""
    hass.states.async_set(POWER_ENTITY, "2", KW)
    await setup(hass, freezer, linked_entry)
    freezer.move_to(START + timedelta(minutes=16))
    uploader = linked_entry.runtime_data.uploader
    async with uploader._lock:
        await uploader.async_flush()
    assert posted(fake_server, 20) == []
    await uploader.async_flush()
    assert slot_values(posted(fake_server, 20)) == {START: 2.0}


# --- Outages (issue 9) -------------------------------------------------------------

INTERNAL_ERROR = {"errors": ["An internal error has occurred."], "status": 500}


@pytest.mark.parametrize(
    "outage",
    ["server_error", "database_down"],
)
async def test_server_errors_are_an_outage_not_a_rejection(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    caplog: pytest.LogCaptureFixture,
    outage: str,
) -> None:
    """HTTP 500 (with FlexMeasures' JSON errors) is retried, not rejected or reauth.

    Without its database, FlexMeasures refuses every token (401) and its login
    answers 500: that is an outage too, not a changed password.
    """
    caplog.set_level(logging.INFO)
    hass.states.async_set(POWER_ENTITY, "2", KW)
    await setup(hass, freezer, linked_entry)
    answers = dict(fake_server.responses)
    if outage == "server_error":
        fake_server.statuses[POWER_PATH] = 500
        fake_server.responses[POWER_PATH] = INTERNAL_ERROR
    else:
        fake_server.unauthorized_requests = 10_000
        fake_server.statuses["POST /api/requestAuthToken"] = 500
        fake_server.responses["POST /api/requestAuthToken"] = INTERNAL_ERROR
    await walk(hass, freezer, START + timedelta(minutes=50))
    uploader = linked_entry.runtime_data.uploader
    assert uploader.server_down
    assert uploader.pending_count == 3
    assert not issue_registry.issues
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)

    # Back: sent at the next retry of the backoff (at most 30 minutes later).
    fake_server.unauthorized_requests = 0
    fake_server.statuses.clear()
    fake_server.responses.update(answers)
    await walk(hass, freezer, START + timedelta(minutes=96))
    assert not uploader.server_down
    assert uploader.pending_count == 0
    assert caplog.text.count("is unavailable") == 1
    assert caplog.text.count("is available again") == 1
    assert not issue_registry.issues
