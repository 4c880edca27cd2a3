"""A whole series through the uploader's aggregators: what the tests expect."""

from __future__ import annotations

from collections.abc import Iterable

from custom_components.flexmeasures.aggregation import (
    Aggregation,
    Slot,
    create_aggregator,
)


def aggregate(
    kind: Aggregation,
    step: int,
    points: Iterable[tuple[float, float | None]],
    end: float,
) -> list[Slot]:
    """Aggregate a series of (time, value) points; return slots ending by ``end``."""
    aggregator = create_aggregator(kind, step)
    slots: list[Slot] = []
    for time, value in points:
        slots.extend(aggregator.update(time, value))
    slots.extend(aggregator.advance(end))
    return slots
