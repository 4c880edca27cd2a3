"""Benchmark one sensor-value refresh for 10, 100 and 500 exposed sensors.

Runs a fake FlexMeasures server on 127.0.0.1 in its own process (so neither its CPU
time nor its hold on the GIL is counted) that answers each value request after a
fixed latency.
The integration's refresh (``async_fetch_readings``: one request per sensor, at most
4 at a time) is measured side by side with a naive refresh (one request per sensor,
all at once, no bound). Per refresh it reports the requests the server saw, the
peak number of requests in flight, the wall time, the event-loop (main thread)
CPU time, and (in separate rounds) the longest stall of the loop: how late a 1 ms
ticker woke up. Requests per hour compare the
integration's 5-minute aligned polling with HA's default per-entity polling (every
30 s) that an integration without a coordinator would get.

Usage: ``python benchmarks/bench_sensor_refresh.py [--latency-ms 20] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import multiprocessing
from multiprocessing.connection import Connection
from pathlib import Path
import re
import statistics
import sys
import time
from typing import Any

from aiohttp import ClientSession, TCPConnector, web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from custom_components.flexmeasures.api import FlexMeasuresApi, Sensor
from custom_components.flexmeasures.const import (
    DEFAULT_SCAN_INTERVAL,
    MAX_CONCURRENT_REQUESTS,
)
from custom_components.flexmeasures.coordinator import (
    INVENTORY_INTERVAL,
    async_fetch_readings,
    value_window,
)

SIZES = (10, 100, 500)
HA_DEFAULT_ENTITY_POLL = timedelta(seconds=30)
DURATION = re.compile(
    r"P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?"
)


def _seconds(text: str) -> int:
    """Parse the ISO 8601 durations pandas writes (P0DT6H0M0S)."""
    match = DURATION.fullmatch(text)
    assert match is not None, text
    d, h, m, s = (int(match[key] or 0) for key in "dhms")
    return ((d * 24 + h) * 60 + m) * 60 + s


@dataclass
class FakeServer:
    """A FlexMeasures server answering value requests after ``latency`` seconds."""

    latency: float
    requests: int = 0
    in_flight: int = 0
    peak: int = 0

    async def login(self, request: web.Request) -> web.Response:
        """Hand out a token."""
        return self._json({"auth_token": "bench-token"})

    async def data(self, request: web.Request) -> web.Response:
        """Return the requested window of values, the last slot still empty."""
        self.requests += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.latency)
            query = request.query
            slots = _seconds(query["duration"]) // _seconds(query["resolution"])
            values: list[float | None] = [round(i * 0.1, 3) for i in range(slots)]
            values[-1] = None
            return self._json(
                {
                    "values": values,
                    "start": query["start"],
                    "duration": query["duration"],
                    "unit": query["unit"],
                }
            )
        finally:
            self.in_flight -= 1

    @staticmethod
    def _json(body: dict[str, Any]) -> web.Response:
        """Answer like FlexMeasures does."""
        return web.json_response(body, headers={"FlexMeasures-Version": "1.0.1"})

    async def stats(self, request: web.Request) -> web.Response:
        """Return and reset the counts (not counted as a request)."""
        body = {"requests": self.requests, "peak": self.peak}
        self.requests = self.peak = 0
        return self._json(body)

    async def serve(self, pipe: Connection) -> None:
        """Serve until the parent closes the pipe."""
        app = web.Application()
        app.router.add_post("/api/requestAuthToken", self.login)
        app.router.add_get("/api/v3_0/sensors/{sensor_id}/data", self.data)
        app.router.add_post("/stats", self.stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # noqa: SLF001
        assert server is not None
        pipe.send(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv_bytes)
        await runner.cleanup()


def _serve(latency: float, pipe: Connection) -> None:
    """Run the fake server in a child process."""
    asyncio.run(FakeServer(latency=latency).serve(pipe))


async def naive_refresh(
    api: FlexMeasuresApi, sensors: list[Sensor], now: datetime
) -> None:
    """Baseline: one request per sensor, all started at once."""

    async def one(sensor: Sensor) -> None:
        start, duration, resolution = value_window(sensor, now)
        await api.async_get_sensor_data(
            sensor.id,
            start=start,
            duration=duration,
            resolution=resolution,
            unit=sensor.unit,
        )

    await asyncio.gather(*(one(sensor) for sensor in sensors))


async def ours(api: FlexMeasuresApi, sensors: list[Sensor], now: datetime) -> None:
    """Run the integration's refresh."""
    results = await async_fetch_readings(api, sensors, now)
    assert len(results) == len(sensors)


@dataclass
class Figures:
    """Medians over the rounds of one variant at one size."""

    requests: int
    peak: int
    wall_ms: float
    loop_cpu_ms: float
    max_stall_ms: float


async def _watch_stalls(stalls: list[float]) -> None:
    """Record how late a 1 ms ticker wakes up: the longest the loop was busy."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(0.001)
        stalls.append((loop.time() - before - 0.001) * 1000)


async def measure(
    session: ClientSession,
    base: str,
    refresh: Callable[[FlexMeasuresApi, list[Sensor], datetime], Awaitable[None]],
    api: FlexMeasuresApi,
    sensors: list[Sensor],
    rounds: int,
) -> Figures:
    """Run ``rounds`` refreshes; return medians."""
    walls, cpus, peaks, requests, max_stalls = [], [], [], [], []
    # CPU and wall time without the stall ticker (it costs CPU itself) ...
    for _ in range(rounds):
        await session.post(f"{base}/stats")
        cpu = time.thread_time()
        wall = time.perf_counter()
        await refresh(api, sensors, datetime.now(UTC))
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.thread_time() - cpu) * 1000)
        async with session.post(f"{base}/stats") as response:
            counts = await response.json()
        peaks.append(counts["peak"])
        requests.append(counts["requests"])
    # ... and the longest stall in separate rounds with it.
    for _ in range(rounds):
        stalls: list[float] = [0.0]
        watcher = asyncio.create_task(_watch_stalls(stalls))
        await asyncio.sleep(0)
        await refresh(api, sensors, datetime.now(UTC))
        watcher.cancel()
        max_stalls.append(max(stalls))
    return Figures(
        requests=int(statistics.median(requests)),
        peak=int(statistics.median(peaks)),
        wall_ms=statistics.median(walls),
        loop_cpu_ms=statistics.median(cpus),
        max_stall_ms=statistics.median(max_stalls),
    )


async def main(latency: float, rounds: int) -> None:
    """Measure both variants at each size and print the table."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_serve, args=(latency, child))
    process.start()
    port = parent.recv()
    base = f"http://127.0.0.1:{port}"
    # Home Assistant's shared session allows 100 connections per host.
    async with ClientSession(connector=TCPConnector(limit_per_host=100)) as session:
        api = FlexMeasuresApi(
            session=session,
            url=base,
            email="bench@example.com",
            password="bench",  # noqa: S106
        )
        await api.async_login()
        print(
            f"One refresh, fake server latency {latency * 1000:.0f} ms, "
            f"median of {rounds} rounds (15-min sensors, 6 h window = 24 values)\n"
        )
        header = (
            f"{'sensors':>7} | {'variant':<22} | {'req/refresh':>11} | "
            f"{'in flight':>9} | {'wall ms':>8} | {'loop CPU ms':>11} | "
            f"{'CPU ms/req':>10} | {'max stall ms':>12} | {'req/hour':>8}"
        )
        print(header)
        print("-" * len(header))
        refreshes_per_hour = timedelta(hours=1) / DEFAULT_SCAN_INTERVAL
        inventory_per_hour = 2 * (timedelta(hours=1) / INVENTORY_INTERVAL)
        naive_per_hour = timedelta(hours=1) / HA_DEFAULT_ENTITY_POLL
        for size in SIZES:
            sensors = [
                Sensor(
                    id=index,
                    name=f"s{index}",
                    unit="kW",
                    resolution=timedelta(minutes=15),
                    asset_id=1,
                )
                for index in range(1, size + 1)
            ]
            # Warm up connections and caches.
            await ours(api, sensors[:10], datetime.now(UTC))
            for name, refresh, per_hour in (
                (
                    f"integration (limit {MAX_CONCURRENT_REQUESTS})",
                    ours,
                    refreshes_per_hour * size + inventory_per_hour,
                ),
                ("naive (unbounded)", naive_refresh, naive_per_hour * size),
            ):
                figures = await measure(session, base, refresh, api, sensors, rounds)
                print(
                    f"{size:>7} | {name:<22} | {figures.requests:>11} | "
                    f"{figures.peak:>9} | {figures.wall_ms:>8.0f} | "
                    f"{figures.loop_cpu_ms:>11.1f} | "
                    f"{figures.loop_cpu_ms / figures.requests:>10.3f} | "
                    f"{figures.max_stall_ms:>12.1f} | "
                    f"{per_hour:>8.0f}"
                )
        print(
            "\nreq/hour: integration = sensors x 12 refreshes (5 min) + 4 inventory "
            "requests;\nnaive = one entity polling its own sensor every 30 s "
            "(Home Assistant's default for polled entities)."
        )
    parent.send_bytes(b"stop")
    process.join()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.latency_ms / 1000, args.rounds))
