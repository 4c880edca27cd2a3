"""Tests for the README figures table that scripts/benchmark writes and checks.

And for the pure parts of the benchmarks whose figures are plans, not timings.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
import math
from pathlib import Path
import sys
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_report
from bench_report import END_MARKER, START_MARKER, Figure
import bench_site_plan

ROOT = Path(__file__).resolve().parent.parent

FIGURES = [
    Figure(
        key="lag",
        name="Schedule lag after job end (median)",
        ours=0.4,
        baseline=3.2,
        unit="s",
        how="live server | interleaved",
    ),
    Figure(
        key="requests",
        name="Upload requests per 5-min interval",
        ours=0.29,
        baseline=300.0,
        unit="",
        how="simulated",
    ),
    Figure(
        key="memory",
        name="Backlog memory (RAM)",
        ours=1003.4,
        baseline=3388.0,
        unit="KiB",
        how="tracemalloc",
    ),
]
README = f"""# Title

## Performance

Intro text.

{START_MARKER}
_Not generated yet: run `scripts/benchmark`._
{END_MARKER}

## Known limitations

Stays as it is.
"""


def test_table_round_trip() -> None:
    """The ratios read back from a written table are the rendered ones."""
    text = bench_report.replace_block(
        README, bench_report.render_table(FIGURES, "Measured today.")
    )
    ratios = bench_report.read_ratios(text)
    assert list(ratios) == [figure.name for figure in FIGURES]
    for figure in FIGURES:
        # Two significant digits below 1: within 5 % of the exact ratio.
        assert ratios[figure.name] == pytest.approx(figure.ratio, rel=0.05)
    assert "live server \\| interleaved" in text
    assert "| 0.29 | 300 | 0.00097x |" in text


def test_replace_block_touches_only_the_markers() -> None:
    """Text outside the markers is kept; a second write replaces the first."""
    first = bench_report.replace_block(README, "first block")
    second = bench_report.replace_block(first, "second block")
    head, _, rest = README.partition(START_MARKER)
    _, _, tail = rest.partition(END_MARKER)
    assert second == f"{head}{START_MARKER}\nsecond block\n{END_MARKER}{tail}"
    assert bench_report.read_block(second) == "second block"


@pytest.mark.parametrize(
    "text", ["no markers", f"{END_MARKER}\n{START_MARKER}", f"{START_MARKER} only"]
)
def test_markers_required(text: str) -> None:
    """Without both markers in order, nothing is written or read."""
    with pytest.raises(ValueError, match="benchmarks:start"):
        bench_report.replace_block(text, "block")
    with pytest.raises(ValueError, match="benchmarks:start"):
        bench_report.read_block(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (0.000972, "0.00097"),
        (0.0551, "0.055"),
        (0.319, "0.32"),
        (4.0, "4"),
        (6.43, "6.43"),
        (34.94, "34.9"),
        (120.0, "120"),
        (3388.2, "3,388"),
        (math.inf, "∞"),
    ],
)
def test_format_number(value: float, text: str) -> None:
    """Numbers keep about three significant digits and read back."""
    assert bench_report.format_number(value) == text
    assert bench_report.parse_number(text) == pytest.approx(value, rel=0.01)


@pytest.mark.parametrize(
    ("ours", "baseline", "ratio"),
    [(1.0, 4.0, 0.25), (0.0, 0.0, 1.0), (2.0, 0.0, math.inf)],
)
def test_ratio(ours: float, baseline: float, ratio: float) -> None:
    """The ratio is ours / baseline, defined for a zero baseline too."""
    figure = Figure(key="k", name="n", ours=ours, baseline=baseline, unit="", how="")
    assert figure.ratio == ratio
    assert figure.as_dict()["ratio"] == ratio


def _scaled(factor: float) -> list[Figure]:
    """Return FIGURES with our value of the first one multiplied by factor."""
    first, *rest = FIGURES
    return [
        Figure(
            key=first.key,
            name=first.name,
            ours=first.ours * factor,
            baseline=first.baseline,
            unit=first.unit,
            how=first.how,
        ),
        *rest,
    ]


@pytest.mark.parametrize(
    ("factor", "differs"),
    [(1.0, False), (1.9, False), (0.55, False), (2.1, True), (0.45, True)],
)
def test_compare_within_tolerance(factor: float, differs: bool) -> None:
    """A fresh ratio passes within a factor 2 of the README's, either way."""
    recorded = {figure.name: figure.ratio for figure in FIGURES}
    problems = bench_report.compare(recorded, _scaled(factor), tolerance=2.0)
    assert bool(problems) is differs
    if differs:
        assert problems[0].startswith("Schedule lag after job end (median): ratio")


def test_compare_reports_missing_and_new_figures() -> None:
    """A figure only in the README or only in the run is a difference too."""
    recorded = {figure.name: figure.ratio for figure in FIGURES[1:]}
    recorded["Gone"] = 1.0
    assert bench_report.compare(recorded, FIGURES) == [
        "Gone: in the README but not measured",
        "Schedule lag after job end (median): measured but not in the README",
    ]


@pytest.mark.parametrize(
    ("old", "new", "result"),
    [
        (1.0, 1.0, True),
        (math.inf, math.inf, True),
        (0.0, 0.1, False),
        (1.0, math.inf, False),
    ],
)
def test_within(old: float, new: float, result: bool) -> None:
    """Zero and infinite ratios only match themselves."""
    assert bench_report.within(old, new, 2.0) is result


def test_readme_has_the_generated_table() -> None:
    """The README holds the markers, and between them a table the reader parses."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = bench_report.read_block(text)
    assert block.startswith(bench_report.HEADER)
    ratios = bench_report.read_ratios(text)
    assert len(ratios) >= 10
    assert all(ratio > 0 for ratio in ratios.values())


@pytest.mark.parametrize(("factor", "differs"), [(3.9, False), (4.1, True)])
def test_compare_noisy_figure(factor: float, differs: bool) -> None:
    """A figure's noise widens its own tolerance only."""
    recorded = {figure.name: figure.ratio for figure in FIGURES}
    first, *rest = _scaled(factor)
    noisy = Figure(
        key=first.key,
        name=first.name,
        ours=first.ours,
        baseline=first.baseline,
        unit=first.unit,
        how=first.how,
        noise=2.0,
    )
    problems = bench_report.compare(recorded, [noisy, *rest], tolerance=2.0)
    assert problems == (
        [
            f"{first.name}: ratio {bench_report.format_ratio(noisy.ratio)}, README "
            f"{bench_report.format_ratio(FIGURES[0].ratio)} (tolerance: factor 4)"
        ]
        if differs
        else []
    )


@pytest.mark.parametrize(("factor", "differs"), [(1.019, False), (1.021, True)])
def test_compare_fixed_tolerance(factor: float, differs: bool) -> None:
    """A figure's own tolerance replaces the run's (and its noise), even wider ones."""
    recorded = {figure.name: figure.ratio for figure in FIGURES}
    first, *rest = _scaled(factor)
    plan = Figure(
        key=first.key,
        name=first.name,
        ours=first.ours,
        baseline=first.baseline,
        unit=first.unit,
        how=first.how,
        noise=3.0,
        tolerance=1.02,
    )
    assert plan.allowed(3.0) == 1.02
    assert bool(bench_report.compare(recorded, [plan, *rest], tolerance=3.0)) is (
        differs
    )


# --- the site-plan benchmark's plan figures (benchmarks/bench_site_plan.py) ---

SEED: dict[str, Any] = {
    "url": "http://127.0.0.1:5800",
    "flexmeasures_version": "1.0.1",
    "timezone": "Europe/Amsterdam",
    "email": "home@example.com",
    "password": "home-password",
    "assets": {"site": 4, "battery": 5, "ev_charger": 6},
    "sensors": {"price": 7, "battery_power": 8, "ev_charger_power": 10},
    "units": {"price": "EUR/MWh"},
    "battery": {"capacity_kwh": 10.0, "soc_min_kwh": 1.0, "power_kw": 5.0},
    "ev_charger_flex_model": {
        "power-capacity": "11 kW",
        "production-capacity": "0 kW",
    },
    "prices": {
        "start": "2026-12-02T00:00:00+00:00",
        "end": "2026-12-06T00:00:00+00:00",
    },
}
SITE = bench_site_plan.site_from_seed(SEED)
NOW = datetime(2026, 12, 4, 5, 40, tzinfo=UTC)


def test_site_from_seed_flex_models() -> None:
    """The seed's battery and EV charger become flex-models with targets 20 h in."""
    battery, ev = SITE.devices
    start = datetime(2026, 12, 4, 23, tzinfo=UTC)
    assert battery.flex_model(start) == {
        "soc-at-start": "5 kWh",
        "soc-min": "1 kWh",
        "soc-max": "10 kWh",
        "power-capacity": "5 kW",
        "consumption-capacity": "5 kW",
        "production-capacity": "5 kW",
        "soc-targets": [{"datetime": "2026-12-05T19:00:00+00:00", "value": "10 kWh"}],
        "roundtrip-efficiency": "90%",
    }
    model = ev.flex_model(start)
    assert (model["power-capacity"], model["production-capacity"]) == ("11 kW", "0 kW")
    assert model["soc-targets"][0]["value"] == "50 kWh"
    assert "roundtrip-efficiency" not in model
    assert SITE.flex_context(capacity_kva=10) == {
        "consumption-price": {"sensor": 7},
        "site-power-capacity": "10 kVA",
    }
    assert SITE.flex_context(capacity_kva=None) == {"consumption-price": {"sensor": 7}}


@pytest.mark.parametrize(
    ("now", "start", "as_of"),
    [
        # The next local midnight (23:00 UTC in winter), planned now.
        (NOW, datetime(2026, 12, 4, 23, tzinfo=UTC), NOW),
        # Prices end before the next day does: the latest whole local day they
        # cover, as of its start.
        (
            datetime(2026, 12, 5, 12, tzinfo=UTC),
            datetime(2026, 12, 4, 23, tzinfo=UTC),
            datetime(2026, 12, 4, 23, tzinfo=UTC),
        ),
        (
            datetime(2026, 12, 9, 12, tzinfo=UTC),
            datetime(2026, 12, 4, 23, tzinfo=UTC),
            datetime(2026, 12, 4, 23, tzinfo=UTC),
        ),
    ],
)
def test_benchmark_window(now: datetime, start: datetime, as_of: datetime) -> None:
    """The benchmark plans a whole local day its prices cover."""
    assert bench_site_plan.benchmark_window(SITE, now) == (start, as_of)


def test_benchmark_window_over_summer_time() -> None:
    """Local midnights in summer time are at 22:00 UTC."""
    site = replace(
        SITE,
        prices_from=datetime(2026, 6, 1, tzinfo=UTC),
        prices_until=datetime(2026, 6, 4, tzinfo=UTC),
    )
    summer = datetime(2026, 6, 2, 9, tzinfo=UTC)
    assert bench_site_plan.benchmark_window(site, summer) == (
        datetime(2026, 6, 2, 22, tzinfo=UTC),
        summer,
    )
    # The day before, when the prices stop at the next one's end.
    short = replace(site, prices_until=datetime(2026, 6, 3, 12, tzinfo=UTC))
    assert bench_site_plan.benchmark_window(short, summer) == (
        datetime(2026, 6, 1, 22, tzinfo=UTC),
        datetime(2026, 6, 1, 22, tzinfo=UTC),
    )


def test_current_slot_window() -> None:
    """The live test plans from the current slot, or the latest one covered."""
    assert bench_site_plan.current_slot_window(SITE, NOW) == (
        datetime(2026, 12, 4, 5, 30, tzinfo=UTC),
        NOW,
    )
    late = datetime(2026, 12, 5, 8, 7, tzinfo=UTC)
    end = datetime(2026, 12, 5, 0, tzinfo=UTC)
    assert bench_site_plan.current_slot_window(SITE, late) == (end, end)


def test_window_needs_prices() -> None:
    """Prices shorter than a horizon cover no window."""
    site = replace(SITE, prices_until=SITE.prices_from + timedelta(hours=23))
    with pytest.raises(ValueError, match="cover no"):
        bench_site_plan.current_slot_window(site, NOW)


def test_series_arithmetic() -> None:
    """Summed power, slots above a capacity, energy and stored energy."""
    battery, _ = SITE.devices
    assert bench_site_plan.summed([(1.0, 5.0), (10.0, 6.0)]) == [11.0, 11.0]
    with pytest.raises(ValueError, match="different lengths"):
        bench_site_plan.summed([(1.0,), (1.0, 2.0)])
    assert bench_site_plan.slots_above([10.0, 10.0005, 10.01, 16.0], 10.0) == 2
    assert bench_site_plan.energy_kwh([4.0, 4.0, -2.0, 2.0]) == 2.0
    # Charging stores sqrt(0.9) of it, discharging draws 1/sqrt(0.9) of it.
    stored = bench_site_plan.reached_kwh(battery, [4.0, -4.0, 4.0], 2)
    assert stored == pytest.approx(5.0 + 0.9**0.5 - 0.9**-0.5)


@pytest.mark.parametrize(
    ("unit", "factor"), [("EUR/MWh", 0.001), ("EUR/kWh", 1.0), ("KRW/Wh", 1000.0)]
)
def test_price_per_kwh(unit: str, factor: float) -> None:
    """A price per energy becomes a price per kWh."""
    assert bench_site_plan.price_per_kwh(unit) == pytest.approx(factor)


@pytest.mark.parametrize("unit", ["EUR", "/MWh", "EUR/m3"])
def test_price_per_kwh_refuses(unit: str) -> None:
    """Only a currency per energy unit is a price."""
    with pytest.raises(ValueError, match="not a price per energy"):
        bench_site_plan.price_per_kwh(unit)


def _comparison(battery_kw: float) -> bench_site_plan.Comparison:
    """Return a 4-slot comparison: the separate plans overlap in the cheap slots."""
    cap = bench_site_plan.SITE_CAPACITY_KVA
    return bench_site_plan.Comparison(
        site=SITE,
        start=NOW,
        as_of=NOW,
        prices=(200.0, 20.0, 20.0, 100.0),  # EUR/MWh
        ours=bench_site_plan.Plan(
            name="site plan",
            power={
                "battery": (battery_kw, 5.0, 0.0, 0.0),
                "EV": (0.0, 5.0, cap, 6.0),
            },
            job_seconds=(1.5,),
            unmet={"site": ()},
        ),
        separate=bench_site_plan.Plan(
            name="separate plans",
            power={
                "battery": (battery_kw, 5.0, 0.0, 0.0),
                "EV": (0.0, 11.0, 10.0, 0.0),
            },
            job_seconds=(1.0, 0.5),
            unmet={"battery": (), "EV": (2.5,)},
        ),
    )


def test_site_plan_figures() -> None:
    """Peak and cost side by side, with the plan tolerance; the report shows all."""
    comparison = _comparison(battery_kw=0.0)
    # (20 x 10 + 20 x 10 + 100 x 6) EUR/MWh x kW x 0.25 h / 1000 = 0.25 EUR.
    assert comparison.cost(comparison.ours) == pytest.approx(0.25)
    assert comparison.cost(comparison.separate) == pytest.approx(0.13)
    assert comparison.share_above(comparison.separate) == 0.25
    peak, cost = bench_site_plan.figures(comparison)
    assert (peak.key, peak.ours, peak.baseline, peak.unit) == (
        "site_peak_power",
        10.0,
        16.0,
        "kW",
    )
    assert "0% vs 25%" in peak.how
    assert "EV 5.2 vs 5.2 kWh" in peak.how
    assert cost.name == "Site plan: energy cost of battery + EV for the day"
    assert (cost.ours, cost.baseline, cost.unit) == pytest.approx((0.25, 0.13, "EUR"))
    assert peak.tolerance == cost.tolerance == bench_site_plan.PLAN_TOLERANCE
    text = bench_site_plan.report(comparison)
    assert "1.50 s" in text
    assert "1.00 s + 0.50 s" in text
    assert "EV 2.5" in text
    assert "none" in text


def test_site_plan_earnings() -> None:
    """When both plans earn (the battery sells at the peak), the row is earnings."""
    comparison = _comparison(battery_kw=-5.0)
    assert comparison.cost(comparison.ours) == pytest.approx(0.0)
    comparison = _comparison(battery_kw=-10.0)
    _, earnings = bench_site_plan.figures(comparison)
    assert earnings.name == "Site plan: net earnings of battery + EV for the day"
    # Selling 2.5 kWh at 200 EUR/MWh earns 0.5 EUR.
    assert earnings.ours == pytest.approx(0.25)
    assert earnings.baseline == pytest.approx(0.37)
