"""Issue 16: forecast links post prices and PV forecasts to the real server.

Each link posts to a sensor of this test's own on the site asset (the seeded
price sensor feeds other tests' plans). FlexMeasures 1.0.1 cannot delete a
sensor here, so later runs reuse them; every run posts values of its own, so
what is read back is this run's, with this run's belief time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
import math
import random
import time
from types import MappingProxyType
from typing import Any

from homeassistant.config_entries import ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures.api import FlexMeasuresApi, Sensor
from custom_components.flexmeasures.const import SUBENTRY_FORECAST_LINK
from custom_components.flexmeasures.data import FlexMeasuresConfigEntry
from custom_components.flexmeasures.forecasts.link import ForecastLink
from tests.flow_helpers import configure, start_flow

from .conftest import INGESTION_WAIT, LiveServer

SENSOR_NAME = "forecast link prices"
PRICES = "sensor.live_day_ahead_prices"
# The 48-hour links of test_48_hours_of_prices_and_pv.
PRICES_48H = ("forecast link prices 48 h", "EUR/MWh", timedelta(hours=1))
PV_48H = ("forecast link PV 48 h", "kW", timedelta(minutes=15))
DAY_AHEAD = "sensor.live_day_ahead_price"
HOURS = 48


async def _own_sensor(
    api: FlexMeasuresApi,
    site_id: int,
    name: str,
    unit: str,
    resolution: timedelta,
) -> Sensor:
    """Return this test's sensor of that name on the site, created on first use."""
    for sensor in await api.async_get_sensors():
        if sensor.name == name and sensor.asset_id == site_id:
            assert (sensor.unit, sensor.resolution) == (unit, resolution)
            return sensor
    return await api.async_add_sensor(
        asset_id=site_id,
        name=name,
        unit=unit,
        resolution=resolution,
        timezone="Europe/Amsterdam",
    )


async def _real_pause(seconds: float) -> None:
    """Wait between ingestion-job look-ups in real time (HA's clock stands still)."""
    await asyncio.get_running_loop().run_in_executor(None, time.sleep, seconds)


async def _until_stored(entry: FlexMeasuresConfigEntry) -> ForecastLink:
    """Follow the ingestion jobs of the entry's newest link until it has no queue.

    Stands in for the links' 30-second timer while the test's clock stands
    still; return the link.
    """
    forecasts = entry.runtime_data.forecasts
    link = list(forecasts.links.values())[-1]
    for _ in range(INGESTION_WAIT):
        if not link.pending and not link.jobs:
            break
        await _real_pause(1.0)
        await forecasts.async_flush()
    assert not forecasts.server_down
    assert link.pending == {}
    assert link.jobs == {}
    assert link.rejected is None
    assert link.source_error is None
    return link


async def test_prices_posted_as_forecasts(
    hass: HomeAssistant, live_server: LiveServer, loaded_entry: FlexMeasuresConfigEntry
) -> None:
    """15-minute EUR/kWh prices arrive as hourly EUR/MWh means, each slot once."""
    api = loaded_entry.runtime_data.api
    sensor = await _own_sensor(
        api, live_server.assets["site"], SENSOR_NAME, "EUR/MWh", timedelta(hours=1)
    )
    hour = dt_util.utcnow().replace(minute=0, second=0, microsecond=0)
    start = hour + timedelta(days=1)
    # Values unique to this run: the newest beliefs are read back.
    quarter_prices = [round(random.uniform(-0.05, 0.4), 4) for _ in range(8)]  # noqa: S311
    step = timedelta(minutes=15)
    hass.states.async_set(
        PRICES,
        str(quarter_prices[0]),
        {
            "unit_of_measurement": "EUR/kWh",
            "raw_today": [
                {"start": start + i * step, "end": start + (i + 1) * step, "value": v}
                for i, v in enumerate(quarter_prices)
            ],
            "raw_tomorrow": [],
        },
    )
    hass.config_entries.async_add_subentry(
        loaded_entry,
        ConfigSubentry(
            data=MappingProxyType(
                {
                    "source_type": "attribute",
                    "source_entity": PRICES,
                    "source_attribute": "raw_today",
                    "source_shape": "start,end,value",
                    "source_unit": "EUR/kWh",
                    "sensor_id": sensor.id,
                    "sensor_unit": sensor.unit,
                    "sensor_resolution": 3600,
                }
            ),
            subentry_type="forecast_link",
            title="Live prices",
            unique_id=f"forecast_link_{sensor.id}",
        ),
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    link = await _until_stored(loaded_entry)

    read = await api.async_get_sensor_data(
        sensor.id,
        start=start,
        duration=timedelta(hours=2),
        resolution=timedelta(hours=1),
        unit="EUR/MWh",
    )
    expected = [
        sum(quarter_prices[:4]) / 4 * 1000,
        sum(quarter_prices[4:]) / 4 * 1000,
    ]
    assert read.values == pytest.approx(expected)
    assert link.horizon == start + timedelta(hours=2)


def _day_ahead_attributes(start: datetime, prices: list[float]) -> dict[str, Any]:
    """Return a price entity as the demo's stand-in holds them: hourly EUR/kWh."""
    hour = timedelta(hours=1)
    return {
        "unit_of_measurement": "EUR/kWh",
        "prices": [
            {
                "start": (start + i * hour).isoformat(),
                "end": (start + (i + 1) * hour).isoformat(),
                "value": value,
            }
            for i, value in enumerate(prices)
        ],
    }


def _solar_wh_hours(start: datetime, peak_wh: float) -> dict[str, float]:
    """Return 48 hours of a solar forecast: Wh per hour by the local hour's start.

    Daylight from 8 to 17 h local time, a sine around noon; every night hour
    is listed with 0 Wh, so the 48 hours are one series.
    """
    hours: dict[str, float] = {}
    for index in range(HOURS):
        moment = dt_util.as_local(start + timedelta(hours=index))
        daylight = 8 <= moment.hour < 17
        phase = (moment.hour - 8 + 0.5) / 9 * math.pi
        hours[moment.isoformat()] = (
            round(peak_wh * math.sin(phase), 1) if daylight else 0.0
        )
    return hours


async def _read_back(
    api: FlexMeasuresApi,
    sensor: Sensor,
    start: datetime,
    *,
    prior: datetime | None = None,
) -> list[float | None]:
    """Return what the server holds for the 48 hours (as beliefs stood at prior)."""
    read = await api.async_get_sensor_data(
        sensor.id,
        start=start,
        duration=timedelta(hours=HOURS),
        resolution=sensor.resolution,
        unit=sensor.unit,
        prior=prior,
    )
    return list(read.values)


async def _link_through_flow(
    hass: HomeAssistant,
    entry: FlexMeasuresConfigEntry,
    source: list[dict[str, str]],
    source_unit: str,
    sensor: Sensor,
) -> float:
    """Add a forecast link as a user does; return real seconds until all is stored.

    ``source`` is what the user enters up to the confirm step.
    """
    result = await start_flow(hass, entry, SUBENTRY_FORECAST_LINK)
    for step in source:
        result = await configure(hass, result["flow_id"], step)
    assert result["step_id"] == "confirm", result.get("errors")
    assert result["description_placeholders"]["slots"] == str(HOURS)
    result = await configure(hass, result["flow_id"], {"source_unit": source_unit})
    began = time.monotonic()
    result = await configure(hass, result["flow_id"], {"sensor": str(sensor.id)})
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    await hass.async_block_till_done(wait_background_tasks=True)
    await _until_stored(entry)
    return time.monotonic() - began


async def test_48_hours_of_prices_and_pv(
    hass: HomeAssistant,
    live_server: LiveServer,
    loaded_entry: FlexMeasuresConfigEntry,
    sample_solar: None,
    record_property: Callable[[str, object], None],
) -> None:
    """A price entity's 48 hourly slots and a solar platform's 48 hours, read back.

    Both links are added through the flow. Prices in EUR/kWh go to an hourly
    EUR/MWh sensor (x 1000), believed when the entity's state was written; Wh
    per hour go to a 15-minute kW sensor (each hour's mean power in its four
    slots), believed when the link read them. The server's answer as beliefs
    stood at that belief time holds this run's values; a second earlier, not.
    """
    api = loaded_entry.runtime_data.api
    site = live_server.assets["site"]
    price_sensor = await _own_sensor(api, site, *PRICES_48H)
    pv_sensor = await _own_sensor(api, site, *PV_48H)
    await loaded_entry.runtime_data.inventory.async_refresh()
    start = dt_util.utcnow().replace(minute=0, second=0, microsecond=0) + timedelta(
        hours=1
    )

    # Prices: the demo's stand-in shape, values of this run.
    prices = [round(random.uniform(-0.05, 0.4), 4) for _ in range(HOURS)]  # noqa: S311
    hass.states.async_set(
        DAY_AHEAD, str(prices[0]), _day_ahead_attributes(start, prices)
    )
    published = hass.states.get(DAY_AHEAD)
    assert published is not None
    price_seconds = await _link_through_flow(
        hass,
        loaded_entry,
        [
            {"source_type": "attribute"},
            {"source_entity": DAY_AHEAD},
            {"source_attribute": "prices"},
        ],
        "EUR/kWh",
        price_sensor,
    )

    # PV: a solar forecast integration's energy platform, 48 h of Wh per hour.
    wh_hours = _solar_wh_hours(start, random.uniform(1500.0, 3500.0))  # noqa: S311
    solar = MockConfigEntry(
        domain="sample_solar", title="Roof", data={"wh_hours": wh_hours}
    )
    solar.add_to_hass(hass)
    assert await hass.config_entries.async_setup(solar.entry_id)
    await hass.async_block_till_done()
    before_pv = dt_util.utcnow()
    pv_seconds = await _link_through_flow(
        hass,
        loaded_entry,
        [{"source_type": "solar_forecast"}, {"source_entry": solar.entry_id}],
        "Wh",
        pv_sensor,
    )
    record_property(
        "forecast_post_seconds",
        f"48 h prices {price_seconds:.2f} s, PV {pv_seconds:.2f} s",
    )

    links = {
        link.config.sensor_id: link
        for link in loaded_entry.runtime_data.forecasts.links.values()
    }
    price_link, pv_link = links[price_sensor.id], links[pv_sensor.id]
    end = start + timedelta(hours=HOURS)
    assert price_link.horizon == end
    assert pv_link.horizon == end

    # Prices: x 1000, believed when the state was written.
    price_belief = published.last_updated
    assert {belief for _, belief in price_link.held.values()} == {
        price_belief.timestamp()
    }
    expected_prices = pytest.approx([price * 1000 for price in prices])
    assert await _read_back(api, price_sensor, start) == expected_prices
    assert await _read_back(api, price_sensor, start, prior=price_belief) == (
        expected_prices
    )
    assert (
        await _read_back(
            api, price_sensor, start, prior=price_belief - timedelta(seconds=1)
        )
        != expected_prices
    )

    # PV: each hour's Wh as kW in its four slots, believed when it was read.
    (pv_stamp,) = {belief for _, belief in pv_link.held.values()}
    pv_belief = datetime.fromtimestamp(pv_stamp, UTC)
    assert before_pv <= pv_belief <= dt_util.utcnow()
    expected_pv = pytest.approx(
        [wh / 1000 for wh in wh_hours.values() for _quarter in range(4)]
    )
    assert len(wh_hours) == HOURS
    assert await _read_back(api, pv_sensor, start) == expected_pv
    assert await _read_back(api, pv_sensor, start, prior=pv_belief) == expected_pv
    assert (
        await _read_back(api, pv_sensor, start, prior=pv_belief - timedelta(seconds=1))
        != expected_pv
    )
