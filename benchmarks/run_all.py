"""Run every benchmark and write the README's figures table (``scripts/benchmark``).

Each benchmark measures our figure and its baseline side by side in the same run;
the ratio (ours / baseline) is what holds from one run or machine to the next.
Writes the table between the README's ``<!-- benchmarks:start -->`` and
``<!-- benchmarks:end -->`` markers and all figures to ``benchmarks/results.json``.
With ``--check`` it writes nothing: it compares the fresh ratios with the README's
and fails if one differs by more than the tolerance (a factor, either way).

Usage (in a target environment, the FlexMeasures test server running)::

    python benchmarks/run_all.py --seed SEED_JSON [--quick] [--check] [--only NAME]

``--only`` runs one benchmark (repeatable) and prints its rows; with ``--check``
it compares only those. It writes nothing: the README's table is a full run's.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
import json
import os
from pathlib import Path
import platform
import sys
import time
from typing import Any

import bench_report
from bench_report import Figure
import bench_schedule_lag  # first: imports Home Assistant the way the tests do
import bench_sensor_refresh
import bench_setup
import bench_site_plan
import bench_uploader
from homeassistant import const as ha_const

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results.json"
DEFAULT_SEED = (
    Path(
        os.environ.get("FLEXMEASURES_SERVER_DIR")
        or Path.home() / ".cache" / "flexmeasures-ha" / "server"
    )
    / "seed.json"
)
# The README's order: the list of figures.
ORDER = (
    "schedule_lag",
    "schedule_lag_p90",
    "schedule_requests",
    "s2_instruction_lag",
    "s2_instruction_lag_p90",
    "upload_requests",
    "upload_loop_time",
    "refresh_cpu_per_sensor",
    "refresh_cpu_per_sensor_hour",
    "refresh_requests_per_sensor_hour",
    "refresh_stall",
    "refresh_in_flight",
    "setup_time",
    "setup_time_per_sensor",
    "backlog_ram",
    "backlog_store",
    "site_peak_power",
    "site_cost",
)


def _log(message: str) -> None:
    """Report progress on stderr."""
    print(f"[run_all] {message}", file=sys.stderr, flush=True)


def steps(seed: Path, quick: bool) -> dict[str, Any]:
    """Return each benchmark by its --only name, as a coroutine-returning call."""
    return {
        "uploader": lambda: asyncio.to_thread(bench_uploader.collect, quick),
        "sensor_refresh": lambda: bench_sensor_refresh.collect(quick),
        "setup": lambda: bench_setup.collect(quick),
        "schedule_lag": lambda: bench_schedule_lag.collect(seed, quick),
        "site_plan": lambda: bench_site_plan.collect(seed, quick),
    }


async def run(seed: Path, quick: bool, only: list[str] | None = None) -> list[Figure]:
    """Run the benchmarks one after the other; return their figures in README order."""
    figures: list[Figure] = []
    for name, step in steps(seed, quick).items():
        if only and name not in only:
            continue
        began = time.perf_counter()
        _log(f"{name} ...")
        figures.extend(await step())
        _log(f"{name}: {time.perf_counter() - began:.0f} s")
    figures.sort(key=lambda figure: ORDER.index(figure.key))
    return figures


def describe_run(
    seed: Path, quick: bool, seconds: float, only: list[str] | None = None
) -> dict[str, Any]:
    """Return when, where and with what the figures were measured."""
    server = json.loads(seed.read_text()).get("flexmeasures_version", "?")
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "machine": f"{platform.system()} {platform.machine()}",
        "load_average": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "home_assistant": ha_const.__version__,
        "flexmeasures_server": server,
        "mode": ("quick" if quick else "full")
        + (f", only {', '.join(only)}" if only else ""),
        "seconds": round(seconds),
    }


def meta_line(meta: dict[str, Any], figures: list[Figure], tolerance: float) -> str:
    """Return the line under the table."""
    wider = ", ".join(
        f"{figure.allowed(tolerance):g} for “{figure.name}”"
        for figure in figures
        if figure.tolerance is None and figure.noise != 1
    )
    fixed = ", ".join(
        f"{figure.tolerance:g} for “{figure.name}”"
        for figure in figures
        if figure.tolerance is not None
    )
    exceptions = "; ".join(
        part
        for part in (
            wider and f"{wider}: they follow the machine's load",
            fixed and f"{fixed}: plans, not timings",
        )
        if part
    )
    return (
        f"Measured {meta['date']} on {meta['cores']} cores ({meta['machine']}, "
        f"load {meta['load_average']}), Home Assistant {meta['home_assistant']} "
        f"(Python {meta['python']}), FlexMeasures server {meta['flexmeasures_server']}"
        f"; `scripts/benchmark` ({meta['mode']}) took {meta['seconds']} s. "
        "Ratio = ours / baseline (below 1: ours is less). "
        "`scripts/benchmark --check` passes while every fresh ratio is within a "
        f"factor {tolerance:g} of the one above"
        + (f" ({exceptions})." if exceptions else ".")
    )


def main() -> int:
    """Run, then write (or, with --check, compare with) the README table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=Path, default=DEFAULT_SEED)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument(
        "--check", action="store_true", help="compare with the README, write nothing"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        help="allowed factor between a fresh ratio and the README's (--check); "
        f"default {bench_report.DEFAULT_TOLERANCE:g}, "
        f"with --quick {bench_report.QUICK_TOLERANCE:g}",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(steps(DEFAULT_SEED, quick=False)),
        help="run only this benchmark (repeatable); prints its rows, and with "
        "--check compares only them: the README and results.json are written by "
        "full runs only",
    )
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.tolerance is None:
        args.tolerance = (
            bench_report.QUICK_TOLERANCE
            if args.quick
            else bench_report.DEFAULT_TOLERANCE
        )
    if not args.seed.is_file():
        parser.error(f"no {args.seed}: is the server running (scripts/benchmark)?")

    began = time.perf_counter()
    figures = asyncio.run(run(args.seed, args.quick, args.only))
    meta = describe_run(args.seed, args.quick, time.perf_counter() - began, args.only)
    block = bench_report.render_table(
        figures, meta_line(meta, figures, bench_report.DEFAULT_TOLERANCE)
    )
    print(block)

    if args.check:
        recorded = bench_report.read_ratios(args.readme.read_text())
        if args.only:
            measured = {figure.name for figure in figures}
            recorded = {k: v for k, v in recorded.items() if k in measured}
        problems = bench_report.compare(recorded, figures, args.tolerance)
        print("\nratio in the README -> now:")
        for figure in figures:
            old = recorded.get(figure.name)
            if old is not None:
                print(
                    f"  {bench_report.format_ratio(old):>9} -> "
                    f"{bench_report.format_ratio(figure.ratio):<9} {figure.name}"
                )
        for problem in problems:
            print(f"DIFFERS  {problem}")
        print(
            f"--check: {len(figures) - len(problems)}/{len(figures)} ratios within "
            f"a factor {args.tolerance:g} of the README's (times a figure's noise)"
        )
        return 1 if problems else 0

    if args.only:
        _log("--only: wrote nothing (the README's table is a full run's)")
        return 0
    readme = args.readme.read_text()
    args.readme.write_text(bench_report.replace_block(readme, block))
    args.results.write_text(
        json.dumps(
            {"meta": meta, "figures": [figure.as_dict() for figure in figures]},
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    _log(f"wrote {args.readme.name} (between the markers) and {args.results.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
