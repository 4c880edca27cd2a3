"""Dispatcher signals of the integration, their names built in one place."""

from __future__ import annotations

from homeassistant.util.signal_type import SignalType

from .const import DOMAIN


def signal_uploader_updated(entry_id: str) -> SignalType[()]:
    """Return the signal of an entry's uploader: its queue or last upload changed."""
    return SignalType(f"{DOMAIN}_uploader_updated_{entry_id}")


def signal_s2_updated(entry_id: str, subentry_id: str) -> SignalType[()]:
    """Return the signal of a controlled device's S2 status: it changed."""
    return SignalType(f"{DOMAIN}_s2_updated_{entry_id}_{subentry_id}")


def signal_forecast_posted(entry_id: str) -> SignalType[int]:
    """Return the signal of an entry's forecast links: a series reached a sensor.

    The argument is the FlexMeasures sensor id the forecast was posted to (a
    site may replan when its price sensor got new prices).
    """
    return SignalType(f"{DOMAIN}_forecast_posted_{entry_id}")


def signal_forecast_link_updated(entry_id: str, subentry_id: str) -> SignalType[()]:
    """Return the signal of one forecast link: it posted, or its source failed."""
    return SignalType(f"{DOMAIN}_forecast_link_updated_{entry_id}_{subentry_id}")
