"""Forecast links post a source's series to the fake server, once, durably."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigSubentryData, ConfigSubentryDataWithId
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.helpers.dispatcher import async_dispatcher_connect
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.flexmeasures import uploader as uploader_module
from custom_components.flexmeasures.const import CONFIG_ENTRY_MINOR_VERSION, DOMAIN
from custom_components.flexmeasures.forecasts.link import forecast_issue_id
from custom_components.flexmeasures.forecasts.model import SourcePoint, SourceSeries
from custom_components.flexmeasures.signals import signal_forecast_posted

from .conftest import (
    ENTRY_DATA,
    SERVER_URL,
    UNIQUE_ID,
    FakeFlexMeasures,
    entity_snapshot,
    posted,
    recorded,
)
from .forecast_helpers import patched_sources

NOW = datetime(2026, 12, 3, 13, 0, tzinfo=UTC)
TOMORROW = datetime(2026, 12, 4, 0, 0, tzinfo=UTC)
PRICES = "sensor.nord_pool_prices"
PRICE_PATH = "POST /api/v3_0/sensors/30/data"
LINK = ConfigSubentryDataWithId(
    subentry_id="forecast_link_prices",
    data={
        "source_type": "attribute",
        "source_entity": PRICES,
        "source_attribute": "raw_today",
        "source_shape": "start,end,value",
        "source_unit": "EUR/kWh",
        "sensor_id": 30,
        "sensor_unit": "EUR/MWh",
        "sensor_resolution": 3600,
    },
    subentry_type="forecast_link",
    title="Nord Pool -> consumption price",
    unique_id="forecast_link_30",
)


def _prices(values: list[float | None], first: datetime = TOMORROW) -> dict[str, Any]:
    """Return Nord Pool style attributes: 15-minute slots from ``first``."""
    step = timedelta(minutes=15)
    return {
        "unit_of_measurement": "EUR/kWh",
        "raw_today": [],
        "raw_tomorrow": [
            {"start": first + i * step, "end": first + (i + 1) * step, "value": v}
            for i, v in enumerate(values)
        ],
    }


ENTRY_ID = "forecast_entry"


def _entry(*links: ConfigSubentryData) -> MockConfigEntry:
    """Return an entry with these forecast links (by default the price link)."""
    return MockConfigEntry(
        domain=DOMAIN,
        entry_id=ENTRY_ID,
        title=f"Home ({SERVER_URL})",
        unique_id=UNIQUE_ID,
        data=dict(ENTRY_DATA),
        version=1,
        minor_version=CONFIG_ENTRY_MINOR_VERSION,
        subentries_data=list(links or (LINK,)),
    )


async def _setup(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, server: FakeFlexMeasures
) -> MockConfigEntry:
    """Set up an entry with one forecast link, its source holding one hour."""
    freezer.move_to(NOW)
    server.statuses[PRICE_PATH], server.responses[PRICE_PATH] = (
        200,
        recorded("sensor_data_post")[1],
    )
    hass.states.async_set(PRICES, "0.1", _prices([0.1, 0.2, 0.3, 0.4]))
    entry = _entry()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def test_prices_posted_converted_aligned_and_once(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    snapshot: SnapshotAssertion,
) -> None:
    """EUR/kWh per 15 min -> EUR/MWh hourly mean, prior = the state's update."""
    posted_to: list[int] = []
    entry = await _setup(hass, freezer, fake_server)
    async_dispatcher_connect(
        hass, signal_forecast_posted(entry.entry_id), posted_to.append
    )
    bodies = posted(fake_server, 30)
    assert bodies == [
        {
            "start": TOMORROW.isoformat(),
            "duration": "PT1H",
            "values": [250.0],
            "unit": "EUR/MWh",
            "prior": NOW.isoformat(),
        }
    ]
    link = next(iter(entry.runtime_data.forecasts.links.values()))
    assert link.slots_posted == 1
    assert link.horizon == TOMORROW + timedelta(hours=1)

    # The first hour again, and a second one: only the second is posted, with
    # the new state's time as its belief time; the site hears of it once.
    freezer.tick(timedelta(minutes=5))
    hass.states.async_set(
        PRICES, "0.2", _prices([0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.5, 0.5])
    )
    await hass.async_block_till_done()
    bodies = posted(fake_server, 30)
    assert len(bodies) == 2
    assert bodies[1]["start"] == (TOMORROW + timedelta(hours=1)).isoformat()
    assert bodies[1]["values"] == [500.0]
    assert bodies[1]["prior"] == (NOW + timedelta(minutes=5)).isoformat()
    assert posted_to == [30]
    entities = entity_snapshot(hass, entry.entry_id)
    assert {
        entity_id: entity
        for entity_id, entity in entities.items()
        if "last_forecast_posted" in entity_id
    } == snapshot

    # Nothing new, nothing sent: the 15-minute re-read finds the same prices.
    freezer.tick(timedelta(minutes=16))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert len(posted(fake_server, 30)) == 2


async def test_ingestion_job_then_stored(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """202 with a job: the values count as held once the job finished."""
    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(uploader_module, "_pause", pause)
    job_id = "4f9a1c2e-0000-4000-8000-000000000003"
    fake_server.statuses[PRICE_PATH], fake_server.responses[PRICE_PATH] = recorded(
        "sensor_data_post_forecast_accepted", uuid=job_id
    )
    job_path = f"GET /api/v3_0/jobs/{job_id}"
    fake_server.statuses[job_path], fake_server.responses[job_path] = recorded(
        "job_finished", uuid=job_id
    )
    freezer.move_to(NOW)
    hass.states.async_set(PRICES, "0.1", _prices([0.1, 0.2, 0.3, 0.4]))
    entry = _entry()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await hass.async_block_till_done(wait_background_tasks=True)
    link = next(iter(entry.runtime_data.forecasts.links.values()))
    assert link.held == {int(TOMORROW.timestamp()): (250.0, NOW.timestamp())}
    assert link.pending == {}
    assert fake_server.count(job_path) == 1
    assert pauses == [0.5]


async def test_outage_then_catch_up_and_restart_keeps_pending(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, fake_server: FakeFlexMeasures
) -> None:
    """An unreachable server keeps the series, across a reload, until it answers."""
    fake_server.statuses[PRICE_PATH] = 503
    fake_server.responses[PRICE_PATH] = {"message": "Maintenance"}
    freezer.move_to(NOW)
    hass.states.async_set(PRICES, "0.1", _prices([0.1, 0.2, 0.3, 0.4]))
    entry = _entry()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    forecasts = entry.runtime_data.forecasts
    assert forecasts.pending_count == 1
    assert forecasts.server_down
    # Backing off: a flush right away asks nothing.
    attempts = len(posted(fake_server, 30))
    await forecasts.async_flush()
    assert len(posted(fake_server, 30)) == attempts

    # Restart: the pending value is in the store.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data.forecasts.pending_count == 1

    fake_server.statuses[PRICE_PATH], fake_server.responses[PRICE_PATH] = (
        200,
        recorded("sensor_data_post")[1],
    )
    for _ in range(6):
        freezer.tick(timedelta(minutes=1))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
    assert entry.runtime_data.forecasts.pending_count == 0
    assert posted(fake_server, 30)[-1]["values"] == [250.0]
    assert posted(fake_server, 30)[-1]["prior"] == NOW.isoformat()


async def test_refusal_raises_a_repair_issue(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    issue_registry: ir.IssueRegistry,
) -> None:
    """A 422 keeps the series and raises the issue; acceptance clears it."""
    freezer.move_to(NOW)
    fake_server.statuses[PRICE_PATH], fake_server.responses[PRICE_PATH] = recorded(
        "sensor_data_post_forecast_other_currency"
    )
    hass.states.async_set(PRICES, "0.1", _prices([0.1, 0.2, 0.3, 0.4]))
    entry = _entry()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    subentry_id = next(iter(entry.runtime_data.forecasts.links))
    issue = issue_registry.async_get_issue(DOMAIN, forecast_issue_id(subentry_id))
    assert issue is not None
    assert issue.translation_key == "forecast_rejected"
    assert entry.runtime_data.forecasts.pending_count == 1
    # Refused: not asked again before the hour is up.
    await entry.runtime_data.forecasts.async_flush()
    assert len(posted(fake_server, 30)) == 1

    fake_server.statuses[PRICE_PATH], fake_server.responses[PRICE_PATH] = (
        200,
        recorded("sensor_data_post")[1],
    )
    freezer.tick(timedelta(hours=1, minutes=1))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert (
        issue_registry.async_get_issue(DOMAIN, forecast_issue_id(subentry_id)) is None
    )
    assert entry.runtime_data.forecasts.pending_count == 0


ACTION_LINK = ConfigSubentryDataWithId(
    subentry_id="forecast_link_action",
    data={
        "source_type": "action",
        "source_entry": "nordpool_entry",
        "source_unit": "EUR/MWh",
        "sensor_id": 30,
        "sensor_unit": "EUR/MWh",
        "sensor_resolution": 3600,
    },
    subentry_type="forecast_link",
    title="Nord Pool -> consumption price",
    unique_id="forecast_link_30",
)


async def test_action_source_read_on_its_entities_changes(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    entity_registry: er.EntityRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A price integration's entry is read at start and when its entities change."""
    freezer.move_to(NOW)
    fake_server.responses[PRICE_PATH] = recorded("sensor_data_post")[1]
    source = MockConfigEntry(domain="nordpool", entry_id="nordpool_entry")
    source.add_to_hass(hass)
    entity_registry.async_get_or_create(
        "sensor", "nordpool", "price", config_entry=source, suggested_object_id="np"
    )
    published = NOW - timedelta(hours=1)
    with patched_sources() as sources:
        sources.series = SourceSeries(
            points=(SourcePoint(TOMORROW, TOMORROW + timedelta(hours=1), 80.0),),
            unit="EUR/MWh",
            published_at=published,
        )
        entry = _entry(ACTION_LINK)
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done(wait_background_tasks=True)
        assert posted(fake_server, 30) == [
            {
                "start": TOMORROW.isoformat(),
                "duration": "PT1H",
                "values": [80.0],
                "unit": "EUR/MWh",
                "prior": published.isoformat(),
            }
        ]
        sources.async_read_source.assert_awaited_with(hass, "action", "nordpool_entry")

        # The source fails: said once, and the entity shows why.
        sources.series = None
        hass.states.async_set("sensor.np", "81")
        await hass.async_block_till_done(wait_background_tasks=True)
        assert sources.async_read_source.await_count == 2
        link = entry.runtime_data.forecasts.links["forecast_link_action"]
        assert link.source_error == "cannot read"
        assert caplog.text.count("Cannot read the source of") == 1

        # A newer series arrives (the debouncer lets one read through a minute).
        sources.series = SourceSeries(
            points=(SourcePoint(TOMORROW, TOMORROW + timedelta(hours=1), 90.0),),
            unit="EUR/MWh",
            published_at=NOW,
        )
        freezer.tick(timedelta(minutes=2))
        async_fire_time_changed(hass)
        hass.states.async_set("sensor.np", "82")
        await hass.async_block_till_done(wait_background_tasks=True)
        assert posted(fake_server, 30)[-1]["values"] == [90.0]
        assert link.source_error is None
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done(wait_background_tasks=True)


async def test_attribute_gone_and_unreadable(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, fake_server: FakeFlexMeasures
) -> None:
    """A missing entity or a changed shape is a source error, nothing is posted."""
    freezer.move_to(NOW)
    fake_server.responses[PRICE_PATH] = recorded("sensor_data_post")[1]
    entry = _entry()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    link = entry.runtime_data.forecasts.links["forecast_link_prices"]
    assert link.source_error == "source_missing"
    hass.states.async_set(PRICES, "1", {"raw_today": [{"start": "x", "value": 1}]})
    await hass.async_block_till_done(wait_background_tasks=True)
    assert link.source_error == "bad_start"
    assert posted(fake_server, 30) == []


async def test_failed_job_raises_the_issue_and_old_slots_are_forgotten(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    issue_registry: ir.IssueRegistry,
    monkeypatch: pytest.MonkeyPatch,
    hass_storage: dict[str, Any],
) -> None:
    """A job that runs, then fails: the series waits, with the repair issue."""

    async def pause(seconds: float) -> None:
        """Do not wait."""

    monkeypatch.setattr(uploader_module, "_pause", pause)
    job_id = "4f9a1c2e-0000-4000-8000-000000000004"
    fake_server.statuses[PRICE_PATH], fake_server.responses[PRICE_PATH] = recorded(
        "sensor_data_post_forecast_accepted", uuid=job_id
    )
    job_path = f"GET /api/v3_0/jobs/{job_id}"
    statuses = ["STARTED", "FAILED"]

    def job(method: str, url: Any, data: Any) -> tuple[int, Any]:
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        if status == "FAILED":
            return 422, {"status": "FAILED", "message": "Job failed", "exc-info": None}
        return 202, {"status": status, "message": "Job is started."}

    fake_server.handlers[job_path] = job
    # What a removed link left behind is dropped.
    hass_storage[f"{DOMAIN}.forecasts.{ENTRY_ID}"] = {
        "version": 1,
        "data": {"links": {"removed_link": {"stream": {}, "pending": []}}},
    }
    freezer.move_to(NOW)
    hass.states.async_set(PRICES, "0.1", _prices([0.1, 0.2, 0.3, 0.4]))
    entry = _entry()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    issue = issue_registry.async_get_issue(
        DOMAIN, forecast_issue_id("forecast_link_prices")
    )
    assert issue is not None
    assert issue.translation_placeholders == {
        "link": "Nord Pool -> consumption price",
        "sensor_id": "30",
        "error": "Job failed",
    }
    forecasts = entry.runtime_data.forecasts
    assert forecasts.pending_count == 1
    diagnostics = forecasts.diagnostics()
    assert diagnostics["links"]["forecast_link_prices"]["rejected"] == "Job failed"
    assert diagnostics["links"]["forecast_link_prices"]["pending"] == 1

    # Three days on, the unsent slot has long passed: it is forgotten.
    freezer.tick(timedelta(days=3))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert forecasts.pending_count == 0
    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert f"{DOMAIN}.forecasts.{ENTRY_ID}" not in hass_storage


async def test_refused_login_asks_to_log_in(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, fake_server: FakeFlexMeasures
) -> None:
    """A POST answered 401 after the password changed starts a re-login."""
    freezer.move_to(NOW)
    entry = _entry()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    fake_server.password = "changed"  # noqa: S105
    fake_server.unauthorized_requests = 1
    hass.states.async_set(PRICES, "0.1", _prices([0.1, 0.2, 0.3, 0.4]))
    await hass.async_block_till_done(wait_background_tasks=True)
    assert entry.runtime_data.forecasts.server_down
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == ["reauth"]
    # Home Assistant stops: the queue is saved at once.
    hass.bus.async_fire("homeassistant_stop")
    await hass.async_block_till_done()
    assert entry.runtime_data.forecasts.pending_count == 1
