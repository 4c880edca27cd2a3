"""Read the series other integrations hold: day-ahead prices and solar forecasts.

Two kinds of source, each a config entry of another integration:

- ``SOURCE_ACTION``: a price integration's response action. Nord Pool's
  ``nordpool.get_prices_for_date`` (called for today and tomorrow; the entry's
  first area, in the entry's currency, per MWh as Nord Pool publishes) and
  Tibber's ``tibber.get_prices`` (today and tomorrow of the account's first
  home: the action states neither the currency nor the home's id, so the unit
  is None and the link must give it, as ``CONF_SOURCE_UNIT``).
- ``SOURCE_SOLAR_FORECAST``: the solar forecast an integration gives Home
  Assistant's energy dashboard (its ``energy`` platform's
  ``async_get_solar_forecast``, found as the energy panel finds it): Wh per
  period, keyed by the period's start (forecast_solar before Home Assistant
  2026.11: by its end).

Neither action says when the prices were published, nor does the energy
platform for its forecast: ``published_at`` is None for all of them (Nord Pool's
"last updated" sensor holds today's delivery day only; dating tomorrow's prices
by it would claim they were known before they existed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from itertools import pairwise
import sys
from typing import Any, Final

import aiohttp
from homeassistant.components.energy.websocket_api import async_get_energy_platforms
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.loader import async_get_loaded_integration
from homeassistant.util import dt as dt_util

from ..const import DOMAIN, SOURCE_ACTION, SOURCE_SOLAR_FORECAST
from ..util import as_utc
from .model import SourcePoint, SourceSeries

NORDPOOL: Final = "nordpool"
NORDPOOL_ACTION: Final = "get_prices_for_date"
TIBBER: Final = "tibber"
TIBBER_ACTION: Final = "get_prices"
# The action each price integration answers with (domain -> action).
PRICE_ACTIONS: Final[Mapping[str, str]] = {
    NORDPOOL: NORDPOOL_ACTION,
    TIBBER: TIBBER_ACTION,
}
# Errors that mean "nothing published for that day", not a failure (Nord Pool's
# action as of 2025.4 refuses such a day; 2026 releases answer an empty list).
NOT_PUBLISHED: Final = frozenset({(NORDPOOL, "empty_response")})
ENERGY_PLATFORM: Final = "energy"
SOLAR_UNIT: Final = "Wh"
# A solar forecast of one period is taken to cover an hour (the energy
# dashboard's "wh_hours"); more points show their spacing.
SOLAR_PERIOD: Final = timedelta(hours=1)
# Home Assistant's forecast_solar keyed each value by the end of its period, as
# the Forecast.Solar API does, until 2026.11 keyed it by the start: its energy
# module has imported ``energy_by_period_start`` since (2025.4 and 2026.10.4
# have no such name).
FORECAST_SOLAR: Final = "forecast_solar"
FORECAST_SOLAR_BY_START: Final = "energy_by_period_start"

type _Reader = Callable[[HomeAssistant, ConfigEntry], Awaitable[SourceSeries]]


def source_entries(hass: HomeAssistant, source_type: str) -> list[tuple[str, str]]:
    """Return (entry id, label) of the loaded entries that can feed ``source_type``.

    Action sources: Nord Pool and Tibber entries whose action this Home
    Assistant has. Solar forecasts: entries of integrations with an energy
    platform that forecasts solar (when the platform is not imported yet, its
    presence counts; reading it says if it forecasts nothing).
    """
    return [
        (entry.entry_id, _label(hass, entry))
        for entry in hass.config_entries.async_entries()
        if entry.state is ConfigEntryState.LOADED
        and _can_feed(hass, entry, source_type)
    ]


async def async_read_source(
    hass: HomeAssistant, source_type: str, entry_id: str
) -> SourceSeries:
    """Return what the entry holds now, in the source's own unit.

    Raises a translated HomeAssistantError when the entry is gone, not loaded,
    cannot feed this kind of source, or its action fails or holds nothing.
    """
    if (entry := hass.config_entries.async_get_entry(entry_id)) is None:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="source_not_found",
            translation_placeholders={"entry_id": entry_id},
        )
    if entry.state is not ConfigEntryState.LOADED:
        raise _error("source_not_loaded", hass, entry)
    reader: _Reader | None = None
    if source_type == SOURCE_ACTION:
        reader = _ACTION_READERS.get(entry.domain)
    elif source_type == SOURCE_SOLAR_FORECAST:
        reader = _read_solar_forecast
    if reader is None:
        raise _error("source_unsupported", hass, entry)
    return await reader(hass, entry)


def _can_feed(hass: HomeAssistant, entry: ConfigEntry, source_type: str) -> bool:
    """Return whether a loaded entry can feed a source of ``source_type``."""
    if source_type == SOURCE_ACTION:
        action = PRICE_ACTIONS.get(entry.domain)
        return action is not None and hass.services.has_service(entry.domain, action)
    if source_type == SOURCE_SOLAR_FORECAST:
        integration = async_get_loaded_integration(hass, entry.domain)
        if (platform := integration.get_platform_cached(ENERGY_PLATFORM)) is not None:
            return hasattr(platform, "async_get_solar_forecast")
        return bool(integration.platforms_exists((ENERGY_PLATFORM,)))
    return False


def _label(hass: HomeAssistant, entry: ConfigEntry) -> str:
    """Return the entry's title, with its integration's name when the title lacks it."""
    name = async_get_loaded_integration(hass, entry.domain).name
    return (
        entry.title
        if name.casefold() in entry.title.casefold()
        else (f"{entry.title} ({name})")
    )


def _error(
    key: str, hass: HomeAssistant, entry: ConfigEntry, **placeholders: str
) -> HomeAssistantError:
    """Return the translated error ``key`` about the source ``entry``."""
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders={"source": _label(hass, entry), **placeholders},
    )


async def _call(
    hass: HomeAssistant, entry: ConfigEntry, data: dict[str, Any]
) -> dict[str, Any]:
    """Call the entry's price action and return its response."""
    try:
        response = await hass.services.async_call(
            entry.domain,
            PRICE_ACTIONS[entry.domain],
            data,
            blocking=True,
            return_response=True,
        )
    except HomeAssistantError as err:
        if (err.translation_domain, err.translation_key) in NOT_PUBLISHED:
            return {}
        raise _error("source_read_failed", hass, entry, error=str(err)) from err
    except (TimeoutError, aiohttp.ClientError) as err:
        raise _error(
            "source_read_failed", hass, entry, error=str(err) or type(err).__name__
        ) from err
    return dict(response or {})


@contextmanager
def _readable(hass: HomeAssistant, entry: ConfigEntry) -> Iterator[None]:
    """Turn an answer that is not in the source's usual shape into an error."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise _error("source_unexpected", hass, entry, error=repr(err)) from err


def _moment(value: Any) -> datetime:
    """Return a response's time (ISO text or a datetime) in UTC."""
    moment = value if isinstance(value, datetime) else dt_util.parse_datetime(value)
    if moment is None:
        raise ValueError(f"not a time: {value!r}")
    return as_utc(moment)


def _spaced(
    keys_values: Iterable[tuple[datetime, float]],
    single: timedelta | None,
    *,
    by_end: bool = False,
) -> tuple[SourcePoint, ...]:
    """Return points sorted by start, each as long as the spacing says.

    Keys are the points' starts (``by_end``: their ends). A point ends where
    the next one starts (starts where the previous one ended), at most the
    typical step (the median step between keys) away: Forecast.Solar's first
    period starts at sunrise (07:42-08:00) and its hours are still hours; the
    one next to a night or a gap lasts a typical step. A lone point lasts
    ``single`` (None: its end is unknown).
    """
    ordered = sorted(keys_values)
    keys = sorted({key for key, _ in ordered})
    steps = sorted(b - a for a, b in pairwise(keys))
    typical = steps[len(steps) // 2] if steps else single
    if typical is None:
        return tuple(SourcePoint(key, None, value) for key, value in ordered)
    if by_end:
        previous = {b: a for a, b in pairwise(keys)}
        return tuple(
            SourcePoint(
                max(key - typical, previous.get(key, key - typical)), key, value
            )
            for key, value in ordered
        )
    following = dict(pairwise(keys))
    return tuple(
        SourcePoint(key, min(key + typical, following.get(key, key + typical)), value)
        for key, value in ordered
    )


async def _read_nordpool(hass: HomeAssistant, entry: ConfigEntry) -> SourceSeries:
    """Return today's and tomorrow's prices of the entry's first area."""
    area: str = entry.data["areas"][0]
    today = dt_util.now().date()
    points: list[SourcePoint] = []
    for day in (today, today + timedelta(days=1)):
        response = await _call(
            hass,
            entry,
            {"config_entry": entry.entry_id, "date": day.isoformat(), "areas": area},
        )
        with _readable(hass, entry):
            points.extend(
                SourcePoint(
                    _moment(row["start"]), _moment(row["end"]), float(row["price"])
                )
                for row in response.get(area, [])
            )
    if not points:
        raise _error("source_empty", hass, entry)
    return SourceSeries(
        points=tuple(sorted(points, key=lambda point: point.start)),
        unit=f"{entry.data['currency']}/MWh",
    )


async def _read_tibber(hass: HomeAssistant, entry: ConfigEntry) -> SourceSeries:
    """Return today's and tomorrow's prices of the account's first home."""
    loaded = [
        other
        for other in hass.config_entries.async_entries(TIBBER)
        if other.state is ConfigEntryState.LOADED
    ]
    # Tibber's action takes no entry: it answers for one account only.
    if len(loaded) > 1:
        raise _error("source_ambiguous", hass, entry)
    start = dt_util.start_of_local_day()
    end = start + timedelta(days=2)
    response = await _call(
        hass, entry, {"start": start.isoformat(), "end": end.isoformat()}
    )
    with _readable(hass, entry):
        homes: dict[str, list[dict[str, Any]]] = response["prices"]
        rows = next(iter(homes.values()), [])
        points = _spaced(
            ((_moment(row["start_time"]), float(row["price"])) for row in rows),
            None,
        )
    if not points:
        raise _error("source_empty", hass, entry)
    return SourceSeries(points=points, unit=None)


async def _read_solar_forecast(hass: HomeAssistant, entry: ConfigEntry) -> SourceSeries:
    """Return the entry's solar forecast as the energy dashboard gets it."""
    platforms = await async_get_energy_platforms(hass)
    if (get_forecast := platforms.get(entry.domain)) is None:
        raise _error("source_unsupported", hass, entry)
    forecast = await get_forecast(hass, entry.entry_id)
    if not forecast or not forecast.get("wh_hours"):
        raise _error("source_empty", hass, entry)
    with _readable(hass, entry):
        points = _spaced(
            ((_moment(key), float(wh)) for key, wh in forecast["wh_hours"].items()),
            SOLAR_PERIOD,
            by_end=_keyed_by_end(entry, get_forecast),
        )
    return SourceSeries(points=points, unit=SOLAR_UNIT)


def _keyed_by_end(entry: ConfigEntry, get_forecast: Callable[..., Any]) -> bool:
    """Return whether the platform keys each period by its end (see FORECAST_SOLAR)."""
    if entry.domain != FORECAST_SOLAR:
        return False
    module = sys.modules.get(get_forecast.__module__)
    return module is not None and not hasattr(module, FORECAST_SOLAR_BY_START)


_ACTION_READERS: Final[Mapping[str, _Reader]] = {
    NORDPOOL: _read_nordpool,
    TIBBER: _read_tibber,
}
