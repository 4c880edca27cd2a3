"""Schedule data for the dashboard card: the seam to the scheduling code.

The card asks which controlled devices (and sites) exist, and what the plan of
one of them is. The answers come from here, in the shape the card reads (see
``CardSchedule`` and ``CardSite``), so the scheduling code can change without
touching the websocket commands or the card.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, NotRequired, Protocol, TypedDict

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.util import dt as dt_util
from homeassistant.util.hass_dict import HassKey

from . import identity
from .compat import device_by_identifier
from .const import DOMAIN
from .identity import controlled_device_subentry_id
from .scheduling import Schedule, ScheduleStatus, merge_windows
from .scheduling.prices import PlanPrices

if TYPE_CHECKING:
    from .api import TimeSeries
    from .data import FlexMeasuresConfigEntry
    from .scheduling import DeviceScheduler
    from .scheduling.model import SiteConfig

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


def _by_name(devices: list[CardDevice]) -> list[CardDevice]:
    """Return the devices sorted by the name the user sees."""
    return sorted(devices, key=lambda device: (device["name"].casefold(), device))


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
    return _by_name(
        [
            CardDevice(device_id=device.id, name=_device_name(device))
            for device in _controlled_devices(hass)
        ]
    )


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


def _loaded_entries(hass: HomeAssistant) -> list[FlexMeasuresConfigEntry]:
    """Return the loaded entries of this integration."""
    entries: list[FlexMeasuresConfigEntry] = hass.config_entries.async_entries(DOMAIN)
    return [entry for entry in entries if entry.state is ConfigEntryState.LOADED]


def _scheduler(hass: HomeAssistant, device: dr.DeviceEntry) -> DeviceScheduler | None:
    """Return the scheduler of a controlled device of a loaded entry, if any."""
    return next(
        (
            scheduler
            for entry in _loaded_entries(hass)
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


# --- Sites: controlled devices planned together under one grid connection ---


class SitePlanner(Protocol):
    """A site's scheduler, as far as the card reads it.

    The scheduling code's ``SiteScheduler``: the site's settings and the
    schedulers of the controlled devices it plans.
    """

    @property
    def config(self) -> SiteConfig:
        """Return the site's settings."""

    @property
    def devices(self) -> list[DeviceScheduler]:
        """Return the schedulers of the site's controlled devices."""

    @property
    def status(self) -> ScheduleStatus:
        """Return where the site's plan stands."""


# A site's status is the first of these any of its devices has; else idle.
# Powers on the site grid are rounded to the watt: payloads stay small.
SITE_POWER_DIGITS: Final = 3
_SITE_PRICES: HassKey[dict[str, PlanPrices]] = HassKey(f"{DOMAIN}_card_site_prices")


class CardSiteDevice(TypedDict):
    """A controlled device of a site: its planned power on the site's grid."""

    device_id: str | None
    name: str
    kind: str
    status: str
    values: list[float | None]


class CardPeak(TypedDict):
    """The summed power of largest magnitude, and the slot it starts."""

    value: float
    start: str


class CardSite(TypedDict):
    """A site's plan, as the card reads it.

    ``values`` of each device and ``total`` share the slot grid ``start``,
    ``resolution`` (seconds); powers in kW, charging positive; None where a
    device has no plan. ``capacity`` is the grid connection in kW.
    """

    device_id: str
    name: str
    status: str
    start: str | None
    end: str | None
    resolution: int | None
    unit: str
    capacity: float | None
    devices: list[CardSiteDevice]
    total: list[float | None]
    peak: CardPeak | None
    prices: CardPrices | None
    updated: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class SiteMember:
    """A controlled device of a site, as the site view reads it."""

    device_id: str | None
    name: str
    kind: str
    status: ScheduleStatus
    schedule: Schedule | None
    updated: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SiteGrid:
    """The slot grid the devices of a site are shown on.

    ``job_id`` names the plans it covers: the site's prices are cached by it.
    """

    job_id: str
    start: datetime
    resolution: timedelta
    slots: int

    @property
    def end(self) -> datetime:
        """Return the end of the last slot."""
        return self.start + self.resolution * self.slots

    def slot_starts(self) -> list[datetime]:
        """Return the start of every slot."""
        return [self.start + self.resolution * index for index in range(self.slots)]


def _plans(members: Sequence[SiteMember]) -> list[Schedule]:
    """Return the plans a site shows: those not over before the newest begins.

    A device planned alone long before it joined the site keeps that plan; it
    would stretch the grid over days nobody looks at.
    """
    plans = [m.schedule for m in members if m.schedule and m.schedule.values]
    if not plans:
        return []
    newest = max(plan.start for plan in plans)
    return [plan for plan in plans if plan.end > newest]


def site_grid(members: Sequence[SiteMember]) -> SiteGrid | None:
    """Return the common slot grid of a site's plans, None without any.

    It spans the plans at the finest resolution among them.
    """
    plans = _plans(members)
    if not plans:
        return None
    resolution = min(plan.resolution for plan in plans)
    start = min(plan.start for plan in plans)
    end = max(plan.end for plan in plans)
    return SiteGrid(
        job_id="+".join(sorted(plan.job_id for plan in plans)),
        start=start,
        resolution=resolution,
        slots=-((start - end) // resolution),
    )


def _on_grid(
    schedule: Schedule | None, grid: SiteGrid, plans: Sequence[Schedule]
) -> list[float | None]:
    """Return a plan's power at the start of each grid slot; None outside it."""
    if schedule is None or not any(schedule is plan for plan in plans):
        return [None] * grid.slots
    return [
        None
        if (power := schedule.power_at(moment)) is None
        else round(power, SITE_POWER_DIGITS)
        for moment in grid.slot_starts()
    ]


def _total(columns: Sequence[Sequence[float | None]], slots: int) -> list[float | None]:
    """Return the summed power per slot; None where no device has a plan."""
    totals: list[float | None] = []
    for index in range(slots):
        powers = [p for column in columns if (p := column[index]) is not None]
        totals.append(round(sum(powers), SITE_POWER_DIGITS) if powers else None)
    return totals


def site_view(
    device_id: str,
    name: str,
    config: SiteConfig,
    members: Sequence[SiteMember],
    prices: TimeSeries | None = None,
    *,
    status: ScheduleStatus,
) -> CardSite:
    """Shape a site's device plans into what the card reads.

    ``status`` is the site's own (its scheduler's), so the card and the site's
    plan-status entity always agree.

    Every device's plan is read at the start of each slot of the common grid
    (``site_grid``). The grid capacity is the site's connection in kVA, drawn
    as kW: at unity power factor they are the same.
    """
    grid = site_grid(members)
    plans = _plans(members)
    columns = [
        [] if grid is None else _on_grid(member.schedule, grid, plans)
        for member in members
    ]
    total = [] if grid is None else _total(columns, grid.slots)
    peak: CardPeak | None = None
    if grid is not None and (
        known := [(value, i) for i, value in enumerate(total) if value is not None]
    ):
        value, index = max(known, key=lambda item: (abs(item[0]), -item[1]))
        peak = CardPeak(
            value=value, start=(grid.start + grid.resolution * index).isoformat()
        )
    updated = [member.updated for member in members if member.updated is not None]
    return CardSite(
        device_id=device_id,
        name=name,
        status=status.value,
        start=None if grid is None else grid.start.isoformat(),
        end=None if grid is None else grid.end.isoformat(),
        resolution=None if grid is None else int(grid.resolution.total_seconds()),
        unit="kW",
        capacity=config.site_power_capacity_kva,
        devices=[
            CardSiteDevice(
                device_id=member.device_id,
                name=member.name,
                kind=member.kind,
                status=member.status.value,
                values=column,
            )
            for member, column in zip(members, columns, strict=True)
        ],
        total=total,
        peak=peak,
        prices=card_prices(prices),
        updated=max(updated).isoformat() if updated else None,
    )


def _entry_sites(entry: FlexMeasuresConfigEntry) -> Mapping[str, SitePlanner]:
    """Return the site schedulers of a loaded entry, by site subentry id."""
    return entry.runtime_data.sites


def site_subentry_id(
    entry: FlexMeasuresConfigEntry, device: dr.DeviceEntry
) -> str | None:
    """Return the site subentry a device stands for, or None for other devices."""
    subentry_id = identity.site_subentry_id(device)
    return subentry_id if subentry_id in _entry_sites(entry) else None


@dataclass(frozen=True, kw_only=True, slots=True)
class SiteRef:
    """A site the card shows: its device, entry and scheduler."""

    device: dr.DeviceEntry
    entry: FlexMeasuresConfigEntry
    subentry_id: str
    site: SitePlanner

    def member_devices(self, hass: HomeAssistant) -> list[dr.DeviceEntry | None]:
        """Return the registry entries of the site's controlled devices."""
        registry = dr.async_get(hass)
        return [
            device_by_identifier(
                registry, scheduler.device_identifier, self.entry.entry_id
            )
            for scheduler in self.site.devices
        ]


def async_get_site(hass: HomeAssistant, device_id: str) -> SiteRef | None:
    """Return the site whose device has this id, if a loaded entry has it."""
    device = dr.async_get(hass).async_get(device_id)
    # A child device (newer Home Assistant) is never a site.
    if not isinstance(device, dr.DeviceEntry):
        return None
    for entry in _loaded_entries(hass):
        if (subentry_id := site_subentry_id(entry, device)) is not None:
            return SiteRef(
                device=device,
                entry=entry,
                subentry_id=subentry_id,
                site=_entry_sites(entry)[subentry_id],
            )
    return None


async def async_sites(hass: HomeAssistant) -> list[CardDevice]:
    """Return the sites' devices, sorted by name."""
    registry = dr.async_get(hass)
    return _by_name(
        [
            CardDevice(device_id=device.id, name=_device_name(device))
            for entry in _loaded_entries(hass)
            for device in dr.async_entries_for_config_entry(registry, entry.entry_id)
            if site_subentry_id(entry, device) is not None
        ]
    )


def _site_prices(hass: HomeAssistant, ref: SiteRef) -> PlanPrices:
    """Return the site's price fetcher; a reloaded entry gets a new one."""
    cache = hass.data.setdefault(_SITE_PRICES, {})
    prices = cache.get(ref.subentry_id)
    if (
        prices is None
        or prices.entry is not ref.entry
        or prices.config is not (ref.site.config)
    ):
        prices = cache[ref.subentry_id] = PlanPrices(
            ref.entry, ref.site.config, ref.entry.runtime_data.api
        )
    return prices


async def async_site_payload(hass: HomeAssistant, ref: SiteRef) -> CardSite:
    """Return a site's plan: every device's planned power, the site's prices.

    The prices are the site's consumption prices over the grid, fetched once
    per set of plans; without them the card shows the plans alone.
    """
    members = [
        SiteMember(
            device_id=None if device is None else device.id,
            name=scheduler.config.name if device is None else _device_name(device),
            kind=scheduler.config.kind.value,
            status=scheduler.status,
            schedule=scheduler.schedule,
            updated=scheduler.last_updated,
        )
        for scheduler, device in zip(
            ref.site.devices, ref.member_devices(hass), strict=True
        )
    ]
    grid = site_grid(members)
    prices = None if grid is None else await _site_prices(hass, ref).async_get(grid)
    return site_view(
        ref.device.id,
        _device_name(ref.device),
        ref.site.config,
        members,
        prices,
        status=ref.site.status,
    )
