"""Forecast-link sources: prices and solar forecasts read from real integrations."""

from __future__ import annotations

from datetime import datetime, timedelta
import sys
from types import ModuleType
from typing import Any, cast
from unittest.mock import AsyncMock, MagicMock, Mock

import aiohttp
from homeassistant.config_entries import ConfigFlow
from homeassistant.const import CONF_ACCESS_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockModule,
    mock_config_flow,
    mock_integration,
    mock_platform,
)

from custom_components.flexmeasures.const import (
    DOMAIN,
    SOURCE_ACTION,
    SOURCE_ATTRIBUTE,
    SOURCE_SOLAR_FORECAST,
)
from custom_components.flexmeasures.forecasts.model import SourcePoint
from custom_components.flexmeasures.forecasts.sources import (
    FORECAST_SOLAR,
    FORECAST_SOLAR_BY_START,
    async_read_source,
    source_entries,
)

from .forecast_sources import (
    TODAY,
    TOMORROW,
    YESTERDAY,
    NordPoolApi,
    nordpool_day,
    solar_wh_hours,
    tibber_price_info,
)


def _utc(text: str) -> datetime:
    """Return an ISO time from a fixture in UTC."""
    moment = dt_util.parse_datetime(text)
    assert moment is not None
    return dt_util.as_utc(moment)


def nordpool_points(*days: str, area: str = "SE3") -> tuple[SourcePoint, ...]:
    """Return the fixture's prices of one area as the points a read should give."""
    return tuple(
        SourcePoint(
            _utc(row["deliveryStart"]),
            _utc(row["deliveryEnd"]),
            row["entryPerArea"][area],
        )
        for day in days
        for row in nordpool_day(day)["multiAreaEntries"]
    )


async def expect_error(
    hass: HomeAssistant, source_type: str, entry_id: str, key: str
) -> HomeAssistantError:
    """Read a source that cannot be read; return the error after checking its key."""
    with pytest.raises(HomeAssistantError) as caught:
        await async_read_source(hass, source_type, entry_id)
    assert caught.value.translation_domain == DOMAIN
    assert caught.value.translation_key == key
    return caught.value


# --- Nord Pool -----------------------------------------------------------------


async def test_nordpool_today_and_tomorrow(
    hass: HomeAssistant, nordpool_entry: MockConfigEntry, nordpool_api: NordPoolApi
) -> None:
    """Both published days of the entry's first area, per MWh in its currency."""
    asked_before = len(nordpool_api.requests)

    series = await async_read_source(hass, SOURCE_ACTION, nordpool_entry.entry_id)

    assert series.points == nordpool_points(TODAY, TOMORROW)
    assert len(series.points) == 2 * 96  # quarter-hours since October 2025
    assert series.points[0].start == datetime.fromisoformat("2026-11-01T23:00Z")
    assert series.points[-1].end == datetime.fromisoformat("2026-11-03T23:00Z")
    assert series.unit == "SEK/MWh"
    assert series.published_at is None
    # Whenever the action asks Nord Pool, it asks for the first area only.
    asked = nordpool_api.requests[asked_before:]
    assert all(query["deliveryArea"] == "SE3" for query in asked)


@pytest.mark.parametrize("nordpool_published", [(YESTERDAY, TODAY)])
async def test_nordpool_tomorrow_not_published(
    hass: HomeAssistant, nordpool_entry: MockConfigEntry
) -> None:
    """Before Nord Pool publishes tomorrow, today's prices are the series."""
    series = await async_read_source(hass, SOURCE_ACTION, nordpool_entry.entry_id)

    assert series.points == nordpool_points(TODAY)
    assert series.unit == "SEK/MWh"


@pytest.mark.parametrize("nordpool_published", [(YESTERDAY, TODAY)])
@pytest.mark.parametrize(
    "error", [TimeoutError(), aiohttp.ClientConnectionError("connection reset")]
)
async def test_nordpool_action_fails(
    hass: HomeAssistant,
    nordpool_entry: MockConfigEntry,
    nordpool_api: NordPoolApi,
    error: Exception,
) -> None:
    """Nord Pool not answering the action is a translated error naming the source."""
    nordpool_api.error = error

    err = await expect_error(
        hass, SOURCE_ACTION, nordpool_entry.entry_id, "source_read_failed"
    )

    placeholders = err.translation_placeholders or {}
    assert placeholders["source"] == "Nord Pool"
    assert placeholders["error"]  # what Nord Pool's side said, never empty


# --- Tibber --------------------------------------------------------------------


async def test_tibber_today_and_tomorrow(
    hass: HomeAssistant, tibber_entry: MockConfigEntry
) -> None:
    """The home's prices of today and tomorrow, each an hour; no unit stated."""
    info = tibber_price_info()

    series = await async_read_source(hass, SOURCE_ACTION, tibber_entry.entry_id)

    assert series.points == tuple(
        SourcePoint(
            _utc(row["startsAt"]),
            _utc(row["startsAt"]) + timedelta(hours=1),
            row["total"],
        )
        for row in info["today"] + info["tomorrow"]
    )
    assert series.unit is None
    assert series.published_at is None


async def test_tibber_without_home(
    hass: HomeAssistant, tibber_entry: MockConfigEntry, tibber_client: MagicMock
) -> None:
    """An account without an active home has no prices."""
    tibber_client.get_homes.return_value = []

    await expect_error(hass, SOURCE_ACTION, tibber_entry.entry_id, "source_empty")


async def test_tibber_price_missing(
    hass: HomeAssistant, tibber_entry: MockConfigEntry, tibber_client: MagicMock
) -> None:
    """A price Tibber left out makes the answer unreadable, not a zero."""
    (home,) = tibber_client.get_homes.return_value
    home.price_total[next(iter(home.price_total))] = None

    await expect_error(hass, SOURCE_ACTION, tibber_entry.entry_id, "source_unexpected")


async def test_tibber_two_accounts(
    hass: HomeAssistant, tibber_entry: MockConfigEntry, tibber_client: MagicMock
) -> None:
    """Tibber's action answers for one account: with two, neither can be read."""
    homes = tibber_client.get_homes.return_value
    tibber_client.get_homes.return_value = []  # the other account has none
    other = MockConfigEntry(
        domain="tibber",
        title="Other account",
        unique_id="other-user",
        data=dict(tibber_entry.data) | {CONF_ACCESS_TOKEN: "other-token"},
    )
    other.add_to_hass(hass)
    assert await hass.config_entries.async_setup(other.entry_id)
    await hass.async_block_till_done()
    tibber_client.get_homes.return_value = homes

    err = await expect_error(
        hass, SOURCE_ACTION, tibber_entry.entry_id, "source_ambiguous"
    )
    # The title names the integration already; other titles get its name added.
    assert err.translation_placeholders == {"source": "Tibber account"}


# --- Solar forecast ------------------------------------------------------------


async def test_solar_forecast(
    hass: HomeAssistant, solar_entry: MockConfigEntry
) -> None:
    """The energy platform's forecast: Wh per hour, each point an hour long."""
    series = await async_read_source(hass, SOURCE_SOLAR_FORECAST, solar_entry.entry_id)

    assert series.points == tuple(
        SourcePoint(_utc(start), _utc(start) + timedelta(hours=1), wh)
        for start, wh in solar_wh_hours().items()
    )
    assert series.unit == "Wh"
    assert series.published_at is None


class _ForecastSolarFlow(ConfigFlow):
    """The flow Home Assistant needs to set up a stand-in forecast_solar entry."""

    VERSION = 1


# Forecast.Solar's day as its API keys it: sunrise (nothing yet), then the
# energy of the period ending at each key.
FORECAST_SOLAR_KEYS = {
    "2026-11-02T07:42:00+01:00": 0,
    "2026-11-02T08:00:00+01:00": 30,
    "2026-11-02T09:00:00+01:00": 1020,
    "2026-11-02T10:00:00+01:00": 1598,
}


@pytest.mark.parametrize(
    ("by_start", "periods"),
    [
        # Before Home Assistant 2026.11 the platform passed the API's keys on.
        (
            False,
            [
                ("06:42", "07:42"),
                ("07:42", "08:00"),
                ("08:00", "09:00"),
                ("09:00", "10:00"),
            ],
        ),
        # From 2026.11 on it keys each period by its start.
        (
            True,
            [
                ("07:42", "08:00"),
                ("08:00", "09:00"),
                ("09:00", "10:00"),
                ("10:00", "11:00"),
            ],
        ),
    ],
)
async def test_forecast_solar_keyed_by_end_before_2026_11(
    hass: HomeAssistant,
    sources_clock: None,
    monkeypatch: pytest.MonkeyPatch,
    by_start: bool,
    periods: list[tuple[str, str]],
) -> None:
    """Home Assistant's forecast_solar: each value in the period it belongs to."""
    energy = ModuleType("tests.forecast_solar_energy")

    async def async_get_solar_forecast(
        hass: HomeAssistant, config_entry_id: str
    ) -> dict[str, Any]:
        return {"wh_hours": FORECAST_SOLAR_KEYS}

    async_get_solar_forecast.__module__ = energy.__name__
    energy.async_get_solar_forecast = async_get_solar_forecast  # type: ignore[attr-defined]
    if by_start:
        setattr(energy, FORECAST_SOLAR_BY_START, lambda wh_period: wh_period)
    monkeypatch.setitem(sys.modules, energy.__name__, energy)
    # A stand-in (its library is not installed here), set up as a custom
    # integration: 2026.11 refuses a built-in's boolean answer, 2025.4 wants it.
    mock_integration(
        hass,
        MockModule(FORECAST_SOLAR, async_setup_entry=AsyncMock(return_value=True)),
        built_in=False,
    )
    mock_platform(hass, f"{FORECAST_SOLAR}.config_flow", built_in=False)
    mock_platform(
        hass, f"{FORECAST_SOLAR}.energy", cast("Mock", energy), built_in=False
    )
    entry = MockConfigEntry(domain=FORECAST_SOLAR, title="Forecast.Solar")
    entry.add_to_hass(hass)
    with mock_config_flow(FORECAST_SOLAR, _ForecastSolarFlow):
        assert await hass.config_entries.async_setup(entry.entry_id)

    series = await async_read_source(hass, SOURCE_SOLAR_FORECAST, entry.entry_id)

    assert series.points == tuple(
        SourcePoint(_utc(f"{TODAY}T{start}+01:00"), _utc(f"{TODAY}T{end}+01:00"), wh)
        for (start, end), wh in zip(periods, FORECAST_SOLAR_KEYS.values(), strict=True)
    )


async def test_solar_forecast_single_period(
    hass: HomeAssistant, sample_solar: None
) -> None:
    """A forecast of one period lasts an hour, as the energy dashboard takes it."""
    entry = MockConfigEntry(
        domain="sample_solar", data={"wh_hours": {"2026-11-02T12:00:00+01:00": 812}}
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)

    series = await async_read_source(hass, SOURCE_SOLAR_FORECAST, entry.entry_id)

    start = datetime.fromisoformat("2026-11-02T11:00Z")
    assert series.points == (SourcePoint(start, start + timedelta(hours=1), 812),)


@pytest.mark.parametrize(
    ("wh_hours", "key"),
    [
        ({}, "source_empty"),
        ({"tomorrow morning": 812}, "source_unexpected"),
        ({"2026-11-02T12:00:00+01:00": "sunny"}, "source_unexpected"),
    ],
)
async def test_solar_forecast_unusable(
    hass: HomeAssistant, sample_solar: None, wh_hours: dict[str, object], key: str
) -> None:
    """No forecast, or one in another shape, is a translated error."""
    entry = MockConfigEntry(domain="sample_solar", data={"wh_hours": wh_hours})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)

    await expect_error(hass, SOURCE_SOLAR_FORECAST, entry.entry_id, key)


# --- Entries that cannot be read -----------------------------------------------


async def test_entry_not_loaded(
    hass: HomeAssistant, nordpool_entry: MockConfigEntry, solar_entry: MockConfigEntry
) -> None:
    """An unloaded or deleted entry is a translated error, not a call."""
    assert await hass.config_entries.async_unload(nordpool_entry.entry_id)
    assert await hass.config_entries.async_unload(solar_entry.entry_id)

    err = await expect_error(
        hass, SOURCE_ACTION, nordpool_entry.entry_id, "source_not_loaded"
    )
    assert err.translation_placeholders == {"source": "Nord Pool"}
    await expect_error(
        hass, SOURCE_SOLAR_FORECAST, solar_entry.entry_id, "source_not_loaded"
    )
    err = await expect_error(hass, SOURCE_ACTION, "gone", "source_not_found")
    assert err.translation_placeholders == {"entry_id": "gone"}


async def test_entry_cannot_feed(
    hass: HomeAssistant, nordpool_entry: MockConfigEntry, solar_entry: MockConfigEntry
) -> None:
    """An entry of an integration that cannot feed the kind of source is refused."""
    for source_type, entry in (
        (SOURCE_ACTION, solar_entry),
        (SOURCE_SOLAR_FORECAST, nordpool_entry),
        (SOURCE_ATTRIBUTE, nordpool_entry),
    ):
        await expect_error(hass, source_type, entry.entry_id, "source_unsupported")


# --- Listing -------------------------------------------------------------------


async def test_source_entries(
    hass: HomeAssistant,
    nordpool_entry: MockConfigEntry,
    tibber_entry: MockConfigEntry,
    solar_entry: MockConfigEntry,
) -> None:
    """Only loaded entries that can feed the kind of source are listed."""
    unloaded = MockConfigEntry(domain="sample_solar", title="Shed", data={})
    unloaded.add_to_hass(hass)
    actions = [
        (nordpool_entry.entry_id, "Nord Pool"),
        (tibber_entry.entry_id, "Tibber account"),
    ]
    solar = [(solar_entry.entry_id, "Roof (Sample Solar)")]

    assert source_entries(hass, SOURCE_ACTION) == actions
    # Before any energy platform is imported, having one counts ...
    assert source_entries(hass, SOURCE_SOLAR_FORECAST) == solar
    # ... and afterwards what it offers.
    await async_read_source(hass, SOURCE_SOLAR_FORECAST, solar_entry.entry_id)
    assert source_entries(hass, SOURCE_SOLAR_FORECAST) == solar
    assert source_entries(hass, SOURCE_ATTRIBUTE) == []
