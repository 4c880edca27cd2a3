"""A series as its source in Home Assistant holds it, before any conversion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class SourcePoint:
    """One slot of a source: its start, its end if the source says, its value."""

    start: datetime
    end: datetime | None
    value: float


@dataclass(frozen=True, kw_only=True, slots=True)
class SourceSeries:
    """The slots a source holds now, in the source's own unit.

    ``unit`` is the unit as the source states it ("EUR/kWh", "SEK/MWh", "Wh"),
    None when the source does not say. ``published_at`` is when the source
    published the series (the forecast's belief time), None when unknown.
    """

    points: tuple[SourcePoint, ...]
    unit: str | None
    published_at: datetime | None = None
