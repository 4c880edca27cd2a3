"""The figures every benchmark returns, and the README table made of them.

Pure Python (no Home Assistant): ``run_all.py`` renders the table between the
README's markers, and ``--check`` reads it back to compare with a fresh run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
import math
import re
from typing import Any

START_MARKER = "<!-- benchmarks:start -->"
END_MARKER = "<!-- benchmarks:end -->"
HEADER = "| figure | ours | baseline | ratio | how measured |"
# A fresh ratio "matches" the README's within this factor either way: the
# figures are timings on a shared machine. Figures that follow the machine's load
# more than others carry a ``noise`` multiplier on it: the schedule lag and the
# requests per scheduling round (the shared server's job durations, which other
# test runs' jobs and the load stretch, decide where a job's end falls between
# the polls), and the loop stall (the OS preempts the loop, and the baseline's
# stall is how many answers arrive at once, which follows the CPU the fake server
# gets). Consecutive full runs on this busy 2-core machine (load 2 to 7) stayed
# within a factor 1.4 of each other for the rest, within 3.3 for the lag figures
# and 5.5 for the stall. --quick halves the rounds: a factor 3. Figures that are
# not timings (a plan's peak power and cost) carry their own, tight ``tolerance``.
DEFAULT_TOLERANCE = 2.0
QUICK_TOLERANCE = 3.0


@dataclass(frozen=True, kw_only=True)
class Figure:
    """One measured figure of ours next to its baseline, measured in the same run."""

    key: str
    name: str
    ours: float
    baseline: float
    unit: str
    how: str
    noise: float = 1.0  # multiplies the --check tolerance for this figure
    # Replaces the --check tolerance (and noise): for figures that are not timings
    # but follow from deterministic computations, such as a plan's peak and cost.
    tolerance: float | None = None

    def allowed(self, tolerance: float) -> float:
        """Return the factor --check allows this figure's ratio to move."""
        return self.tolerance if self.tolerance is not None else tolerance * self.noise

    @property
    def ratio(self) -> float:
        """Return ours divided by the baseline (below 1: ours is less)."""
        if self.baseline == 0:
            return math.inf if self.ours else 1.0
        return self.ours / self.baseline

    def as_dict(self) -> dict[str, Any]:
        """Return the figure as JSON-ready data, the ratio included."""
        return {**asdict(self), "ratio": self.ratio}


def format_number(value: float) -> str:
    """Format a value with about three significant digits, no exponent."""
    if math.isinf(value):
        return "∞"
    if value == 0:
        return "0"
    size = abs(value)
    if size >= 100 or (size >= 1 and value == round(value)):
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    digits = 1 - math.floor(math.log10(size))
    return f"{value:.{digits}f}"


def format_ratio(ratio: float) -> str:
    """Format a ratio as ``0.38x``."""
    return f"{format_number(ratio)}x"


def parse_number(text: str) -> float:
    """Read back a number written by format_number or format_ratio."""
    text = text.strip().removesuffix("x").replace(",", "")
    return math.inf if text == "∞" else float(text)


def _cell(text: str) -> str:
    """Escape a table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(figures: Iterable[Figure], meta: str) -> str:
    """Return the markdown block (table and a line about the run)."""
    lines = [HEADER, "|---|---:|---:|---:|---|"]
    for figure in figures:
        unit = f" {figure.unit}" if figure.unit else ""
        lines.append(
            "| "
            + " | ".join(
                (
                    _cell(figure.name),
                    f"{format_number(figure.ours)}{unit}",
                    f"{format_number(figure.baseline)}{unit}",
                    format_ratio(figure.ratio),
                    _cell(figure.how),
                )
            )
            + " |"
        )
    return "\n".join([*lines, "", meta])


def replace_block(text: str, block: str) -> str:
    """Return text with everything between the markers replaced by block."""
    start = text.find(START_MARKER)
    end = text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"no {START_MARKER} ... {END_MARKER} in the text")
    head = text[: start + len(START_MARKER)]
    return f"{head}\n{block.strip()}\n{text[end:]}"


def read_block(text: str) -> str:
    """Return what stands between the markers."""
    start = text.find(START_MARKER)
    end = text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"no {START_MARKER} ... {END_MARKER} in the text")
    return text[start + len(START_MARKER) : end].strip()


_ROW = re.compile(r"^\|(?P<cells>.*)\|\s*$")


def read_ratios(text: str) -> dict[str, float]:
    """Return figure name -> ratio from the table between the markers."""
    ratios: dict[str, float] = {}
    for line in read_block(text).splitlines():
        match = _ROW.match(line.strip())
        if match is None or line.strip() == HEADER or set(line) <= set("|-: "):
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", match["cells"])]
        ratios[cells[0].replace("\\|", "|")] = parse_number(cells[3])
    return ratios


def compare(
    recorded: Mapping[str, float],
    figures: Iterable[Figure],
    tolerance: float = DEFAULT_TOLERANCE,
) -> list[str]:
    """Return a line per figure whose ratio left the tolerance, or is missing."""
    figures = list(figures)
    fresh = {figure.name: figure.ratio for figure in figures}
    problems = [
        f"{name}: in the README but not measured"
        for name in sorted(recorded.keys() - fresh.keys())
    ]
    problems.extend(
        f"{name}: measured but not in the README"
        for name in sorted(fresh.keys() - recorded.keys())
    )
    by_name = {figure.name: figure for figure in figures}
    for name in sorted(recorded.keys() & fresh.keys()):
        old, new = recorded[name], fresh[name]
        allowed = by_name[name].allowed(tolerance)
        if not within(old, new, allowed):
            problems.append(
                f"{name}: ratio {format_ratio(new)}, README {format_ratio(old)} "
                f"(tolerance: factor {allowed:g})"
            )
    return problems


def within(old: float, new: float, tolerance: float) -> bool:
    """Return whether two ratios differ by at most a factor of tolerance."""
    if old == new:
        return True
    if old <= 0 or new <= 0 or math.isinf(old) or math.isinf(new):
        return False
    return max(old, new) / min(old, new) <= tolerance
