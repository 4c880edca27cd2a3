"""What of a device's or site's planning survives a restart, and when it is written."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.storage import Store

from ..const import DOMAIN, LOGGER
from ..util import optional_float
from .model import PendingJob, Schedule, SitePendingJob

STORAGE_VERSION: Final = 1
# 1.2 adds the job in flight ("pending_job"), so a restart can pick it up.
STORAGE_MINOR_VERSION: Final = 2
STORE_DELAY: Final = 1.0


class ScheduleStore(Store[dict[str, Any]]):
    """A controlled device's stored schedule, migrated from older versions."""

    def __init__(self, hass: HomeAssistant, subentry_id: str) -> None:
        """Open the store of one controlled device."""
        super().__init__(
            hass,
            STORAGE_VERSION,
            f"{DOMAIN}.schedule.{subentry_id}",
            minor_version=STORAGE_MINOR_VERSION,
        )

    async def _async_migrate_func(
        self,
        old_major_version: int,
        old_minor_version: int,
        old_data: dict[str, Any],
    ) -> dict[str, Any]:
        """Bring a store from an older version to the current shape."""
        if old_major_version != STORAGE_VERSION:
            raise NotImplementedError
        data = dict(old_data)
        if old_minor_version < 2:
            data.setdefault("pending_job", None)
        return data


class Stored(Protocol):
    """What a planner keeps across restarts: it has a stored form."""

    def as_dict(self) -> dict[str, Any]:
        """Return the stored form."""


@dataclass(kw_only=True)
class StoredJobs[J: Stored]:
    """What every planner keeps: its last plan's time, job durations, job in flight.

    A device (``StoredPlan``) and a site (``StoredSite``) alike.
    """

    last_updated: datetime | None = None
    job_seconds_per_slot: float | None = None
    job_spread_per_slot: float | None = None
    pending_job: J | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the stored form."""
        return {
            "last_updated": self.last_updated.isoformat()
            if self.last_updated
            else None,
            "job_seconds_per_slot": self.job_seconds_per_slot,
            "job_spread_per_slot": self.job_spread_per_slot,
            "pending_job": self.pending_job.as_dict() if self.pending_job else None,
        }

    def read_jobs(self, data: Mapping[str, Any]) -> None:
        """Read the last plan's time and the job durations; raise if unreadable."""
        if data.get("last_updated"):
            self.last_updated = datetime.fromisoformat(data["last_updated"])
        self.job_seconds_per_slot = optional_float(data.get("job_seconds_per_slot"))
        self.job_spread_per_slot = optional_float(data.get("job_spread_per_slot"))


@dataclass(kw_only=True)
class StoredPlan(StoredJobs[PendingJob]):
    """What of a device survives a restart: its plan and what all planners keep."""

    schedule: Schedule | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the stored form."""
        return {
            "schedule": self.schedule.as_dict() if self.schedule else None,
            **super().as_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str) -> StoredPlan:
        """Read the stored form; an unreadable plan or job is logged and dropped."""
        plan = cls()
        try:
            if data.get("schedule"):
                plan.schedule = Schedule.from_dict(data["schedule"])
            plan.read_jobs(data)
        except (KeyError, TypeError, ValueError):
            LOGGER.warning("Ignoring an unreadable stored schedule for %s", name)
            plan.schedule = None
        if pending := data.get("pending_job"):
            try:
                plan.pending_job = PendingJob.from_dict(pending)
            except (KeyError, TypeError, ValueError):
                LOGGER.warning("Ignoring an unreadable job in flight of %s", name)
        return plan


class SiteStore(Store[dict[str, Any]]):
    """A site's stored job in flight and learned job durations."""

    def __init__(self, hass: HomeAssistant, subentry_id: str) -> None:
        """Open the store of one site."""
        super().__init__(hass, STORAGE_VERSION, f"{DOMAIN}.site.{subentry_id}")


@dataclass(kw_only=True)
class StoredSite(StoredJobs[SitePendingJob]):
    """What of a site survives a restart: what every planner keeps."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str) -> StoredSite:
        """Read the stored form; an unreadable part is logged and dropped."""
        site = cls()
        try:
            site.read_jobs(data)
            if pending := data.get("pending_job"):
                site.pending_job = SitePendingJob.from_dict(pending)
        except (KeyError, TypeError, ValueError):
            LOGGER.warning("Ignoring an unreadable stored job of site %s", name)
            site.pending_job = None
        return site


class PlanKeeper[T: Stored]:
    """Keeps a planner's state across restarts: delayed writes, flushed at unload.

    A device keeps its plan (``StoredPlan`` in a ``ScheduleStore``); a site
    keeps its job in flight and learned job durations the same way.
    """

    def __init__(
        self,
        store: Store[dict[str, Any]],
        name: str,
        snapshot: Callable[[], T],
        read: Callable[[Mapping[str, Any], str], T],
    ) -> None:
        """Use ``store``; ``snapshot`` says what to write, ``read`` reads it back."""
        self._store = store
        self._name = name
        self._snapshot = snapshot
        self._read = read
        self._unsaved = False

    async def async_load(self) -> T | None:
        """Return what was stored, or None if nothing was stored."""
        data = await self._store.async_load()
        if not data:
            return None
        return self._read(data, self._name)

    @callback
    def async_save(self, delay: float) -> None:
        """Write after ``delay`` s; Home Assistant's final write flushes."""
        self._unsaved = True
        self._store.async_delay_save(self._as_dict, delay)

    async def async_flush(self) -> None:
        """Write a plan whose delayed save is still pending."""
        if self._unsaved:
            await self._store.async_save(self._as_dict())

    async def async_remove(self) -> None:
        """Delete what was stored (the device or site was removed)."""
        self._unsaved = False
        await self._store.async_remove()

    def _as_dict(self) -> dict[str, Any]:
        """Return what is written now."""
        self._unsaved = False
        return self._snapshot().as_dict()
