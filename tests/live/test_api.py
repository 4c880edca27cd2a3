"""Measurements and schedules through the integration's API, on the real server."""

from __future__ import annotations

import asyncio
from datetime import timedelta
import random
import time

from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest

from custom_components.flexmeasures.data import FlexMeasuresConfigEntry

from .conftest import LiveServer, quarter_floor, simulate_soc, until_stored

JOB_TIMEOUT = 120.0  # seconds; a 12-hour battery schedule takes a few seconds
SOC_TOLERANCE_KWH = 0.01


async def test_posted_measurements_read_back(
    hass: HomeAssistant, live_server: LiveServer, loaded_entry: FlexMeasuresConfigEntry
) -> None:
    """Values posted in kW come back at the same times, in kW and converted to W."""
    api = loaded_entry.runtime_data.api
    sensor_id = live_server.sensors["ev_charger_power"]
    resolution = timedelta(minutes=15)
    # A window in the past, with values unique to this run: a rerun against the
    # same server writes newer beliefs, and the newest ones are read back.
    start = quarter_floor(dt_util.utcnow()) - timedelta(hours=3)
    values = [round(random.uniform(0.5, 11.0), 3) for _ in range(4)]  # noqa: S311

    job = await api.async_post_sensor_data(
        sensor_id, start=start, resolution=resolution, values=values, unit="kW"
    )
    await until_stored(api, job)

    read = await api.async_get_sensor_data(
        sensor_id,
        start=start,
        duration=resolution * len(values),
        resolution=resolution,
        unit="kW",
    )
    assert read.start == start
    assert read.resolution == resolution
    assert read.unit == "kW"
    assert read.values == pytest.approx(values)

    in_watt = await api.async_get_sensor_data(
        sensor_id,
        start=start,
        duration=resolution * len(values),
        resolution=resolution,
        unit="W",
    )
    assert in_watt.unit == "W"
    assert in_watt.values == pytest.approx([value * 1000 for value in values])

    # Half-hourly means of the quarter-hourly values, stamped at the half-hour start
    coarse = await api.async_get_sensor_data(
        sensor_id,
        start=start,
        duration=resolution * len(values),
        resolution=2 * resolution,
        unit="kW",
    )
    assert coarse.start == start
    assert coarse.resolution == 2 * resolution
    assert coarse.values == pytest.approx(
        [(values[0] + values[1]) / 2, (values[2] + values[3]) / 2]
    )


async def test_schedule_respects_the_flex_model(
    hass: HomeAssistant, live_server: LiveServer, loaded_entry: FlexMeasuresConfigEntry
) -> None:
    """A triggered battery schedule keeps the SoC within bounds and meets the target."""
    api = loaded_entry.runtime_data.api
    sensor_id = live_server.sensors["battery_power"]
    start = quarter_floor(dt_util.utcnow()) + timedelta(minutes=15)
    duration = timedelta(hours=12)
    soc_at_start = round(random.uniform(2.0, 4.0), 2)  # noqa: S311
    target_time = start + timedelta(hours=8)
    target = live_server.battery_capacity_kwh - 1.0
    flex_model = {
        **live_server.battery_flex_model,
        "soc-at-start": f"{soc_at_start} kWh",
        "soc-targets": [
            {"datetime": target_time.isoformat(), "value": f"{target} kWh"}
        ],
    }

    job_id = await api.async_trigger_schedule(
        sensor_id=sensor_id,
        start=start,
        duration=duration,
        flex_model=flex_model,
        flex_context=live_server.site_flex_context,
        force=True,  # a new job, never one the server cached for an earlier run
        now=dt_util.utcnow(),
    )
    deadline = time.monotonic() + JOB_TIMEOUT
    status = await api.async_get_job_status(job_id)
    while status["status"] not in ("FINISHED", "FAILED", "STOPPED", "CANCELED"):
        assert time.monotonic() < deadline, f"job {job_id} still {status['status']}"
        await asyncio.sleep(0.5)
        status = await api.async_get_job_status(job_id)
    assert status["status"] == "FINISHED", status

    schedule = await api.async_get_schedule(
        sensor_id=sensor_id, job_id=job_id, duration=duration, unit="kW"
    )
    assert schedule.start == start
    assert schedule.unit == "kW"
    assert schedule.resolution == timedelta(minutes=15)
    assert len(schedule.values) == duration / schedule.resolution
    power = [value for value in schedule.values if value is not None]
    assert len(power) == len(schedule.values)

    limit = live_server.battery_power_kw + 1e-6
    assert all(-limit <= value <= limit for value in power)
    soc = simulate_soc(
        soc_at_start=soc_at_start,
        power_kw=power,
        resolution=schedule.resolution,
        roundtrip_efficiency=_fraction(flex_model["roundtrip-efficiency"]),
    )
    details = f"job {job_id}, flex-model {flex_model}, power {power}, SoC {soc}"
    assert min(soc) >= live_server.battery_soc_min_kwh - SOC_TOLERANCE_KWH, details
    assert max(soc) <= live_server.battery_capacity_kwh + SOC_TOLERANCE_KWH, details
    soc_at_target = soc[int((target_time - start) / schedule.resolution)]
    assert abs(soc_at_target - target) <= SOC_TOLERANCE_KWH, details


def _fraction(percentage: str) -> float:
    """Turn a flex-model percentage such as ``90%`` into 0.9."""
    return float(percentage.rstrip("%").strip()) / 100
