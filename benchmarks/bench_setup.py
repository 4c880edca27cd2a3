"""Benchmark the integration's setup time for 10 and 100 exposed sensors.

A fake FlexMeasures server runs in its own process (its CPU time is not counted)
and answers every request after a fixed latency. Measured, per size, alternating:

* ``integration``: a config entry in a real Home Assistant test instance, from
  ``async_setup`` of the entry until it is loaded and every entity exists (and
  ``async_block_till_done`` returned); the entry is removed after each round. A
  warm-up round first imports the integration and sets up the domain (actions,
  card), so the rounds measure the entry alone, as on a reload or a restart.
* ``library floor``: the same HTTP requests the setup needs, made straight with
  flexmeasures-client on a plain aiohttp session, without Home Assistant: version,
  login, user, account, assets, sensors, then one value request per sensor at
  the integration's concurrency limit. The difference is what Home Assistant and
  the integration add on top of the unavoidable network work: coordinators,
  devices, entities, stores.

Usage: ``python benchmarks/bench_setup.py [--latency-ms 20] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
import json
from pathlib import Path
import statistics
import time
from typing import Any

from aiohttp import ClientSession, TCPConnector, web
from bench_report import Figure
from bench_schedule_lag import bench_hass
from bench_sensor_refresh import FakeServer, fake_server
from flexmeasures_client.client import FlexMeasuresClient
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures.const import MAX_CONCURRENT_REQUESTS

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
SIZES = (10, 100)
EMAIL = "ha@example.com"
PASSWORD = "bench"  # noqa: S105


@dataclass
class InventoryServer(FakeServer):
    """The fake server, also answering the calls of a setup; sensors configurable."""

    sensors: int = 10
    fixtures: dict[str, Any] = field(default_factory=dict)

    def add_routes(self, app: web.Application) -> None:
        """Register the setup's endpoints too."""
        super().add_routes(app)
        self.fixtures = {
            name: json.loads((FIXTURES / f"{name}.json").read_text())
            for name in ("versions", "users", "account", "assets")
        }
        app.router.add_get("/api/", self._fixture("versions"))
        app.router.add_get("/api/v3_0/users", self._fixture("users"))
        app.router.add_get("/api/v3_0/accounts/{id}", self._fixture("account"))
        app.router.add_get("/api/v3_0/assets", self._fixture("assets"))
        app.router.add_get("/api/v3_0/sensors", self.sensor_list)
        app.router.add_post("/config", self.configure)

    def _fixture(self, name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        """Return a handler answering a recorded response after the latency."""

        async def handler(request: web.Request) -> web.Response:
            await asyncio.sleep(self.latency)
            return web.json_response(
                self.fixtures[name], headers={"FlexMeasures-Version": "1.0.1"}
            )

        return handler

    async def sensor_list(self, request: web.Request) -> web.Response:
        """List ``self.sensors`` 15-minute sensors on the account's first asset."""
        await asyncio.sleep(self.latency)
        asset = self.fixtures["assets"][0]["id"]
        return web.json_response(
            [
                {
                    "id": 1000 + index,
                    "name": f"sensor {index}",
                    "unit": "kW",
                    "event_resolution": "PT15M",
                    "generic_asset_id": asset,
                    "timezone": "Europe/Amsterdam",
                    "attributes": {},
                }
                for index in range(self.sensors)
            ],
            headers={"FlexMeasures-Version": "1.0.1"},
        )

    async def configure(self, request: web.Request) -> web.Response:
        """Set the number of sensors the listing returns."""
        self.sensors = int(request.query["sensors"])
        return web.json_response({"sensors": self.sensors})


async def setup_integration(hass: HomeAssistant, url: str, size: int) -> float:
    """Set up one entry; return the seconds to loaded, then remove the entry."""
    entry = MockConfigEntry(
        domain="flexmeasures",
        title="Benchmark",
        unique_id="account_3",
        data={
            "url": url,
            "email": EMAIL,
            "password": PASSWORD,
            "verify_ssl": False,
            "account_id": 3,
        },
    )
    entry.add_to_hass(hass)
    began = time.perf_counter()
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    elapsed = time.perf_counter() - began
    if entry.state is not ConfigEntryState.LOADED:
        raise RuntimeError(f"set-up failed: {entry.state} {entry.reason}")
    registry = er.async_get(hass)
    entities = er.async_entries_for_config_entry(registry, entry.entry_id)
    if sum(item.domain == "sensor" for item in entities) < size:
        raise RuntimeError(f"{len(entities)} entities for {size} sensors")
    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    return elapsed


async def library_floor(session: ClientSession, url: str) -> float:
    """Make the setup's requests with flexmeasures-client; return the seconds."""
    began = time.perf_counter()
    client = FlexMeasuresClient(
        session=session,
        host=url.split("://", 1)[1],
        ssl=False,
        email=EMAIL,
        password=PASSWORD,
    )
    await client.get_versions()  # type: ignore[no-untyped-call]
    await client.get_access_token()  # type: ignore[no-untyped-call]
    await client.get_user()
    await client.get_account()
    await client.get_assets(parse_json_fields=True)
    sensors = await client.get_sensors(parse_json_fields=True)
    start = (datetime.now(UTC) - timedelta(hours=6)).replace(
        minute=0, second=0, microsecond=0
    )
    limit = asyncio.Semaphore(MAX_CONCURRENT_REQUESTS)

    async def values(sensor_id: int) -> None:
        async with limit:
            await client.get_sensor_data(
                sensor_id=sensor_id,
                start=start.isoformat(),
                duration="PT6H",
                unit="kW",
                resolution="PT15M",
            )

    await asyncio.gather(*(values(sensor["id"]) for sensor in sensors))
    return time.perf_counter() - began


async def measure(
    latency: float, rounds: int, sizes: tuple[int, ...] = SIZES
) -> dict[int, dict[str, float]]:
    """Return the median setup seconds per size: integration and library floor."""
    results: dict[int, dict[str, float]] = {}
    async with (
        fake_server(latency, InventoryServer) as url,
        ClientSession(connector=TCPConnector(limit_per_host=100)) as session,
        bench_hass() as hass,
    ):
        await session.post(f"{url}/config", params={"sensors": str(sizes[0])})
        await setup_integration(hass, url, sizes[0])  # warm-up: domain set-up
        for size in sizes:
            await session.post(f"{url}/config", params={"sensors": str(size)})
            ours: list[float] = []
            floor: list[float] = []
            for _ in range(rounds):
                ours.append(await setup_integration(hass, url, size))
                floor.append(await library_floor(session, url))
            results[size] = {
                "integration": statistics.median(ours),
                "library floor": statistics.median(floor),
            }
    return results


async def collect(quick: bool = False, latency: float = 0.02) -> list[Figure]:
    """Measure the README's setup figures, ours vs the library floor."""
    rounds = 3 if quick else 5
    results = await measure(latency, rounds)
    small, large = SIZES
    ours, floor = results[large]["integration"], results[large]["library floor"]
    setting = (
        f"fake server in its own process answering after {latency * 1000:.0f} ms, "
        f"median of {rounds} rounds"
    )
    slope = {
        name: (results[large][name] - results[small][name]) / (large - small) * 1000
        for name in ("integration", "library floor")
    }
    return [
        Figure(
            key="setup_time",
            name=f"Setup time of the integration ({large} exposed sensors)",
            ours=ours,
            baseline=floor,
            unit="s",
            how=(
                "config entry set-up to loaded with all entities; baseline: the "
                "same requests straight through flexmeasures-client, no Home "
                f"Assistant (version, login, user, account, assets, sensors, one "
                f"value request per sensor, {MAX_CONCURRENT_REQUESTS} at a time); "
                f"{setting}"
            ),
        ),
        Figure(
            key="setup_time_per_sensor",
            name="Setup time per exposed sensor",
            ours=slope["integration"],
            baseline=slope["library floor"],
            unit="ms",
            how=f"(time at {large} - time at {small} sensors) / {large - small}; "
            "same runs",
        ),
    ]


async def main(latency: float, rounds: int) -> None:
    """Measure and print the table."""
    results = await measure(latency, rounds)
    print(
        f"Setup time, fake server latency {latency * 1000:.0f} ms, "
        f"median of {rounds} rounds\n"
    )
    print(f"{'sensors':>7} | {'integration s':>13} | {'library floor s':>15}")
    print("-" * 41)
    for size, row in results.items():
        print(
            f"{size:>7} | {row['integration']:>13.3f} | {row['library floor']:>15.3f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.latency_ms / 1000, args.rounds))
