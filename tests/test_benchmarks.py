"""Tests for the README figures table that scripts/benchmark writes and checks."""

from __future__ import annotations

import math
from pathlib import Path
import sys

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench_report
from bench_report import END_MARKER, START_MARKER, Figure

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
