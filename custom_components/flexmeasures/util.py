"""Small conversions more than one module needs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from homeassistant.util import dt as dt_util


def as_utc(moment: datetime) -> datetime:
    """Return ``moment`` in UTC; a moment without an offset is local time."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt_util.get_default_time_zone())
    return dt_util.as_utc(moment)


def optional_int(value: Any) -> int | None:
    """Return ``int(value)``, or None for a value that is not set."""
    return None if value is None else int(value)


def as_sensor_id(value: Any) -> int | None:
    """Return a FlexMeasures sensor id from subentry data, or None when unset.

    Lenient: a value that is no id (empty, a flag, text) counts as unset, so a
    damaged setting leaves that sensor out instead of failing the set-up.
    """
    if isinstance(value, bool) or value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def optional_float(value: Any) -> float | None:
    """Return ``float(value)``, or None for a value that is not set."""
    return None if value is None else float(value)


def selector_seconds(duration: Mapping[str, float]) -> float:
    """Return the seconds of a duration selector's value."""
    return timedelta(**duration).total_seconds()
