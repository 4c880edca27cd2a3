"""Benchmark: one site plan against separate device plans under a 10 kVA connection.

Against the real FlexMeasures server of ``seed.json``, through the integration's
own ``FlexMeasuresApi``, the seeded site's battery and EV charger are planned
for the same 24 hours on the same prices with the same targets, twice:

* ``site plan`` (ours): one asset-level job on the site with both flex-models and
  the connection's ``site-power-capacity`` (10 kVA) in the flex-context;
* ``separate plans`` (baseline): one device-level job per device with only the
  prices in its flex-context, as a controlled device is planned on its own.

Both want the cheap hours: the battery (5 kWh to full 10 kWh, 5 kW) and the EV
(5 kWh to 50 kWh, 11 kW) must reach their targets 20 hours in. Reported side by
side: the peak of the summed power, the share of slots above the connection's
capacity, the energy each device gets, the cost of the summed power at the
server's prices for that window, and the job times. The plans are deterministic
(a linear program on fixed prices): one warm-up, one measured round.

The window is the next whole day in the server's time zone (96 quarter-hours
from local midnight): the figures then do not depend on the hour the benchmark
runs, and the seeded prices of one local day differ from day to day by one
factor only, which scales both costs alike. A long-lived server whose prices no
longer reach that far is asked about the latest whole day its prices cover, as
of the start of that day.

Usage (in a target environment, the FlexMeasures test server running)::

    python benchmarks/bench_site_plan.py --seed SEED_JSON
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import json
from pathlib import Path
import sys
import time
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import ClientSession

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_report import Figure

from custom_components.flexmeasures.api import FlexMeasuresApi
from custom_components.flexmeasures.scheduling.model import (
    ENERGY_TO_KWH,
    quantity,
    slot_start,
    unmet_targets,
)

RESOLUTION = timedelta(minutes=15)
HORIZON = timedelta(hours=24)
TARGET_AFTER = timedelta(hours=20)
SITE_CAPACITY_KVA = 10.0
# The figures are plans, not timings: they only move when a plan does. Their
# ratios are read back from the README with two or three significant digits.
PLAN_TOLERANCE = 1.02
JOB_TIMEOUT = 120.0  # seconds; a 24-h job for two devices takes 1-4 s here
POLL = 0.1  # seconds between job-status look-ups
RUNNING = frozenset({"QUEUED", "STARTED", "DEFERRED", "SCHEDULED"})
# How to wait between job-status look-ups: asyncio.sleep here; a test whose event
# loop clock stands still passes a real-time wait.
type Pause = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class Device:
    """A device of the site: its power sensor, storage and the target it must meet."""

    name: str
    sensor: int
    soc_at_start_kwh: float
    soc_min_kwh: float
    soc_max_kwh: float
    target_kwh: float
    charge_kw: float
    discharge_kw: float
    roundtrip_efficiency: float = 1.0

    def flex_model(self, start: datetime) -> dict[str, Any]:
        """Return the device's storage flex-model (without its sensor)."""
        model: dict[str, Any] = {
            "soc-at-start": quantity(self.soc_at_start_kwh, "kWh"),
            "soc-min": quantity(self.soc_min_kwh, "kWh"),
            "soc-max": quantity(self.soc_max_kwh, "kWh"),
            "power-capacity": quantity(max(self.charge_kw, self.discharge_kw), "kW"),
            # Explicit, as the integration sends it: without it the seeded
            # battery's plans on the shared server do not charge at all.
            "consumption-capacity": quantity(self.charge_kw, "kW"),
            "production-capacity": quantity(self.discharge_kw, "kW"),
            "soc-targets": [
                {
                    "datetime": (start + TARGET_AFTER).isoformat(),
                    "value": quantity(self.target_kwh, "kWh"),
                }
            ],
        }
        if self.roundtrip_efficiency != 1.0:
            model["roundtrip-efficiency"] = (
                f"{round(self.roundtrip_efficiency * 100, 4):g}%"
            )
        return model


@dataclass(frozen=True, kw_only=True)
class Site:
    """The seeded site on the real server: its asset, devices and prices."""

    url: str
    email: str
    password: str
    asset_id: int
    devices: tuple[Device, ...]
    price_sensor: int
    price_unit: str
    prices_from: datetime
    prices_until: datetime
    timezone: ZoneInfo
    server: str

    def flex_context(self, *, capacity_kva: float | None) -> dict[str, Any]:
        """Return the flex-context: the prices, and the connection if given."""
        context: dict[str, Any] = {"consumption-price": {"sensor": self.price_sensor}}
        if capacity_kva is not None:
            context["site-power-capacity"] = quantity(capacity_kva, "kVA")
        return context


def site_from_seed(seed: Mapping[str, Any]) -> Site:
    """Return the site, its battery and EV charger (with the targets) from a seed."""
    battery = seed["battery"]
    ev = seed["ev_charger_flex_model"]
    sensors = seed["sensors"]
    prices = seed["prices"]
    return Site(
        url=seed["url"],
        email=seed["email"],
        password=seed["password"],
        asset_id=int(seed["assets"]["site"]),
        devices=(
            Device(
                name="battery",
                sensor=int(sensors["battery_power"]),
                soc_at_start_kwh=5.0,
                soc_min_kwh=float(battery["soc_min_kwh"]),
                soc_max_kwh=float(battery["capacity_kwh"]),
                target_kwh=float(battery["capacity_kwh"]),
                charge_kw=float(battery["power_kw"]),
                discharge_kw=float(battery["power_kw"]),
                roundtrip_efficiency=0.9,
            ),
            Device(
                name="EV",
                sensor=int(sensors["ev_charger_power"]),
                soc_at_start_kwh=5.0,
                soc_min_kwh=0.0,
                soc_max_kwh=60.0,
                target_kwh=50.0,
                charge_kw=float(str(ev["power-capacity"]).split()[0]),
                discharge_kw=float(str(ev["production-capacity"]).split()[0]),
            ),
        ),
        price_sensor=int(sensors["price"]),
        price_unit=str(seed["units"]["price"]),
        prices_from=datetime.fromisoformat(prices["start"]),
        prices_until=datetime.fromisoformat(prices["end"]),
        timezone=ZoneInfo(seed["timezone"]),
        server=str(seed.get("flexmeasures_version", "?")),
    )


# ------------------------------------------------------------------ the window


def choose_window(
    preferred: datetime,
    covered: tuple[datetime, datetime],
    earlier: Callable[[datetime], datetime],
    now: datetime,
) -> tuple[datetime, datetime]:
    """Return the plan's start and the moment it is planned as of.

    The preferred start when the prices cover its whole horizon (planned now);
    otherwise the latest earlier start (stepping back with ``earlier``) whose
    horizon they cover, planned as of that start, as if it were then.
    """
    start = preferred
    while start + HORIZON > covered[1]:
        start = earlier(start)
    if start < covered[0]:
        raise ValueError(
            f"the prices ({covered[0]} .. {covered[1]}) cover no {HORIZON} window"
        )
    return start, now if start == preferred else start


def next_local_midnight(moment: datetime, tz: ZoneInfo) -> datetime:
    """Return the first midnight in ``tz`` after ``moment``, in UTC."""
    local = moment.astimezone(tz)
    midnight = datetime(local.year, local.month, local.day, tzinfo=tz)
    return (midnight + timedelta(days=1)).astimezone(UTC)


def benchmark_window(site: Site, now: datetime) -> tuple[datetime, datetime]:
    """Return the next local day, or the latest whole local day the prices cover."""
    return choose_window(
        next_local_midnight(now, site.timezone),
        (site.prices_from, site.prices_until),
        lambda start: _day_before(start, site.timezone),
        now,
    )


def _day_before(midnight: datetime, tz: ZoneInfo) -> datetime:
    """Return the local midnight one calendar day before a local midnight."""
    local = midnight.astimezone(tz).date() - timedelta(days=1)
    return datetime(local.year, local.month, local.day, tzinfo=tz).astimezone(UTC)


def current_slot_window(site: Site, now: datetime) -> tuple[datetime, datetime]:
    """Return the current slot, or the latest slot the prices cover a horizon from."""
    return choose_window(
        slot_start(now, RESOLUTION),
        (site.prices_from, site.prices_until),
        lambda start: start - RESOLUTION,
        now,
    )


# ------------------------------------------------------------ pure comparisons


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Each device's power (kW, charging positive) per slot, and what it took."""

    name: str
    power: Mapping[str, tuple[float, ...]]
    job_seconds: tuple[float, ...]
    unmet: Mapping[str, tuple[float, ...]]  # device -> missed target deviations

    @property
    def total(self) -> list[float]:
        """Return the summed power of the devices per slot."""
        return summed(self.power.values())


def summed(series: Iterable[Sequence[float]]) -> list[float]:
    """Return the slot-by-slot sum of equally long power series."""
    columns = list(series)
    lengths = {len(column) for column in columns}
    if len(lengths) != 1:
        raise ValueError(f"series of different lengths: {sorted(lengths)}")
    return [sum(values) for values in zip(*columns, strict=True)]


def slots_above(total: Sequence[float], capacity_kw: float) -> int:
    """Return how many slots exceed the capacity (by more than 1 W)."""
    return sum(value > capacity_kw + 1e-3 for value in total)


def energy_kwh(power_kw: Sequence[float], resolution: timedelta = RESOLUTION) -> float:
    """Return the net energy (kWh) a power series delivers."""
    return sum(power_kw) * (resolution / timedelta(hours=1))


def reached_kwh(device: Device, power_kw: Sequence[float], slots: int) -> float:
    """Return the device's stored energy after ``slots`` slots of its plan.

    Like FlexMeasures' storage scheduler, the roundtrip efficiency is split evenly
    into a charging and a discharging efficiency.
    """
    hours = RESOLUTION / timedelta(hours=1)
    one_way = device.roundtrip_efficiency**0.5
    stored = device.soc_at_start_kwh
    for power in power_kw[:slots]:
        energy = power * hours
        stored += energy * one_way if energy > 0 else energy / one_way
    return stored


def price_per_kwh(unit: str) -> float:
    """Return the factor from a price unit such as ``EUR/MWh`` to per kWh."""
    currency, _, energy = unit.partition("/")
    factor = ENERGY_TO_KWH.get(energy.strip())
    if not currency.strip() or factor is None:
        raise ValueError(f"not a price per energy: {unit!r}")
    return 1 / factor


def cost(
    prices: Sequence[float],
    total_kw: Sequence[float],
    unit: str,
    resolution: timedelta = RESOLUTION,
) -> float:
    """Return the cost of the summed power at the prices, in the unit's currency."""
    hours = resolution / timedelta(hours=1)
    per_kwh = price_per_kwh(unit)
    return sum(
        price * per_kwh * power * hours
        for price, power in zip(prices, total_kw, strict=True)
    )


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """Both approaches on the same window, prices and targets."""

    site: Site
    start: datetime
    as_of: datetime
    prices: tuple[float, ...]
    ours: Plan
    separate: Plan

    def peak(self, plan: Plan) -> float:
        """Return the plan's peak summed power (kW)."""
        return max(plan.total)

    def share_above(self, plan: Plan) -> float:
        """Return the share of slots whose summed power exceeds the connection."""
        total = plan.total
        return slots_above(total, SITE_CAPACITY_KVA) / len(total)

    def cost(self, plan: Plan) -> float:
        """Return what the plan's summed power costs at the window's prices."""
        return cost(self.prices, plan.total, self.site.price_unit)

    @property
    def currency(self) -> str:
        """Return the currency of the price unit."""
        return self.site.price_unit.partition("/")[0].strip()


def figures(comparison: Comparison) -> list[Figure]:
    """Return the README's rows: peak summed power and cost, ours vs separate."""
    ours, separate = comparison.ours, comparison.separate
    energies = "; ".join(
        f"{device.name} {energy_kwh(ours.power[device.name]):.1f} vs "
        f"{energy_kwh(separate.power[device.name]):.1f} kWh"
        for device in comparison.site.devices
    )
    where = (
        f"real FlexMeasures {comparison.site.server}: the site's battery (5 kW, "
        "5 to 10 kWh) and EV charger (11 kW, 5 to 50 kWh), targets 20 h in, 24 h "
        "from local midnight, 15-min slots, one job on the site with a "
        f"{SITE_CAPACITY_KVA:g} kVA site-power-capacity; baseline: one job per "
        "device on the same prices"
    )
    return [
        Figure(
            key="site_peak_power",
            name="Site plan: peak summed power, battery + EV (10 kVA connection)",
            ours=comparison.peak(ours),
            baseline=comparison.peak(separate),
            unit="kW",
            how=(
                f"{where}; slots above {SITE_CAPACITY_KVA:g} kW: "
                f"{comparison.share_above(ours):.0%} vs "
                f"{comparison.share_above(separate):.0%}; energy: {energies}"
            ),
            tolerance=PLAN_TOLERANCE,
        ),
        _cost_figure(comparison),
    ]


def _cost_figure(comparison: Comparison) -> Figure:
    """Return the cost row; as net earnings when both plans earn (negative cost).

    Both figures of a row must be positive for "below 1: ours is less" to hold.
    On the seeded prices the battery's trading (charging cheap, discharging at
    the peaks, the consumption price both ways) earns more than the EV's
    charging costs, so both plans earn, the site plan less.
    """
    ours, separate = (
        comparison.cost(comparison.ours),
        comparison.cost(comparison.separate),
    )
    how = (
        "the same plans: the summed power x the price sensor's prices read back "
        "for the window x slot hours (the consumption price both ways, as the "
        "plans were made); staying under the connection takes cheap slots away"
    )
    if ours < 0 and separate < 0:
        return Figure(
            key="site_cost",
            name="Site plan: net earnings of battery + EV for the day",
            ours=-ours,
            baseline=-separate,
            unit=comparison.currency,
            how=f"{how}; both plans earn (the battery's trading outweighs the EV)",
            tolerance=PLAN_TOLERANCE,
        )
    return Figure(
        key="site_cost",
        name="Site plan: energy cost of battery + EV for the day",
        ours=ours,
        baseline=separate,
        unit=comparison.currency,
        how=how,
        tolerance=PLAN_TOLERANCE,
    )


# ---------------------------------------------------------- the server's plans


async def wait_for_job(api: FlexMeasuresApi, job: str, pause: Pause) -> float:
    """Wait until the job finished; return its seconds from trigger to finished."""
    began = time.perf_counter()
    while time.perf_counter() - began < JOB_TIMEOUT:
        document = await api.async_get_job_status(job)
        status = str(document.get("status", "")).upper()
        if status == "FINISHED":
            return time.perf_counter() - began
        if status not in RUNNING:
            raise RuntimeError(f"scheduling job {job} {status}: {document!r}")
        await pause(POLL)
    raise RuntimeError(f"scheduling job {job} still running after {JOB_TIMEOUT} s")


async def _unmet(api: FlexMeasuresApi, job: str) -> tuple[float, ...]:
    """Return the deviations (kWh) of the targets a finished job could not meet."""
    document = await api.async_get_job_status(job)
    return tuple(
        missed.deviation_kwh for missed in unmet_targets(document.get("result"), ())
    )


async def _power(api: FlexMeasuresApi, device: Device, job: str) -> tuple[float, ...]:
    """Return a device's planned power (kW) from a finished job."""
    series = await api.async_get_schedule(
        sensor_id=device.sensor, job_id=job, duration=HORIZON
    )
    if None in series.values or len(series.values) != HORIZON / RESOLUTION:
        raise RuntimeError(f"incomplete plan for the {device.name}: {series!r}")
    return tuple(float(value) for value in series.values if value is not None)


async def plan_site(
    api: FlexMeasuresApi,
    site: Site,
    start: datetime,
    as_of: datetime,
    pause: Pause = asyncio.sleep,
) -> Plan:
    """Plan all devices in one job on the site asset, under the connection."""
    began = time.perf_counter()
    job = await api.async_trigger_site_schedule(
        asset_id=site.asset_id,
        start=start,
        duration=HORIZON,
        flex_models=[
            {"sensor": device.sensor, **device.flex_model(start)}
            for device in site.devices
        ],
        flex_context=site.flex_context(capacity_kva=SITE_CAPACITY_KVA),
        force=True,
        now=as_of,
    )
    await wait_for_job(api, job, pause)
    seconds = time.perf_counter() - began
    unmet = await _unmet(api, job)
    return Plan(
        name="site plan",
        power={device.name: await _power(api, device, job) for device in site.devices},
        job_seconds=(seconds,),
        # One job for the site: its result lists the targets of all devices.
        unmet={"site": unmet},
    )


async def plan_separately(
    api: FlexMeasuresApi,
    site: Site,
    start: datetime,
    as_of: datetime,
    pause: Pause = asyncio.sleep,
) -> Plan:
    """Plan each device alone, one job each, on the same prices and targets."""
    power: dict[str, tuple[float, ...]] = {}
    seconds: list[float] = []
    unmet: dict[str, tuple[float, ...]] = {}
    for device in site.devices:
        began = time.perf_counter()
        job = await api.async_trigger_schedule(
            sensor_id=device.sensor,
            start=start,
            duration=HORIZON,
            flex_model=device.flex_model(start),
            flex_context=site.flex_context(capacity_kva=None),
            force=True,
            now=as_of,
        )
        await wait_for_job(api, job, pause)
        seconds.append(time.perf_counter() - began)
        unmet[device.name] = await _unmet(api, job)
        power[device.name] = await _power(api, device, job)
    return Plan(
        name="separate plans",
        power=power,
        job_seconds=tuple(seconds),
        unmet=unmet,
    )


async def read_prices(api: FlexMeasuresApi, site: Site, start: datetime) -> list[float]:
    """Return the server's prices for each slot of the window (its unit)."""
    series = await api.async_get_sensor_data(
        site.price_sensor,
        start=start,
        duration=HORIZON,
        resolution=RESOLUTION,
        unit=site.price_unit,
    )
    if series.start != start or None in series.values:
        raise RuntimeError(
            f"the server holds no prices for every slot from {start}: {series!r}"
        )
    return [float(value) for value in series.values if value is not None]


def seed_api(session: ClientSession, site: Site) -> FlexMeasuresApi:
    """Return the integration's API for the seeded account."""
    return FlexMeasuresApi(
        session=session, url=site.url, email=site.email, password=site.password
    )


async def plan_both(
    api: FlexMeasuresApi,
    site: Site,
    start: datetime,
    as_of: datetime,
    *,
    warmup: bool = True,
) -> Comparison:
    """Plan the window both ways (after a warm-up of each) and read its prices."""
    if warmup:
        await plan_site(api, site, start, as_of)
        await plan_separately(api, site, start, as_of)
    return Comparison(
        site=site,
        start=start,
        as_of=as_of,
        prices=tuple(await read_prices(api, site, start)),
        ours=await plan_site(api, site, start, as_of),
        separate=await plan_separately(api, site, start, as_of),
    )


async def measure(seed_file: Path, *, warmup: bool = True) -> Comparison:
    """Compare both approaches on the seeded server for the benchmark's window."""
    site = site_from_seed(json.loads(seed_file.read_text()))
    start, as_of = benchmark_window(site, datetime.now(UTC))
    async with ClientSession() as session:
        return await plan_both(
            seed_api(session, site), site, start, as_of, warmup=warmup
        )


async def collect(seed_file: Path, quick: bool = False) -> list[Figure]:
    """Measure the README's site-plan figures (the same with --quick: no rounds)."""
    return figures(await measure(seed_file, warmup=not quick))


def report(comparison: Comparison) -> str:
    """Return the side-by-side table of both approaches."""
    rows: list[tuple[str, Callable[[Plan], str]]] = [
        ("peak summed power", lambda plan: f"{comparison.peak(plan):.2f} kW"),
        (
            f"slots above {SITE_CAPACITY_KVA:g} kW",
            lambda plan: f"{comparison.share_above(plan):.1%}",
        ),
        *(
            (
                f"energy to the {device.name}",
                lambda plan, name=device.name: (
                    f"{energy_kwh(plan.power[name]):.2f} kWh"
                ),
            )
            for device in comparison.site.devices
        ),
        (
            "cost",
            lambda plan: f"{comparison.cost(plan):.3f} {comparison.currency}",
        ),
        (
            "job time (trigger to finished)",
            lambda plan: " + ".join(f"{s:.2f} s" for s in plan.job_seconds),
        ),
        (
            "unmet targets (kWh short)",
            lambda plan: (
                ", ".join(
                    f"{key} {value:g}"
                    for key, values in plan.unmet.items()
                    for value in values
                )
                or "none"
            ),
        ),
    ]
    plans = (comparison.ours, comparison.separate)
    lines = [
        f"Site plan vs separate device plans, {comparison.start:%Y-%m-%d %H:%M} UTC "
        f"+ {HORIZON}, planned as of {comparison.as_of:%Y-%m-%d %H:%M} UTC",
        f"{'':<32}{plans[0].name:>20}{plans[1].name:>20}",
    ]
    lines.extend(
        f"{label:<32}" + "".join(f"{cell(plan):>20}" for plan in plans)
        for label, cell in rows
    )
    return "\n".join(lines)


async def main() -> None:
    """Plan both ways on the seeded server and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=Path, required=True, help="the server's seed")
    parser.add_argument("--no-warmup", action="store_true", help="skip the warm-up")
    args = parser.parse_args()
    comparison = await measure(args.seed, warmup=not args.no_warmup)
    print(report(comparison))


if __name__ == "__main__":
    asyncio.run(main())
