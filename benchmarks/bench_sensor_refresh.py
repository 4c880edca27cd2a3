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
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
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

from bench_report import Figure

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

    def add_routes(self, app: web.Application) -> None:
        """Register the endpoints this server answers."""
        app.router.add_post("/api/requestAuthToken", self.login)
        app.router.add_get("/api/v3_0/sensors/{sensor_id}/data", self.data)
        app.router.add_post("/stats", self.stats)

    async def serve(self, pipe: Connection) -> None:
        """Serve until the parent closes the pipe."""
        app = web.Application()
        self.add_routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # noqa: SLF001
        assert server is not None
        pipe.send(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv_bytes)
        await runner.cleanup()


def _serve(server_class: type[FakeServer], latency: float, pipe: Connection) -> None:
    """Run the fake server in a child process."""
    asyncio.run(server_class(latency=latency).serve(pipe))


@contextlib.asynccontextmanager
async def fake_server(
    latency: float, server_class: type[FakeServer] = FakeServer
) -> AsyncIterator[str]:
    """Run a fake server in its own process; yield its base URL."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(
        target=_serve, args=(server_class, latency, child)
    )
    process.start()
    try:
        port = await asyncio.get_running_loop().run_in_executor(None, parent.recv)
        yield f"http://127.0.0.1:{port}"
    finally:
        parent.send_bytes(b"stop")
        await asyncio.get_running_loop().run_in_executor(None, process.join)


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


type Refresh = Callable[[FlexMeasuresApi, list[Sensor], datetime], Awaitable[None]]


async def measure(
    session: ClientSession,
    base: str,
    refresh: Refresh,
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


def _sensors(size: int) -> list[Sensor]:
    """Return size 15-minute sensors on one asset."""
    return [
        Sensor(
            id=index,
            name=f"s{index}",
            unit="kW",
            resolution=timedelta(minutes=15),
            asset_id=1,
        )
        for index in range(1, size + 1)
    ]


VARIANTS: tuple[tuple[str, Refresh], ...] = (
    (f"integration (limit {MAX_CONCURRENT_REQUESTS})", ours),
    ("naive (unbounded)", naive_refresh),
)


async def measure_sizes(
    latency: float, rounds: int, sizes: tuple[int, ...] = SIZES
) -> dict[int, dict[str, Figures]]:
    """Measure both variants at each size against one fake server."""
    results: dict[int, dict[str, Figures]] = {}
    async with (
        fake_server(latency) as base,
        # Home Assistant's shared session allows 100 connections per host.
        ClientSession(connector=TCPConnector(limit_per_host=100)) as session,
    ):
        api = FlexMeasuresApi(
            session=session,
            url=base,
            email="bench@example.com",
            password="bench",  # noqa: S106
        )
        await api.async_login()
        for size in sizes:
            sensors = _sensors(size)
            # Warm up connections and caches.
            await ours(api, sensors[:10], datetime.now(UTC))
            results[size] = {
                name: await measure(session, base, refresh, api, sensors, rounds)
                for name, refresh in VARIANTS
            }
    return results


def requests_per_hour(size: int) -> tuple[float, float]:
    """Return the requests per hour of the integration and of per-entity polling."""
    refreshes_per_hour = timedelta(hours=1) / DEFAULT_SCAN_INTERVAL
    inventory_per_hour = 2 * (timedelta(hours=1) / INVENTORY_INTERVAL)
    naive_per_hour = timedelta(hours=1) / HA_DEFAULT_ENTITY_POLL
    return refreshes_per_hour * size + inventory_per_hour, naive_per_hour * size


async def collect(quick: bool = False, latency: float = 0.02) -> list[Figure]:
    """Measure the README's refresh figures at 500 sensors, ours vs unbounded."""
    size = 500
    rounds = 3 if quick else 5
    measured = (await measure_sizes(latency, rounds, (size,)))[size]
    ours_figures, naive_figures = (measured[name] for name, _ in VARIANTS)
    ours_cpu = ours_figures.loop_cpu_ms / ours_figures.requests
    naive_cpu = naive_figures.loop_cpu_ms / naive_figures.requests
    ours_per_hour, naive_per_hour = requests_per_hour(size)
    setting = (
        f"{size} sensors, fake server in its own process answering after "
        f"{latency * 1000:.0f} ms, median of {rounds} refreshes"
    )
    return [
        Figure(
            key="refresh_cpu_per_sensor",
            name="Refresh: event-loop CPU per exposed sensor and refresh",
            ours=ours_cpu,
            baseline=naive_cpu,
            unit="ms",
            how=(
                f"main-thread CPU time of one refresh / sensors; {setting}; "
                "baseline: one request per sensor, all at once"
            ),
        ),
        Figure(
            key="refresh_cpu_per_sensor_hour",
            name="Refresh: event-loop CPU per exposed sensor and hour",
            ours=ours_cpu * ours_per_hour / size,
            baseline=naive_cpu * naive_per_hour / size,
            unit="ms",
            how=(
                "the CPU per refresh above x refreshes per hour: ours every 5 min "
                "(+ inventory); baseline: Home Assistant's default 30-s polling "
                "per entity"
            ),
        ),
        Figure(
            key="refresh_requests_per_sensor_hour",
            name="Refresh: requests per exposed sensor and hour",
            ours=ours_figures.requests * ours_per_hour / size / size,
            baseline=naive_figures.requests * naive_per_hour / size / size,
            unit="",
            how=(
                "requests the fake server saw per refresh, x refreshes per hour "
                "(as above)"
            ),
        ),
        Figure(
            key="refresh_stall",
            name=f"Refresh: longest event-loop stall ({size} sensors)",
            ours=ours_figures.max_stall_ms,
            baseline=naive_figures.max_stall_ms,
            unit="ms",
            how=f"how late a 1-ms ticker woke up during a refresh; {setting}",
            # The baseline's stall is how many answers arrive at once, which
            # follows how much CPU the fake server gets: 0.034x-0.23x seen.
            noise=3.0,
        ),
        Figure(
            key="refresh_in_flight",
            name=f"Refresh: peak requests in flight ({size} sensors)",
            ours=ours_figures.peak,
            baseline=naive_figures.peak,
            unit="",
            how="counted by the fake server; the baseline is capped by the "
            "session's 100 connections per host",
        ),
    ]


async def main(latency: float, rounds: int) -> None:
    """Measure both variants at each size and print the table."""
    results = await measure_sizes(latency, rounds)
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
    for size, variants in results.items():
        per_hour = dict(zip(variants, requests_per_hour(size), strict=True))
        for name, figures in variants.items():
            print(
                f"{size:>7} | {name:<22} | {figures.requests:>11} | "
                f"{figures.peak:>9} | {figures.wall_ms:>8.0f} | "
                f"{figures.loop_cpu_ms:>11.1f} | "
                f"{figures.loop_cpu_ms / figures.requests:>10.3f} | "
                f"{figures.max_stall_ms:>12.1f} | "
                f"{per_hour[name]:>8.0f}"
            )
    print(
        "\nreq/hour: integration = sensors x 12 refreshes (5 min) + 4 inventory "
        "requests;\nnaive = one entity polling its own sensor every 30 s "
        "(Home Assistant's default for polled entities)."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.latency_ms / 1000, args.rounds))
