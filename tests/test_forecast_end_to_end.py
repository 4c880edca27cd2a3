"""Forecast links end to end: real price and solar integrations to the fake server.

A user adds a forecast link through the subentry flow as the UI does; the
sources are Home Assistant's own nordpool and tibber integrations (their
libraries mocked at the boundary, tests/forecast_sources.py) and the
forecast_solar-style ``sample_solar`` energy platform. Nothing of the
integration is patched: what reaches the fake FlexMeasures server is what the
link converted and aligned from what those integrations answered.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.translation import async_get_translations
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from yarl import URL

from custom_components.flexmeasures.const import DOMAIN, SUBENTRY_FORECAST_LINK
from custom_components.flexmeasures.forecasts.link import REFRESH, ForecastLink

from .conftest import FakeFlexMeasures, posted, recorded, setup_entry
from .flow_helpers import configure, select_values, start_flow, suggested
from .forecast_sources import (
    SOURCES_NOW,
    TODAY,
    TOMORROW,
    YESTERDAY,
    NordPoolApi,
    nordpool_day,
    solar_wh_hours,
    tibber_price_info,
)

HOME_ASSET = "10"
PRICE_SENSOR = 30  # "consumption price", EUR/MWh, hourly, on the Home asset
HOUR = {"hours": 1, "minutes": 0, "seconds": 0}
QUARTER = {"hours": 0, "minutes": 15, "seconds": 0}


@pytest.fixture
async def flexmeasures_entry(
    hass: HomeAssistant,
    sources_clock: None,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
) -> MockConfigEntry:
    """Set up the FlexMeasures entry at the sources' time; the server takes data."""
    fake_server.handlers["POST /api/v3_0/sensors"] = _sensor_creator(fake_server)
    fake_server.responses[f"POST /api/v3_0/sensors/{PRICE_SENSOR}/data"] = recorded(
        "sensor_data_post"
    )[1]
    return await setup_entry(hass, mock_config_entry)


def _sensor_creator(
    server: FakeFlexMeasures,
) -> Callable[[str, URL, Any], tuple[int, Any]]:
    """Return a handler creating sensors 40, 41, ... as FlexMeasures 1.0.1 does."""

    def create(method: str, url: URL, data: Any) -> tuple[int, Any]:
        # The server records a call before it answers: this one is counted.
        made = sum(1 for call in server.calls if call[:2] == (method, url.path))
        status, body = recorded("sensor_add", id=39 + made)
        # recorded() takes ``name`` itself: the request's fields are set after.
        fields = ("name", "unit", "event_resolution", "generic_asset_id", "timezone")
        body.update({field: data[field] for field in fields})
        server.responses["GET /api/v3_0/sensors"] = [
            *server.responses["GET /api/v3_0/sensors"],
            body,
        ]
        server.responses[f"POST /api/v3_0/sensors/{body['id']}/data"] = recorded(
            "sensor_data_post"
        )[1]
        return status, body

    return create


def _utc(text: str) -> datetime:
    """Return a fixture's time in UTC."""
    moment = dt_util.parse_datetime(text)
    assert moment is not None
    return dt_util.as_utc(moment)


def _hourly_means(*days: str, currency: str, area: str = "SE3") -> list[float]:
    """Return Nord Pool's quarter-hour prices of ``days`` as hourly means, in order."""
    rows = [
        row for day in days for row in nordpool_day(day, currency)["multiAreaEntries"]
    ]
    assert all(
        _utc(row["deliveryEnd"]) - _utc(row["deliveryStart"]) == timedelta(minutes=15)
        for row in rows
    )
    return [
        sum(row["entryPerArea"][area] for row in rows[hour : hour + 4]) / 4
        for hour in range(0, len(rows), 4)
    ]


def _link(entry: MockConfigEntry) -> ForecastLink:
    """Return the entry's only forecast link at run time."""
    (link,) = entry.runtime_data.forecasts.links.values()
    assert isinstance(link, ForecastLink)
    return link


async def _refresh(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    """Let the links' 15-minute read come (and whatever else runs by then)."""
    freezer.tick(REFRESH)
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)


async def _flow_error(hass: HomeAssistant, key: str) -> str:
    """Return the English text of a forecast-link flow error, as HA loads it."""
    texts = await async_get_translations(hass, "en", "config_subentries", [DOMAIN])
    return texts[
        f"component.{DOMAIN}.config_subentries.{SUBENTRY_FORECAST_LINK}.error.{key}"
    ]


async def _choose_source(
    hass: HomeAssistant, entry: MockConfigEntry, source_type: str, source_entry: str
) -> dict[str, Any]:
    """Walk the flow to the confirm step of an integration's source."""
    result = await start_flow(hass, entry, SUBENTRY_FORECAST_LINK)
    assert result["step_id"] == "user"
    result = await configure(hass, result["flow_id"], {"source_type": source_type})
    assert result["step_id"] == "source_entry"
    assert select_values(result, "source_entry") == [source_entry]
    result = await configure(hass, result["flow_id"], {"source_entry": source_entry})
    assert result["step_id"] == "confirm", result.get("errors")
    return dict(result)


async def _new_sensor(
    hass: HomeAssistant, result: dict[str, Any], name: str, unit: str, resolution: Any
) -> dict[str, Any]:
    """Choose a new sensor on the Home asset and create it; return the defaults."""
    result = await configure(hass, result["flow_id"], {"sensor": "new"})
    assert result["step_id"] == "new_sensor"
    defaults = suggested(result["data_schema"])
    result = await configure(
        hass,
        result["flow_id"],
        {
            "asset": HOME_ASSET,
            "name": name,
            "unit_of_measurement": unit,
            "resolution": resolution,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    await hass.async_block_till_done(wait_background_tasks=True)
    return defaults


@pytest.mark.parametrize("nordpool_currency", ["EUR"])
async def test_nordpool_quarter_hours_become_hourly_eur_means(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    flexmeasures_entry: MockConfigEntry,
    nordpool_entry: MockConfigEntry,
    nordpool_api: NordPoolApi,
) -> None:
    """Today's and tomorrow's SE3 prices, in one POST of 48 hourly EUR/MWh means."""
    result = await _choose_source(
        hass, flexmeasures_entry, "action", nordpool_entry.entry_id
    )
    first = nordpool_day(TODAY, "EUR")["multiAreaEntries"][0]["entryPerArea"]["SE3"]
    placeholders = result["description_placeholders"]
    assert placeholders["source"] == "Nord Pool"
    assert placeholders["unit"] == "EUR/MWh"
    assert placeholders["slots"] == str(2 * 96)
    assert placeholders["preview"].splitlines()[0] == f"2026-11-02 00:00: {first:g}"
    assert suggested(result["data_schema"]) == {"source_unit": "EUR/MWh"}
    result = await configure(hass, result["flow_id"], {"source_unit": "EUR/MWh"})
    assert select_values(result, "sensor") == [str(PRICE_SENSOR), "new"]
    defaults = await _new_sensor(hass, result, "Day-ahead SE3", "EUR/MWh", HOUR)
    assert defaults == {
        "name": "Nord Pool",
        "unit_of_measurement": "EUR/MWh",
        "resolution": HOUR,
    }

    expected = {
        "start": "2026-11-01T23:00:00+00:00",
        "duration": "PT48H",
        "values": pytest.approx(_hourly_means(TODAY, TOMORROW, currency="EUR")),
        "unit": "EUR/MWh",
        "prior": SOURCES_NOW.isoformat(),
    }
    assert posted(fake_server, 40) == [expected]
    link = _link(flexmeasures_entry)
    assert link.horizon == _utc("2026-11-03T23:00:00Z")
    assert link.source_error is None


@pytest.mark.parametrize("nordpool_published", [(YESTERDAY, TODAY)])
async def test_tomorrow_published_later_posts_only_tomorrow(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    flexmeasures_entry: MockConfigEntry,
    nordpool_entry: MockConfigEntry,
    nordpool_api: NordPoolApi,
) -> None:
    """Before Nord Pool publishes tomorrow, today; once it does, tomorrow alone.

    The entry is in SEK, Nord Pool's currency for Sweden: the link posts to a
    sensor in SEK/MWh, as FlexMeasures takes no currency conversion. Each
    publication is posted with the time the link first read it as its belief
    time. While Nord Pool does not answer (asked for tomorrow: from 2026 on the
    action answers the days it holds without asking), a new link cannot be
    made, and the running link keeps what the server holds and posts nothing.
    """
    result = await _choose_source(
        hass, flexmeasures_entry, "action", nordpool_entry.entry_id
    )
    assert result["description_placeholders"]["slots"] == "96"
    result = await configure(hass, result["flow_id"], {"source_unit": "SEK/MWh"})
    # The EUR price sensor cannot take SEK.
    assert select_values(result, "sensor") == ["new"]
    await _new_sensor(hass, result, "Day-ahead SE3", "SEK/MWh", HOUR)
    today = {
        "start": "2026-11-01T23:00:00+00:00",
        "duration": "PT24H",
        "values": pytest.approx(_hourly_means(TODAY, currency="SEK")),
        "unit": "SEK/MWh",
        "prior": SOURCES_NOW.isoformat(),
    }
    assert posted(fake_server, 40) == [today]
    link = _link(flexmeasures_entry)

    # Nord Pool does not answer: the flow refuses the source, in plain English.
    nordpool_api.error = TimeoutError()
    result = await start_flow(hass, flexmeasures_entry, SUBENTRY_FORECAST_LINK)
    result = await configure(hass, result["flow_id"], {"source_type": "action"})
    result = await configure(
        hass, result["flow_id"], {"source_entry": nordpool_entry.entry_id}
    )
    assert result["errors"] == {"source_entry": "source_unreadable"}
    assert await _flow_error(hass, "source_unreadable") == (
        "This integration cannot be read now. Check that it is loaded and has data."
    )
    hass.config_entries.subentries.async_abort(result["flow_id"])

    # The link keeps what the server holds and posts nothing meanwhile.
    held = dict(link.held)
    await _refresh(hass, freezer)
    assert "Nord Pool" in (link.source_error or "")
    assert link.held == held
    assert link.pending == {}
    assert len(posted(fake_server, 40)) == 1

    # Nord Pool is back, still without tomorrow: nothing to post again.
    nordpool_api.error = None
    await _refresh(hass, freezer)
    assert link.source_error is None
    assert link.held == held
    assert posted(fake_server, 40) == [today]

    nordpool_api.published.add(TOMORROW)
    await _refresh(hass, freezer)
    tomorrow = {
        "start": "2026-11-02T23:00:00+00:00",
        "duration": "PT24H",
        "values": pytest.approx(_hourly_means(TOMORROW, currency="SEK")),
        "unit": "SEK/MWh",
        "prior": (SOURCES_NOW + 3 * REFRESH).isoformat(),
    }
    assert posted(fake_server, 40) == [today, tomorrow]
    assert link.horizon == _utc("2026-11-03T23:00:00Z")

    await _refresh(hass, freezer)
    assert posted(fake_server, 40) == [today, tomorrow]


async def test_tibber_prices_in_the_unit_the_user_gives(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    flexmeasures_entry: MockConfigEntry,
    tibber_entry: MockConfigEntry,
) -> None:
    """Tibber states no unit: the user's EUR/kWh, times 1000 on an EUR/MWh sensor."""
    result = await _choose_source(
        hass, flexmeasures_entry, "action", tibber_entry.entry_id
    )
    assert result["description_placeholders"]["unit"] == "-"
    assert result["description_placeholders"]["slots"] == "48"
    result = await configure(hass, result["flow_id"], {"source_unit": "EUR/kWh"})
    assert select_values(result, "sensor") == [str(PRICE_SENSOR), "new"]
    result = await configure(hass, result["flow_id"], {"sensor": str(PRICE_SENSOR)})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["source_unit"] == "EUR/kWh"
    await hass.async_block_till_done(wait_background_tasks=True)

    info = tibber_price_info()
    rows = info["today"] + info["tomorrow"]
    assert posted(fake_server, PRICE_SENSOR) == [
        {
            "start": "2026-11-01T23:00:00+00:00",
            "duration": "PT48H",
            "values": pytest.approx([row["total"] * 1000 for row in rows]),
            "unit": "EUR/MWh",
            "prior": SOURCES_NOW.isoformat(),
        }
    ]


async def test_solar_wh_per_hour_becomes_kw_per_quarter_hour(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    flexmeasures_entry: MockConfigEntry,
    solar_entry: MockConfigEntry,
) -> None:
    """Wh per hour from the energy platform: the hour's mean kW in its four slots.

    The forecast covers daylight only: each day is its own POST.
    """
    result = await _choose_source(
        hass, flexmeasures_entry, "solar_forecast", solar_entry.entry_id
    )
    assert result["description_placeholders"]["source"] == "Roof (Sample Solar)"
    assert result["description_placeholders"]["unit"] == "Wh"
    assert suggested(result["data_schema"]) == {"source_unit": "Wh"}
    result = await configure(hass, result["flow_id"], {"source_unit": "Wh"})
    defaults = await _new_sensor(hass, result, "Roof PV forecast", "kW", QUARTER)
    assert defaults["unit_of_measurement"] == "kW"

    hours = solar_wh_hours()
    assert posted(fake_server, 40) == [
        {
            "start": f"{day}T06:00:00+00:00",
            "duration": "PT10H",
            "values": pytest.approx(
                [
                    wh / 1000
                    for start, wh in hours.items()
                    if start.startswith(day)
                    for _quarter in range(4)
                ]
            ),
            "unit": "kW",
            "prior": SOURCES_NOW.isoformat(),
        }
        for day in (TODAY, TOMORROW)
    ]
    link = _link(flexmeasures_entry)
    assert link.horizon == _utc("2026-11-03T16:00:00Z")
    # The series posted: both days, though it took two POSTs.
    assert link.slots_posted == 2 * 40


@pytest.mark.usefixtures("sample_solar")
async def test_solar_sunrise_and_sunset_periods(
    hass: HomeAssistant,
    sources_clock: None,
    fake_server: FakeFlexMeasures,
    flexmeasures_entry: MockConfigEntry,
) -> None:
    """Forecast.Solar's day starts at sunrise and ends at sunset, not on the hour.

    Keyed by each period's start (as forecast_solar's energy platform gives it
    from 2026.11 on): 07:42-08:00, then hours, then 16:00 until sunset (whose
    end the keys no longer tell: an hour at most). Each period's energy is its
    own mean power: a short first period does not shorten the hours after it.
    """
    wh_hours = {
        "2026-11-02T07:42:00+01:00": 30,
        "2026-11-02T08:00:00+01:00": 1020,
        "2026-11-02T09:00:00+01:00": 1598,
        "2026-11-02T16:00:00+01:00": 116,
        "2026-11-03T07:44:00+01:00": 32,
        "2026-11-03T08:00:00+01:00": 742,
    }
    solar = MockConfigEntry(
        domain="sample_solar", title="Roof", data={"wh_hours": wh_hours}
    )
    solar.add_to_hass(hass)
    assert await hass.config_entries.async_setup(solar.entry_id)
    await hass.async_block_till_done()

    result = await _choose_source(
        hass, flexmeasures_entry, "solar_forecast", solar.entry_id
    )
    result = await configure(hass, result["flow_id"], {"source_unit": "Wh"})
    await _new_sensor(hass, result, "Roof PV forecast", "kW", QUARTER)

    # 30 Wh in 18 minutes: 0.1 kW; the 07:30 slot is only partly covered.
    # 09:00 lasts an hour (then nothing until 16:00), as does 16:00.
    assert posted(fake_server, 40) == [
        {
            "start": "2026-11-02T06:45:00+00:00",
            "duration": "PT2H15M",
            "values": pytest.approx([0.1] + [1.02] * 4 + [1.598] * 4),
            "unit": "kW",
            "prior": SOURCES_NOW.isoformat(),
        },
        {
            "start": "2026-11-02T15:00:00+00:00",
            "duration": "PT1H",
            "values": pytest.approx([0.116] * 4),
            "unit": "kW",
            "prior": SOURCES_NOW.isoformat(),
        },
        {
            "start": "2026-11-03T06:45:00+00:00",
            "duration": "PT1H15M",
            "values": pytest.approx([0.12] + [0.742] * 4),
            "unit": "kW",
            "prior": SOURCES_NOW.isoformat(),
        },
    ]


async def test_unreadable_attribute_refused_with_its_message(
    hass: HomeAssistant, flexmeasures_entry: MockConfigEntry
) -> None:
    """Slots whose start has no time zone: refused on the attribute, in English."""
    hass.states.async_set(
        "sensor.entsoe_prices",
        "0.21",
        {
            "unit_of_measurement": "EUR/kWh",
            "prices_today": [
                {"time": "2026-11-02 13:00:00", "price": 0.21},
                {"time": "2026-11-02 14:00:00", "price": 0.23},
            ],
        },
    )
    result = await start_flow(hass, flexmeasures_entry, SUBENTRY_FORECAST_LINK)
    result = await configure(hass, result["flow_id"], {"source_type": "attribute"})
    result = await configure(
        hass, result["flow_id"], {"source_entity": "sensor.entsoe_prices"}
    )
    assert select_values(result, "source_attribute") == ["prices_today"]
    result = await configure(
        hass, result["flow_id"], {"source_attribute": "prices_today"}
    )
    assert result["step_id"] == "source_attribute"
    assert result["errors"] == {"source_attribute": "shape_bad_start"}
    assert await _flow_error(hass, "shape_bad_start") == (
        "A slot's start is not a date and time with a time zone."
    )
    assert not [
        subentry
        for subentry in flexmeasures_entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_FORECAST_LINK
    ]
