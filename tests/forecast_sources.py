"""Real source integrations for forecast-link tests: Nord Pool, Tibber, solar.

Fixtures (imported into tests/conftest.py, so every test can ask for them):

- ``sources_clock``: Home Assistant in Stockholm at SOURCES_NOW (13:07 CET on
  2 November 2026, after Nord Pool published the next day's prices).
- ``nordpool_api``: Nord Pool's ``DayAheadPrices`` API as pynordpool calls it,
  behind Home Assistant's aiohttp mock and ahead of any other route there (the
  recorded FlexMeasures server answers every other URL). It answers the days
  of ``nordpool_published`` (yesterday, today and tomorrow; parametrize it
  to leave tomorrow out) in the currency asked (the fixtures hold SEK; EUR is
  SEK at the day's exchange rate, as Nord Pool publishes both); setting
  ``error`` makes every later request raise it.
- ``nordpool_entry``: Home Assistant's own nordpool integration, set up
  (areas SE3 and SE4, in ``nordpool_currency``: SEK unless parametrized)
  against that API.
- ``tibber_entry``: Home Assistant's own tibber integration with pyTibber's
  ``Tibber`` client mocked, as Home Assistant's tests do; ``tibber_client``
  is that mock, whose home (set up after the entry, as in those tests) has the
  fixture's prices in pyTibber's ``price_total`` form.
- ``solar_entry``: the test integration ``sample_solar``
  (tests/testing_config/custom_components), whose energy platform serves the
  fixture's forecast as forecast_solar's does.

The answers are in tests/fixtures/sources (see the README there).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
import re
import time
from typing import Any
from unittest.mock import AsyncMock, MagicMock, patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant import loader
from homeassistant.const import CONF_ACCESS_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.test_util.aiohttp import (
    AiohttpClientMocker,
    AiohttpClientMockResponse,
)
from yarl import URL

import custom_components

from .conftest import load_fixture

SOURCES_NOW = datetime.fromisoformat("2026-11-02T12:07:30+00:00")
SOURCES_TIME_ZONE = "Europe/Stockholm"
YESTERDAY = "2026-11-01"
TODAY = "2026-11-02"
TOMORROW = "2026-11-03"
NORDPOOL_AREAS = ["SE3", "SE4"]
NORDPOOL_CURRENCY = "SEK"
NORDPOOL_URL = re.compile(re.escape("https://dataportal-api.nordpoolgroup.com/api/"))
TIBBER_HOME = "Storgatan"
TESTING_CUSTOM_COMPONENTS = Path(__file__).parent / "testing_config/custom_components"


def nordpool_day(day: str, currency: str = NORDPOOL_CURRENCY) -> dict[str, Any]:
    """Return Nord Pool's answer for one delivery day, both areas, in ``currency``.

    The fixtures hold SEK; EUR prices are those at the day's exchange rate,
    rounded to the cent per MWh as Nord Pool publishes them.
    """
    answer: dict[str, Any] = load_fixture(f"sources/nordpool_{day}.json")
    if currency == answer["currency"]:
        return answer
    assert (currency, answer["currency"]) == ("EUR", "SEK"), currency
    rate = float(answer["exchangeRate"])

    def eur(value: float) -> float:
        return round(value / rate, 2)

    return {
        **answer,
        "currency": currency,
        "multiAreaEntries": [
            {**row, "entryPerArea": {a: eur(v) for a, v in row["entryPerArea"].items()}}
            for row in answer["multiAreaEntries"]
        ],
        "blockPriceAggregates": [
            {
                **block,
                "averagePricePerArea": {
                    area: {key: eur(value) for key, value in figures.items()}
                    for area, figures in block["averagePricePerArea"].items()
                },
            }
            for block in answer["blockPriceAggregates"]
        ],
        "areaAverages": [
            {**average, "price": eur(average["price"])}
            for average in answer["areaAverages"]
        ],
    }


def tibber_price_info() -> dict[str, Any]:
    """Return Tibber's GraphQL ``priceInfo`` of the fixture home."""
    info: dict[str, Any] = load_fixture("sources/tibber_price_info.json")
    price_info: dict[str, Any] = info["viewer"]["home"]["currentSubscription"][
        "priceInfo"
    ]
    return price_info


def solar_wh_hours() -> dict[str, float]:
    """Return the fixture's solar forecast (Wh per hour by the hour's start)."""
    forecast: dict[str, dict[str, float]] = load_fixture("sources/solar_forecast.json")
    return forecast["wh_hours"]


@pytest.fixture
async def sources_clock(hass: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    """Put Home Assistant in Stockholm at SOURCES_NOW."""
    await hass.config.async_set_time_zone(SOURCES_TIME_ZONE)
    freezer.move_to(SOURCES_NOW)


@dataclass
class NordPoolApi:
    """Nord Pool's day-ahead API: the published delivery days."""

    published: set[str]
    error: Exception | None = None
    requests: list[dict[str, str]] = field(default_factory=list)

    async def __call__(
        self, method: str, url: URL, data: Any
    ) -> AiohttpClientMockResponse:
        """Answer a DayAheadPrices request, for the asked areas only."""
        query = dict(url.query)
        self.requests.append(query)
        if self.error is not None:
            raise self.error
        published = query["date"] in self.published
        if url.path != "/api/DayAheadPrices" or not published:
            # What Nord Pool answers for a day it has not published.
            return AiohttpClientMockResponse(method, url, status=HTTPStatus.NO_CONTENT)
        day = nordpool_day(query["date"], query.get("currency", NORDPOOL_CURRENCY))
        areas = query["deliveryArea"].split(",")
        answer = {
            **day,
            "deliveryAreas": areas,
            "multiAreaEntries": [
                {**row, "entryPerArea": {a: row["entryPerArea"][a] for a in areas}}
                for row in day["multiAreaEntries"]
            ],
        }
        return AiohttpClientMockResponse(method, url, json=answer)


@pytest.fixture
def nordpool_published() -> tuple[str, ...]:
    """Return the delivery days Nord Pool has published (parametrize to change)."""
    return (YESTERDAY, TODAY, TOMORROW)


@pytest.fixture
def nordpool_api(
    aioclient_mock: AiohttpClientMocker, nordpool_published: tuple[str, ...]
) -> NordPoolApi:
    """Serve Nord Pool's API with the ``nordpool_published`` days."""
    api = NordPoolApi(published=set(nordpool_published))
    aioclient_mock.get(NORDPOOL_URL, side_effect=api)  # type: ignore[no-untyped-call]
    # First in line: the recorded FlexMeasures server answers any URL.
    aioclient_mock._mocks.insert(0, aioclient_mock._mocks.pop())
    return api


@pytest.fixture
def nordpool_currency() -> str:
    """Return the currency of the Nord Pool entry (parametrize to change)."""
    return NORDPOOL_CURRENCY


@pytest.fixture
async def nordpool_entry(
    hass: HomeAssistant,
    sources_clock: None,
    nordpool_api: NordPoolApi,
    nordpool_currency: str,
) -> MockConfigEntry:
    """Set up Home Assistant's Nord Pool integration against ``nordpool_api``."""
    entry = MockConfigEntry(
        domain="nordpool",
        title="Nord Pool",
        data={"areas": NORDPOOL_AREAS, "currency": nordpool_currency},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def tibber_home() -> MagicMock:
    """Return the fixture's Tibber home as pyTibber holds it after a price update."""
    info = tibber_price_info()
    home = MagicMock(name=TIBBER_HOME)
    # (MagicMock's own "name" argument names the mock; set the attribute.)
    home.name = TIBBER_HOME
    home.currency = info["current"]["currency"]
    home.price_total = {
        row["startsAt"]: row["total"] for row in info["today"] + info["tomorrow"]
    }
    home.price_level = {
        row["startsAt"]: row["level"] for row in info["today"] + info["tomorrow"]
    }
    home.update_info_and_price_info = AsyncMock()
    return home


@pytest.fixture
def tibber_client() -> Iterator[MagicMock]:
    """Mock pyTibber's client as Home Assistant's tibber tests do."""
    with patch("tibber.Tibber", autospec=True) as tibber_class:
        client = tibber_class.return_value
        client.update_info = AsyncMock(return_value=True)
        client.user_id = "tibber-user"
        client.name = "Tibber account"
        client.rt_disconnect = AsyncMock()
        client.get_homes = MagicMock(return_value=[])
        client.data_api = MagicMock()
        client.data_api.get_all_devices = AsyncMock(return_value={})
        client.data_api.update_devices = AsyncMock(return_value={})
        yield client


@pytest.fixture
async def tibber_entry(
    hass: HomeAssistant,
    recorder_mock: Any,
    sources_clock: None,
    tibber_client: MagicMock,
) -> MockConfigEntry:
    """Set up Home Assistant's Tibber integration; its home then has prices."""
    # Tibber logs in with OAuth from 2026.1 on: application credentials and a
    # token; earlier releases read the access token. The entry carries both.
    if await _tibber_uses_oauth(hass):
        from homeassistant.components.application_credentials import (
            ClientCredential,
            async_import_client_credential,
        )

        assert await async_setup_component(hass, "application_credentials", {})
        await async_import_client_credential(
            hass, "tibber", ClientCredential("client-id", "client-secret"), "tibber"
        )
    entry = MockConfigEntry(
        domain="tibber",
        title="Tibber account",
        unique_id="tibber-user",
        data={
            CONF_ACCESS_TOKEN: "tibber-token",
            "auth_implementation": "tibber",
            "token": {
                "access_token": "tibber-token",
                "refresh_token": "tibber-refresh-token",
                "token_type": "Bearer",
                "expires_at": time.time() + 3600,
            },
        },
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    tibber_client.get_homes.return_value = [tibber_home()]
    return entry


async def _tibber_uses_oauth(hass: HomeAssistant) -> bool:
    """Return whether this release's tibber logs in with application credentials."""
    integration = await loader.async_get_integration(hass, "tibber")
    return "application_credentials" in integration.dependencies


@pytest.fixture
def sample_solar(hass: HomeAssistant) -> Generator[None]:
    """Make the test integration sample_solar loadable."""
    path = str(TESTING_CUSTOM_COMPONENTS)
    custom_components.__path__.append(path)
    # Home Assistant lists custom integrations once per instance.
    hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)
    yield
    custom_components.__path__.remove(path)


@pytest.fixture
async def solar_entry(
    hass: HomeAssistant, sources_clock: None, sample_solar: None
) -> MockConfigEntry:
    """Set up sample_solar with the fixture's forecast."""
    entry = MockConfigEntry(
        domain="sample_solar", title="Roof", data={"wh_hours": solar_wh_hours()}
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry
