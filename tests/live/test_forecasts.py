"""Issue 16: a forecast link posts an entity's prices to the real server."""

from __future__ import annotations

import asyncio
from datetime import timedelta
import random
import time
from types import MappingProxyType
from unittest.mock import patch

from homeassistant.config_entries import ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest

from custom_components.flexmeasures.api import FlexMeasuresApi, Sensor
from custom_components.flexmeasures.data import FlexMeasuresConfigEntry

from .conftest import INGESTION_WAIT, LiveServer

# A price sensor of this test's own: the seeded one feeds other tests' plans.
SENSOR_NAME = "forecast link prices"
PRICES = "sensor.live_day_ahead_prices"


async def _price_sensor(api: FlexMeasuresApi, site_id: int) -> Sensor:
    """Return this test's hourly EUR/MWh sensor on the site, created on first use.

    FlexMeasures 1.0.1 cannot delete a sensor here, so later runs reuse it.
    """
    for sensor in await api.async_get_sensors():
        if sensor.name == SENSOR_NAME and sensor.asset_id == site_id:
            return sensor
    return await api.async_add_sensor(
        asset_id=site_id,
        name=SENSOR_NAME,
        unit="EUR/MWh",
        resolution=timedelta(hours=1),
        timezone="Europe/Amsterdam",
    )


async def _real_pause(seconds: float) -> None:
    """Wait between ingestion-job look-ups in real time (HA's clock stands still)."""
    await asyncio.get_running_loop().run_in_executor(None, time.sleep, seconds)


async def test_prices_posted_as_forecasts(
    hass: HomeAssistant, live_server: LiveServer, loaded_entry: FlexMeasuresConfigEntry
) -> None:
    """15-minute EUR/kWh prices arrive as hourly EUR/MWh means, each slot once."""
    api = loaded_entry.runtime_data.api
    sensor = await _price_sensor(api, live_server.assets["site"])
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
    with patch("custom_components.flexmeasures.forecasts.link._pause", _real_pause):
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
        forecasts = loaded_entry.runtime_data.forecasts
        (link,) = forecasts.links.values()
        for _ in range(INGESTION_WAIT):
            if not link.pending and not link.jobs:
                break
            await _real_pause(1.0)
            await forecasts.async_flush()
        assert not forecasts.server_down
        assert link.pending == {}
        assert link.rejected is None

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
