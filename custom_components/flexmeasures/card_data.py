"""Schedule data for the dashboard card: the seam to the scheduling code.

The card asks two questions: which controlled devices exist, and what is the
plan of one of them. Both answers come from here, in the shape the card reads
(see ``CardSchedule``), so the scheduling code can change without touching the
websocket commands or the card.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, NotRequired, TypedDict

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.util import dt as dt_util

from .const import DOMAIN
from .identity import controlled_device_subentry_id
from .scheduling import merge_windows

if TYPE_CHECKING:
    from .api import TimeSeries
    from .data import FlexMeasuresConfigEntry
    from .scheduling import DeviceScheduler

SERVICE_GET_SCHEDULE: Final = "get_schedule"
STATUSES: Final = ("idle", "computing", "ready", "fallback", "stale", "failed")


class CardDevice(TypedDict):
    """A controlled device as the card's device picker lists it."""

    device_id: str
    name: str


class CardWindow(TypedDict):
    """A run of contiguous charging or discharging slots."""

    start: str
    end: str
    kind: str


class CardPrices(TypedDict):
    """The price series of the flex-context."""

    start: str
    resolution: int
    unit: str
    values: list[float | None]


class CardSchedule(TypedDict):
    """The schedule of one controlled device, as the card reads it."""

    device_id: str
    name: str
    status: str
    start: str
    end: str
    resolution: int
    unit: str
    values: list[float | None]
    soc: list[float | None] | None
    soc_unit: str | None
    prices: CardPrices | None
    windows: list[CardWindow]
    updated: str | None
    reason: NotRequired[str]


def _is_controlled_device(device: dr.DeviceEntry) -> bool:
    """Tell whether a device is a controlled device."""
    return controlled_device_subentry_id(device) is not None


def _device_name(device: dr.DeviceEntry) -> str:
    """Return the name a user sees for a device."""
    return device.name_by_user or device.name or device.id


def _controlled_devices(hass: HomeAssistant) -> list[dr.DeviceEntry]:
    """Return the controlled devices of all entries of this integration."""
    registry = dr.async_get(hass)
    return [
        device
        for entry in hass.config_entries.async_entries(DOMAIN)
        for device in dr.async_entries_for_config_entry(registry, entry.entry_id)
        if _is_controlled_device(device)
    ]


async def async_controlled_devices(hass: HomeAssistant) -> list[CardDevice]:
    """Return the controlled devices, sorted by name."""
    devices = [
        CardDevice(device_id=device.id, name=_device_name(device))
        for device in _controlled_devices(hass)
    ]
    return sorted(devices, key=lambda device: (device["name"].casefold(), device))


def async_get_controlled_device(
    hass: HomeAssistant, device_id: str
) -> dr.DeviceEntry | None:
    """Return the controlled device with this id, if there is one."""
    return next(
        (device for device in _controlled_devices(hass) if device.id == device_id),
        None,
    )


async def async_schedule_payload(
    hass: HomeAssistant, device_id: str
) -> CardSchedule | None:
    """Return the schedule of a controlled device, or None if it has none.

    Asks the ``flexmeasures.get_schedule`` action. Its errors (already
    translated ``HomeAssistantError``s) reach the caller unchanged.
    """
    device = async_get_controlled_device(hass, device_id)
    if device is None or not hass.services.has_service(DOMAIN, SERVICE_GET_SCHEDULE):
        return None
    response = await hass.services.async_call(
        DOMAIN,
        SERVICE_GET_SCHEDULE,
        {"device_id": device_id},
        blocking=True,
        return_response=True,
    )
    if not response or not response.get("values"):
        return None
    schedule = card_schedule(device_id, _device_name(device), response)
    if schedule["prices"] is None and (scheduler := _scheduler(hass, device)):
        schedule["prices"] = card_prices(await scheduler.async_get_prices())
    return schedule


def _scheduler(hass: HomeAssistant, device: dr.DeviceEntry) -> DeviceScheduler | None:
    """Return the scheduler of a controlled device of a loaded entry, if any."""
    entries: list[FlexMeasuresConfigEntry] = hass.config_entries.async_entries(DOMAIN)
    return next(
        (
            scheduler
            for entry in entries
            if entry.state is ConfigEntryState.LOADED
            for scheduler in entry.runtime_data.schedulers.values()
            if scheduler.device_identifier in device.identifiers
        ),
        None,
    )


def card_prices(series: TimeSeries | None) -> CardPrices | None:
    """Shape a price series into what the card reads; None without values."""
    if series is None or not series.values:
        return None
    return CardPrices(
        start=series.start.isoformat(),
        resolution=int(series.resolution.total_seconds()),
        unit=series.unit,
        values=list(series.values),
    )


def _seconds(value: Any) -> int:
    """Return a resolution in seconds from seconds, a timedelta or ISO 8601."""
    if isinstance(value, str) and (duration := dt_util.parse_duration(value)):
        value = duration
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    return int(value)


def _iso(value: Any) -> str:
    """Return a timestamp as an ISO 8601 string."""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _floats(values: Any) -> list[float | None]:
    """Return a series as floats, keeping gaps as None."""
    return [None if value is None else float(value) for value in values]


def schedule_windows(
    start: datetime, resolution: int, values: list[float | None]
) -> list[CardWindow]:
    """Return the plan's charging and discharging windows as the calendar has them."""
    return [
        CardWindow(
            start=window.start.isoformat(), end=window.end.isoformat(), kind=window.kind
        )
        for window in merge_windows(start, timedelta(seconds=resolution), values)
    ]


def card_schedule(device_id: str, name: str, response: dict[str, Any]) -> CardSchedule:
    """Shape a ``get_schedule`` response into what the card reads."""
    start = response["start"]
    if not isinstance(start, datetime):
        start = dt_util.parse_datetime(str(start), raise_on_error=True)
    resolution = _seconds(response["resolution"])
    values = _floats(response["values"])
    end = start + timedelta(seconds=resolution * len(values))
    soc = response.get("soc")
    prices = response.get("prices")
    status = response.get("status", "ready")
    schedule = CardSchedule(
        device_id=device_id,
        name=name,
        status=status if status in STATUSES else "ready",
        start=start.isoformat(),
        end=end.isoformat(),
        resolution=resolution,
        unit=response.get("unit", "kW"),
        values=values,
        soc=None if soc is None else _floats(soc),
        soc_unit=response.get("soc_unit") if soc is not None else None,
        prices=None
        if not prices
        else CardPrices(
            start=_iso(prices["start"]),
            resolution=_seconds(prices["resolution"]),
            unit=prices.get("unit", ""),
            values=_floats(prices["values"]),
        ),
        windows=response.get("windows") or schedule_windows(start, resolution, values),
        updated=None
        if (updated := response.get("updated", response.get("computed_at"))) is None
        else _iso(updated),
    )
    reason = response.get("reason") or response.get("failure_reason")
    if reason := reason or response.get("fallback_reason"):
        schedule["reason"] = str(reason)
    return schedule
