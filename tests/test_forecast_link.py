"""Forecast links post a source's series to the fake server, once, durably."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.flexmeasures.const import CONFIG_ENTRY_MINOR_VERSION, DOMAIN
from custom_components.flexmeasures.forecasts.link import forecast_issue_id

from .conftest import (
    ENTRY_DATA,
    SERVER_URL,
    UNIQUE_ID,
    FakeFlexMeasures,
    posted,
    recorded,
)

NOW = datetime(2026, 12, 3, 13, 0, tzinfo=UTC)
TOMORROW = datetime(2026, 12, 4, 0, 0, tzinfo=UTC)
PRICES = "sensor.nord_pool_prices"
PRICE_PATH = "POST /api/v3_0/sensors/30/data"
LINK = ConfigSubentryData(
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
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"Home ({SERVER_URL})",
        unique_id=UNIQUE_ID,
        data=dict(ENTRY_DATA),
        version=1,
        minor_version=CONFIG_ENTRY_MINOR_VERSION,
        subentries_data=[LINK],
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def test_prices_posted_converted_aligned_and_once(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, fake_server: FakeFlexMeasures
) -> None:
    """EUR/kWh per 15 min -> EUR/MWh hourly mean, prior = the state's update."""
    entry = await _setup(hass, freezer, fake_server)
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

    # The same prices again (another attribute changed): nothing is re-sent.
    freezer.tick(timedelta(minutes=5))
    hass.states.async_set(
        PRICES, "0.2", _prices([0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.5, 0.5])
    )
    await hass.async_block_till_done()
    bodies = posted(fake_server, 30)
    assert len(bodies) == 2
    assert bodies[1]["start"] == (TOMORROW + timedelta(hours=1)).isoformat()
    assert bodies[1]["values"] == [500.0]
    state = hass.states.get(
        "sensor.home_last_forecast_posted_nord_pool_consumption_price"
    )
    assert state is not None
    assert state.attributes["slots_posted"] == 1
    assert (
        state.attributes["horizon_end"] == (TOMORROW + timedelta(hours=2)).isoformat()
    )


async def test_outage_then_catch_up_and_restart_keeps_pending(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, fake_server: FakeFlexMeasures
) -> None:
    """An unreachable server keeps the series, across a reload, until it answers."""
    fake_server.statuses[PRICE_PATH] = 503
    fake_server.responses[PRICE_PATH] = {"message": "Maintenance"}
    freezer.move_to(NOW)
    hass.states.async_set(PRICES, "0.1", _prices([0.1, 0.2, 0.3, 0.4]))
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"Home ({SERVER_URL})",
        unique_id=UNIQUE_ID,
        data=dict(ENTRY_DATA),
        version=1,
        minor_version=CONFIG_ENTRY_MINOR_VERSION,
        subentries_data=[LINK],
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data.forecasts.pending_count == 1
    assert entry.runtime_data.forecasts.server_down

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
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"Home ({SERVER_URL})",
        unique_id=UNIQUE_ID,
        data=dict(ENTRY_DATA),
        version=1,
        minor_version=CONFIG_ENTRY_MINOR_VERSION,
        subentries_data=[LINK],
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    subentry_id = next(iter(entry.runtime_data.forecasts.links))
    issue = issue_registry.async_get_issue(DOMAIN, forecast_issue_id(subentry_id))
    assert issue is not None
    assert issue.translation_key == "forecast_rejected"
    assert entry.runtime_data.forecasts.pending_count == 1

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
