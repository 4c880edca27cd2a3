"""Forecast links at run time: read a source, convert it, post what is new.

One ``ForecastLinks`` per config entry runs every forecast-link subentry. A link
reads its source when the source changes (the entity of an attribute source;
any entity of an action or solar source's config entry, at most once a minute)
and every 15 minutes, converts the series to its sensor's unit and slots, and
queues the slots whose value the server does not hold yet. Queued slots and
what the server holds live in ``.storage/flexmeasures.forecasts.<entry id>``
and leave the queue only once FlexMeasures stored them (200, or a finished
ingestion job); an unreachable server backs off, a refusal raises a repair
issue and is retried hourly: ``uploader.DurableUploader``, which the
measurement uploader shares.

Each value is posted with ``prior`` = when the source published the series, so
posting a series again overwrites its rows and a newer one adds beliefs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Final

from homeassistant.config_entries import ConfigSubentry
from homeassistant.const import ATTR_UNIT_OF_MEASUREMENT
from homeassistant.core import (
    CALLBACK_TYPE,
    Event,
    EventStateChangedData,
    HomeAssistant,
    callback,
)
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.helpers.debounce import Debouncer
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import (
    async_track_state_change_event,
    async_track_time_interval,
)
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from ..aggregation import contiguous_runs
from ..api import FlexMeasuresApi
from ..const import (
    CONF_SENSOR_ID,
    CONF_SENSOR_RESOLUTION,
    CONF_SENSOR_UNIT,
    CONF_SOURCE_ATTRIBUTE,
    CONF_SOURCE_ENTITY,
    CONF_SOURCE_ENTRY,
    CONF_SOURCE_SHAPE,
    CONF_SOURCE_TYPE,
    CONF_SOURCE_UNIT,
    DOMAIN,
    LOGGER,
    SOURCE_ATTRIBUTE,
    SUBENTRY_FORECAST_LINK,
)
from ..data import FlexMeasuresConfigEntry
from ..signals import signal_forecast_link_updated, signal_forecast_posted
from ..uploader import (
    JOB_POLL_DELAYS,
    MAX_VALUES_PER_POST,
    REJECTED_RETRY,
    DurableUploader,
    IngestionJob,
)
from . import sources
from .convert import ConversionError, align, horizon_end
from .model import SourceSeries
from .shapes import Shape, UnreadableShapeError, read_series

STORAGE_VERSION: Final = 1
REFRESH: Final = timedelta(minutes=15)
SOURCE_COOLDOWN: Final = 60.0
# What the server holds is remembered this long after a slot ended; the queue
# drops slots that ended longer ago than that without reaching the server.
KEEP: Final = timedelta(days=2).total_seconds()
ISSUE_FORECAST_REJECTED: Final = "forecast_rejected"


def forecast_issue_id(subentry_id: str) -> str:
    """Return the repair issue id of a forecast link the server refuses."""
    return f"{ISSUE_FORECAST_REJECTED}_{subentry_id}"


@dataclass(frozen=True, kw_only=True, slots=True)
class ForecastLinkConfig:
    """What a forecast-link subentry says."""

    subentry_id: str
    title: str
    source_type: str
    source_entry: str | None
    source_entity: str | None
    source_attribute: str | None
    source_shape: Shape | None
    source_unit: str | None
    sensor_id: int
    sensor_unit: str
    resolution: int  # seconds; 0 is an instantaneous sensor

    @classmethod
    def from_subentry(cls, subentry: ConfigSubentry) -> ForecastLinkConfig:
        """Read a forecast-link subentry."""
        data = subentry.data
        shape = data.get(CONF_SOURCE_SHAPE)
        return cls(
            subentry_id=subentry.subentry_id,
            title=subentry.title,
            source_type=str(data[CONF_SOURCE_TYPE]),
            source_entry=data.get(CONF_SOURCE_ENTRY),
            source_entity=data.get(CONF_SOURCE_ENTITY),
            source_attribute=data.get(CONF_SOURCE_ATTRIBUTE),
            source_shape=Shape.from_text(shape) if shape else None,
            source_unit=data.get(CONF_SOURCE_UNIT) or None,
            sensor_id=int(data[CONF_SENSOR_ID]),
            sensor_unit=str(data[CONF_SENSOR_UNIT]),
            resolution=int(data[CONF_SENSOR_RESOLUTION]),
        )

    @property
    def stream(self) -> dict[str, Any]:
        """Return what must stay equal for stored slots to still fit the link."""
        return {
            "sensor_id": self.sensor_id,
            "unit": self.sensor_unit,
            "resolution": self.resolution,
        }


@dataclass(kw_only=True, slots=True)
class ForecastLink:
    """One link at run time: what the server holds, what waits, what was posted."""

    config: ForecastLinkConfig
    # Slot start -> (value, belief time) the server holds / that waits.
    held: dict[int, tuple[float, float]] = field(default_factory=dict)
    pending: dict[int, tuple[float, float]] = field(default_factory=dict)
    jobs: dict[str, IngestionJob[dict[int, tuple[float, float]]]] = field(
        default_factory=dict
    )
    last_posted: datetime | None = None
    slots_posted: int = 0
    horizon: datetime | None = None
    source_error: str | None = None
    rejected: str | None = None
    retry_at: float = 0.0
    # Slots stored since the running flush began: a series split over POSTs
    # (gaps, MAX_VALUES_PER_POST, one ingestion job each) counts whole.
    stored_in_flush: int = 0

    @classmethod
    def restore(
        cls, config: ForecastLinkConfig, stored: Mapping[str, Any] | None
    ) -> ForecastLink:
        """Continue from what was stored, if it is still the same stream."""
        link = cls(config=config)
        if not stored or stored.get("stream") != config.stream:
            return link
        link.held = _slots(stored.get("held", []))
        link.pending = _slots(stored.get("pending", []))
        link.jobs = {
            job_id: IngestionJob(_slots(job["values"]), int(job.get("checks", 0)))
            for job_id, job in stored.get("jobs", {}).items()
        }
        link.last_posted = _moment(stored.get("last_posted"))
        link.slots_posted = int(stored.get("slots_posted", 0))
        link.horizon = _moment(stored.get("horizon"))
        return link

    def as_dict(self) -> dict[str, Any]:
        """Return what to persist."""
        return {
            "stream": self.config.stream,
            "held": _rows(self.held),
            "pending": _rows(self.pending),
            "jobs": {
                job_id: {"values": _rows(job.values), "checks": job.checks}
                for job_id, job in self.jobs.items()
            },
            "last_posted": self.last_posted.isoformat() if self.last_posted else None,
            "slots_posted": self.slots_posted,
            "horizon": self.horizon.isoformat() if self.horizon else None,
        }

    def take(self, slots: Mapping[int, float], belief: float) -> int:
        """Queue the slots whose value the server does not hold; return how many."""
        queued = 0
        for slot, value in slots.items():
            if (held := self.held.get(slot)) is not None and held[0] == value:
                self.pending.pop(slot, None)
                continue
            waiting = self.pending.get(slot)
            if waiting is None or waiting[0] != value:
                self.pending[slot] = (value, belief)
                queued += 1
        return queued

    def unsent(self) -> dict[int, tuple[float, float]]:
        """Return the pending slots no running ingestion job carries."""
        in_flight = {slot for job in self.jobs.values() for slot in job.values}
        return {
            slot: item for slot, item in self.pending.items() if slot not in in_flight
        }

    def stored(self, values: Mapping[int, tuple[float, float]]) -> None:
        """Remember values the server holds; drop them from the queue.

        ``slots_posted`` counts what the server stored in the running flush.
        """
        for slot, item in values.items():
            self.held[slot] = item
            if self.pending.get(slot) == item:
                del self.pending[slot]
        self.last_posted = dt_util.utcnow()
        self.stored_in_flush += len(values)
        self.slots_posted = self.stored_in_flush
        self.horizon = horizon_end(list(self.held), self.config.resolution)

    def prune(self, now: float) -> None:
        """Forget slots that ended long ago."""
        oldest = now - KEEP - self.config.resolution
        for slots in (self.held, self.pending):
            for slot in [slot for slot in slots if slot < oldest]:
                del slots[slot]


def _slots(rows: Any) -> dict[int, tuple[float, float]]:
    """Read stored [slot, value, belief] rows."""
    return {int(slot): (float(value), float(belief)) for slot, value, belief in rows}


def _rows(slots: Mapping[int, tuple[float, float]]) -> list[list[float]]:
    """Return slots as sorted [slot, value, belief] rows."""
    return [[slot, value, belief] for slot, (value, belief) in sorted(slots.items())]


def _moment(text: Any) -> datetime | None:
    """Read a stored moment."""
    return dt_util.parse_datetime(text) if isinstance(text, str) else None


def _store(hass: HomeAssistant, entry_id: str) -> Store[dict[str, Any]]:
    """Return the store of an entry's forecast links."""
    return Store(hass, STORAGE_VERSION, f"{DOMAIN}.forecasts.{entry_id}")


async def async_remove_forecasts(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry
) -> None:
    """Delete what the forecast links of a removed entry stored."""
    await _store(hass, entry.entry_id).async_remove()


class ForecastLinks(DurableUploader[ForecastLink, dict[int, tuple[float, float]]]):
    """Runs the forecast links of one config entry."""

    pending_noun = "forecast values"

    def __init__(
        self,
        hass: HomeAssistant,
        entry: FlexMeasuresConfigEntry,
        api: FlexMeasuresApi,
    ) -> None:
        """Prepare; ``async_start`` loads the store and follows the sources."""
        super().__init__(
            hass, entry, api, path="Forecasts", store=_store(hass, entry.entry_id)
        )
        # Sensors that got a series in the running flush: one signal each.
        self._posted: set[int] = set()
        self._saved: dict[str, Any] = {}
        self._unsubs: dict[str, CALLBACK_TYPE] = {}
        self._debouncers: dict[str, Debouncer[Coroutine[Any, Any, None]]] = {}

    # Life cycle

    async def async_start(self) -> None:
        """Load the store, follow the sources and start the timers."""
        self._saved = dict((await self._store.async_load() or {}).get("links", {}))
        self.async_sync_links()
        entry = self.entry
        self._async_track(f"{DOMAIN} forecasts")
        entry.async_on_unload(
            async_track_time_interval(
                self.hass, self._async_refresh, REFRESH, name=f"{DOMAIN} forecast read"
            )
        )
        for subentry_id in self.links:
            entry.async_create_background_task(
                self.hass,
                self.async_read(subentry_id),
                f"{DOMAIN} forecast read {subentry_id}",
            )

    async def async_shutdown(self) -> None:
        """Stop following the sources and save now."""
        if self._stopped:
            return
        self._stopped = True
        for subentry_id in list(self._unsubs):
            self._unfollow(subentry_id)
        await self._store.async_save(self._data_to_save())

    async def _async_entry_updated(
        self, hass: HomeAssistant, entry: FlexMeasuresConfigEntry
    ) -> None:
        """Reload when a link was added, changed or removed (its entity changes)."""
        running = {sid: link.config for sid, link in self.links.items()}
        if running != self._configs():
            hass.config_entries.async_schedule_reload(entry.entry_id)

    def _configs(self) -> dict[str, ForecastLinkConfig]:
        """Return the entry's forecast links as they are configured now."""
        return {
            subentry.subentry_id: ForecastLinkConfig.from_subentry(subentry)
            for subentry in self.entry.subentries.values()
            if subentry.subentry_type == SUBENTRY_FORECAST_LINK
        }

    @callback
    def async_sync_links(self) -> None:
        """Start a link per subentry, continuing from what was stored."""
        configs = self._configs()
        for subentry_id in [sid for sid in self._saved if sid not in configs]:
            del self._saved[subentry_id]
            ir.async_delete_issue(self.hass, DOMAIN, forecast_issue_id(subentry_id))
        for subentry_id, config in configs.items():
            self.links[subentry_id] = ForecastLink.restore(
                config, self._saved.pop(subentry_id, None)
            )
            self._follow(config)
        self._save()

    def _follow(self, config: ForecastLinkConfig) -> None:
        """Read the link's source again when it changes."""
        subentry_id = config.subentry_id
        if config.source_type == SOURCE_ATTRIBUTE:
            entity_ids = [config.source_entity] if config.source_entity else []
        else:
            registry = er.async_get(self.hass)
            entity_ids = [
                entity.entity_id
                for entity in er.async_entries_for_config_entry(
                    registry, config.source_entry or ""
                )
            ]
        debouncer: Debouncer[Coroutine[Any, Any, None]] = Debouncer(
            self.hass,
            LOGGER,
            cooldown=0.0 if config.source_type == SOURCE_ATTRIBUTE else SOURCE_COOLDOWN,
            immediate=True,
            function=partial(self.async_read, subentry_id),
            background=True,
        )
        self._debouncers[subentry_id] = debouncer

        @callback
        def _async_source_changed(event: Event[EventStateChangedData]) -> None:
            """Read the source again (at most once a cooldown)."""
            debouncer.async_schedule_call()

        if entity_ids:
            self._unsubs[subentry_id] = async_track_state_change_event(
                self.hass, entity_ids, _async_source_changed
            )

    def _unfollow(self, subentry_id: str) -> None:
        """Stop following a link's source."""
        if unsub := self._unsubs.pop(subentry_id, None):
            unsub()
        if debouncer := self._debouncers.pop(subentry_id, None):
            debouncer.async_shutdown()

    # Reading

    async def _async_refresh(self, now: datetime) -> None:
        """Read every source: a source may publish without changing a state."""
        for subentry_id in list(self.links):
            await self.async_read(subentry_id)

    async def async_read(self, subentry_id: str) -> None:
        """Read a link's source, queue what is new, and post it."""
        link = self.links.get(subentry_id)
        if link is None or self._stopped:
            return
        config = link.config
        try:
            series = await self._async_series(config)
            slots = align(
                series,
                source_unit=config.source_unit,
                target_unit=config.sensor_unit,
                resolution=config.resolution,
            )
        except (HomeAssistantError, UnreadableShapeError, ConversionError) as err:
            reason = getattr(err, "reason", None) or str(err)
            if link.source_error != reason:
                LOGGER.warning("Cannot read the source of %s: %s", config.title, reason)
            link.source_error = reason
            self._notify(subentry_id)
            return
        link.source_error = None
        published = series.published_at or dt_util.utcnow()
        if link.take(slots, published.timestamp()):
            self._save()
            await self.async_flush()
        self._notify(subentry_id)

    async def _async_series(self, config: ForecastLinkConfig) -> SourceSeries:
        """Return the source's series now."""
        if config.source_type != SOURCE_ATTRIBUTE:
            return await sources.async_read_source(
                self.hass, config.source_type, config.source_entry or ""
            )
        state = self.hass.states.get(config.source_entity or "")
        if state is None or config.source_shape is None:
            raise UnreadableShapeError("source_missing")
        return read_series(
            state.attributes,
            config.source_attribute or "",
            config.source_shape,
            unit=state.attributes.get(ATTR_UNIT_OF_MEASUREMENT),
            published_at=state.last_updated,
        )

    # Posting

    async def _async_tick(self, now: datetime) -> None:
        """Post what waits (after an outage or a refusal) and follow jobs."""
        await self.async_flush()

    async def async_flush(self) -> None:
        """Post every link's queue, oldest belief first; follow the jobs."""
        if self._lock.locked():
            return
        async with self._lock:
            now = _now()
            if self.server_down and now < self._retry_at:
                return
            for link in self.links.values():
                link.stored_in_flush = 0
            up = await self._async_check_jobs(now, (0.0,))
            for link in list(self.links.values()):
                link.prune(now)
                if not up:
                    break
                if link.rejected and now < link.retry_at:
                    continue
                up = await self._async_send(link, now)
            if up:
                up = await self._async_check_jobs(now, JOB_POLL_DELAYS)
            if up:
                self._mark_up()
            else:
                self._mark_down(now)
            self._save()
            for sensor_id in sorted(self._posted):
                async_dispatcher_send(
                    self.hass, signal_forecast_posted(self.entry.entry_id), sensor_id
                )
            self._posted.clear()

    def _posts(
        self, link: ForecastLink
    ) -> Iterator[tuple[Awaitable[str | None], dict[int, tuple[float, float]]]]:
        """Yield a POST per run of the link's unsent slots, oldest belief first."""
        config = link.config
        by_belief: dict[float, dict[int, float]] = {}
        for slot, (value, belief) in link.unsent().items():
            by_belief.setdefault(belief, {})[slot] = value
        step = config.resolution
        for belief, slots in sorted(by_belief.items()):
            for start, values in contiguous_runs(
                slots, step, MAX_VALUES_PER_POST if step else 1
            ):
                post = self.api.async_post_sensor_data(
                    config.sensor_id,
                    start=datetime.fromtimestamp(start, UTC),
                    resolution=timedelta(seconds=step),
                    values=values,
                    unit=config.sensor_unit,
                    prior=datetime.fromtimestamp(belief, UTC),
                )
                yield (
                    post,
                    {
                        start + index * step: (value, belief)
                        for index, value in enumerate(values)
                    },
                )

    def _stored(
        self, link: ForecastLink, values: Mapping[int, tuple[float, float]]
    ) -> None:
        """Remember a stored series; tell the site and the entities."""
        link.stored(values)
        if link.rejected:
            LOGGER.info(
                "FlexMeasures accepts the forecasts of %s again", link.config.title
            )
            link.rejected = None
            ir.async_delete_issue(
                self.hass, DOMAIN, forecast_issue_id(link.config.subentry_id)
            )
        self._posted.add(link.config.sensor_id)
        self._notify(link.config.subentry_id)

    def _job_failed(self, link: ForecastLink, error: str, now: float) -> None:
        """Treat a failed ingestion job as a refusal."""
        self._reject(link, error, now)

    def _reject(self, link: ForecastLink, error: str, now: float) -> None:
        """Keep the series, raise a repair issue, retry hourly."""
        link.retry_at = now + REJECTED_RETRY
        if link.rejected == error:
            return
        link.rejected = error
        LOGGER.warning(
            "FlexMeasures refused the forecasts of %s: %s", link.config.title, error
        )
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            forecast_issue_id(link.config.subentry_id),
            is_fixable=False,
            is_persistent=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_FORECAST_REJECTED,
            translation_placeholders={
                "link": link.config.title,
                "sensor_id": str(link.config.sensor_id),
                "error": error,
            },
        )
        self._notify(link.config.subentry_id)

    # State for entities and diagnostics

    def diagnostics(self) -> dict[str, Any]:
        """Return what each link did, without its series."""
        return {
            "server_down": self.server_down,
            "links": {
                subentry_id: {
                    "source_type": link.config.source_type,
                    "sensor_id": link.config.sensor_id,
                    "sensor_unit": link.config.sensor_unit,
                    "resolution": link.config.resolution,
                    "held": len(link.held),
                    "pending": len(link.pending),
                    "jobs": len(link.jobs),
                    "last_posted": _iso(link.last_posted),
                    "slots_posted": link.slots_posted,
                    "horizon": _iso(link.horizon),
                    "source_error": link.source_error,
                    "rejected": link.rejected,
                }
                for subentry_id, link in self.links.items()
            },
        }

    @callback
    def _notify(self, subentry_id: str) -> None:
        """Tell the link's entity."""
        async_dispatcher_send(
            self.hass, signal_forecast_link_updated(self.entry.entry_id, subentry_id)
        )

    @callback
    def _data_to_save(self) -> dict[str, Any]:
        """Return every link's state."""
        return {
            "links": {
                **self._saved,
                **{sid: link.as_dict() for sid, link in self.links.items()},
            }
        }


def _iso(moment: datetime | None) -> str | None:
    """Return ISO 8601 text, or None."""
    return moment.isoformat() if moment else None


def _now() -> float:
    """Return the current time in epoch seconds."""
    return dt_util.utcnow().timestamp()
