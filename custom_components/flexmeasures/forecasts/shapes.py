"""Read a list of slots from an entity attribute, whatever its common shape.

Price and solar integrations keep their series in an attribute, as a list of
mappings. The names differ per integration: ``{start, end, value}`` (Nord Pool's
``raw_today``/``raw_tomorrow``), ``{time, price}`` (ENTSO-e's ``prices_today``),
``{start_time, end_time, per_kwh}`` (Amber), ``{period_start, pv_estimate}``
(Solcast). The shape is detected once, confirmed by the user and stored, so a
change of shape upstream is noticed instead of read wrongly.

Pure code: no Home Assistant state is read here, only the attribute values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
import math
from typing import Any, Final

from homeassistant.util import dt as dt_util

from .model import SourcePoint, SourceSeries

# Key names per role, most common first.
START_KEYS: Final = (
    "start",
    "start_time",
    "startsAt",
    "time",
    "period_start",
    "datetime",
    "from",
    "date",
)
END_KEYS: Final = ("end", "end_time", "endsAt", "period_end", "till", "to")
VALUE_KEYS: Final = (
    "value",
    "price",
    "total",
    "per_kwh",
    "value_inc_vat",
    "price_ct_per_kwh",
    "pv_estimate",
    "electricity_price",
)
# An attribute of today's slots whose sibling holds tomorrow's ("raw_today",
# "prices_today"): both are read, as one series.
TODAY: Final = "today"
TOMORROW: Final = "tomorrow"
SEPARATOR: Final = ","


class UnreadableShapeError(ValueError):
    """The attribute holds no list of slots this module can read.

    ``reason`` is the translation key of the flow's message.
    """

    def __init__(self, reason: str) -> None:
        """Remember why."""
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Shape:
    """The keys of a slot list's items: start, end (if given) and value."""

    start_key: str
    end_key: str | None
    value_key: str

    def as_text(self) -> str:
        """Return the shape as stored in a subentry: "start,end,value"."""
        return SEPARATOR.join((self.start_key, self.end_key or "", self.value_key))

    @classmethod
    def from_text(cls, text: str) -> Shape:
        """Read a stored shape."""
        start, end, value = text.split(SEPARATOR)
        return cls(start, end or None, value)


def slot_lists(attributes: Mapping[str, Any]) -> list[str]:
    """Return the attributes that hold a non-empty list of mappings, sorted."""
    return sorted(
        name
        for name, value in attributes.items()
        if isinstance(value, Sequence)
        and not isinstance(value, str)
        and value
        and all(isinstance(item, Mapping) for item in value)
    )


def sibling(attribute: str) -> str | None:
    """Return the attribute of tomorrow's slots that goes with today's, or None."""
    if attribute.endswith(TODAY):
        return attribute.removesuffix(TODAY) + TOMORROW
    return None


def _items(attributes: Mapping[str, Any], attribute: str) -> list[Mapping[str, Any]]:
    """Return the items of an attribute and of its "tomorrow" sibling."""
    items: list[Mapping[str, Any]] = []
    for name in (attribute, sibling(attribute)):
        value = attributes.get(name) if name else None
        if value is None and name != attribute:
            continue
        if (
            not isinstance(value, Sequence)
            or isinstance(value, str)
            or not all(isinstance(item, Mapping) for item in value)
        ):
            raise UnreadableShapeError("not_a_slot_list")
        items.extend(value)
    return items


def detect_shape(attributes: Mapping[str, Any], attribute: str) -> Shape:
    """Return the shape of an attribute's slots; raise UnreadableShapeError."""
    items = _items(attributes, attribute)
    if not items:
        raise UnreadableShapeError("no_slots")
    keys = set(items[0])
    start_key = next((key for key in START_KEYS if key in keys), None)
    if start_key is None:
        raise UnreadableShapeError("no_start")
    value_key = next((key for key in VALUE_KEYS if key in keys), None)
    if value_key is None:
        raise UnreadableShapeError("no_value")
    end_key = next((key for key in END_KEYS if key in keys), None)
    shape = Shape(start_key, end_key, value_key)
    read_series(attributes, attribute, shape, unit=None)
    return shape


def read_series(
    attributes: Mapping[str, Any],
    attribute: str,
    shape: Shape,
    *,
    unit: str | None,
    published_at: datetime | None = None,
) -> SourceSeries:
    """Return the slots of an attribute (and its sibling) read with ``shape``.

    Items without a value (tomorrow's prices before they are published) are
    skipped; an item without a readable start, or with a value that is not a
    number, makes the whole list unreadable.
    """
    points: dict[datetime, SourcePoint] = {}
    for item in _items(attributes, attribute):
        start = _moment(item.get(shape.start_key))
        if start is None:
            raise UnreadableShapeError("bad_start")
        end = _moment(item.get(shape.end_key)) if shape.end_key else None
        raw = item.get(shape.value_key)
        if raw is None:
            continue
        value = _number(raw)
        if value is None:
            raise UnreadableShapeError("bad_value")
        points[start] = SourcePoint(start, end, value)
    if not points:
        raise UnreadableShapeError("no_slots")
    return SourceSeries(
        points=tuple(points[start] for start in sorted(points)),
        unit=unit,
        published_at=published_at,
    )


def _moment(value: Any) -> datetime | None:
    """Return a moment from a datetime or ISO 8601 text, in UTC; None if neither."""
    if isinstance(value, datetime):
        moment: datetime | None = value
    elif isinstance(value, str):
        moment = dt_util.parse_datetime(value)
    else:
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return dt_util.as_utc(moment)


def _number(value: Any) -> float | None:
    """Return a finite number, or None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
