"""Small conversions more than one module needs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from homeassistant.util import dt as dt_util


def as_utc(moment: datetime) -> datetime:
    """Return ``moment`` in UTC; a moment without an offset is local time."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt_util.get_default_time_zone())
    return dt_util.as_utc(moment)


def selector_seconds(duration: Mapping[str, float]) -> float:
    """Return the seconds of a duration selector's value."""
    return timedelta(**duration).total_seconds()
