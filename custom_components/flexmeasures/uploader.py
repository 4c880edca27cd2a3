"""Send the states of linked entities to FlexMeasures, durably and in batches.

Each measurement link (a config subentry) maps one Home Assistant entity to one
FlexMeasures sensor. State changes are aggregated to the sensor's resolution as
they arrive (see ``aggregation``); complete slots wait in a ``Store`` until
FlexMeasures has stored them, so restarts, reloads and outages lose nothing.

A POST answered 200 is stored. A POST answered 202 names an ingestion job that
stores the values later (FlexMeasures 1.0 with a worker on its ``ingestion``
queue); the values stay queued, with the job id, until the job finished. A failed
job keeps them and raises a repair issue. Every value carries a belief time fixed
by its slot (see ``api.async_post_sensor_data``), so sending a slot again, after a
timeout the server did process or for a job that was lost, overwrites one row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import asyncio
from collections.abc import (
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
    Set as AbstractSet,
    Sized,
)
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from http import HTTPStatus
from typing import Any, Final, Protocol

from homeassistant.components.recorder import history
from homeassistant.config_entries import ConfigSubentry
from homeassistant.const import (
    ATTR_UNIT_OF_MEASUREMENT,
    EVENT_HOMEASSISTANT_STOP,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
)
from homeassistant.core import (
    CALLBACK_TYPE,
    Event,
    EventStateChangedData,
    HomeAssistant,
    State,
    callback,
)
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import (
    async_track_state_change_event,
    async_track_time_interval,
)
from homeassistant.helpers.recorder import get_instance
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .aggregation import (
    Aggregation,
    Aggregator,
    IncompatibleUnitsError,
    Slot,
    contiguous_runs,
    create_aggregator,
    parse_number,
    unit_converter,
)
from .api import (
    FlexMeasuresApi,
    FlexMeasuresError,
    FlexMeasuresHttpStatusError,
    FlexMeasuresRejectedError,
)
from .availability import ServerAvailability
from .const import (
    CONF_AGGREGATION,
    CONF_INVERT,
    CONF_SENSOR_ID,
    CONF_SENSOR_RESOLUTION,
    CONF_SENSOR_UNIT,
    CONF_UPLOAD_INTERVAL,
    DEFAULT_UPLOAD_INTERVAL,
    DOMAIN,
    LOGGER,
    SUBENTRY_MEASUREMENT_LINK,
)
from .data import ErrorKind, FlexMeasuresConfigEntry, error_kind
from .signals import signal_uploader_updated
from .util import selector_seconds

STORAGE_VERSION: Final = 1
SAVE_DELAY: Final = 5.0
TICK: Final = timedelta(seconds=30)
RETRY_MIN: Final = 30.0
RETRY_MAX: Final = 30 * 60.0
REJECTED_RETRY: Final = 60 * 60.0
MAX_VALUES_PER_POST: Final = 1000
HISTORY_CHUNK: Final = timedelta(days=1)
HISTORY_OVERLAP: Final = timedelta(milliseconds=1)
ISSUE_REJECTED: Final = "upload_rejected"
ISSUE_NOT_STORED: Final = "upload_not_stored"
# Status requests for the ingestion jobs of one flush's POSTs: after each delay
# (seconds), one request per job still running. A job that runs longer is asked
# about once per tick (30 s), JOB_CHECKS times in all (about ten minutes); then
# its values are sent again (harmless: the same slots overwrite the same rows)
# instead of waiting for ever.
JOB_POLL_DELAYS: Final[tuple[float, ...]] = (0.5, 1.0, 2.0, 4.0)
JOB_CHECKS: Final = 24
JOB_RUNNING: Final = frozenset({"QUEUED", "STARTED", "DEFERRED", "SCHEDULED"})

GAP_STATES: Final = frozenset({STATE_UNKNOWN, STATE_UNAVAILABLE})


class JobOutcome(StrEnum):
    """How an ingestion job did, as far as its values are concerned."""

    STORED = "stored"
    FAILED = "failed"
    RUNNING = "running"
    # Unknown (expired, lost with the server's Redis), canceled or stopped: the
    # values must be sent again.
    LOST = "lost"


async def async_ingestion_outcome(
    api: FlexMeasuresApi, job_id: str
) -> tuple[JobOutcome, str]:
    """Ask once how an ingestion job did: the outcome, and its status or error.

    Raises FlexMeasuresError when the server cannot say (it is down).
    """
    try:
        document = await api.async_get_job_status(job_id)
    except FlexMeasuresHttpStatusError as err:
        if err.status != HTTPStatus.NOT_FOUND:
            raise
        return JobOutcome.LOST, "unknown"
    status = str(document.get("status", "")).upper()
    if status == "FINISHED":
        return JobOutcome.STORED, status
    if status == "FAILED":
        return JobOutcome.FAILED, _job_error(document)
    if status in JOB_RUNNING:
        return JobOutcome.RUNNING, status
    return JobOutcome.LOST, status


def issue_id_for(subentry_id: str, kind: str = ISSUE_REJECTED) -> str:
    """Return the repair issue id for a link the server rejects or did not store."""
    return f"{kind}_{subentry_id}"


@dataclass(slots=True)
class IngestionJob[ValuesT]:
    """Values FlexMeasures accepted (202) and an ingestion job is storing."""

    values: ValuesT
    checks: int = 0


class QueuedLink(Protocol):
    """A link as ``DurableUploader`` sees it: its queue and its ingestion jobs."""

    @property
    def pending(self) -> Sized:
        """Return the values that wait until FlexMeasures stored them."""

    @property
    def jobs(self) -> dict[str, IngestionJob[Any]]:
        """Return the ingestion jobs storing some of them, by job id."""


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkConfig:
    """What a measurement link subentry says."""

    subentry_id: str
    title: str
    entity_id: str
    sensor_id: int
    sensor_unit: str
    resolution: int  # seconds; 0 is an instantaneous sensor
    invert: bool
    aggregation: Aggregation
    upload_interval: int  # seconds

    @classmethod
    def from_subentry(cls, subentry: ConfigSubentry) -> LinkConfig:
        """Read a measurement link subentry."""
        data = subentry.data
        interval = data.get(CONF_UPLOAD_INTERVAL)
        return cls(
            subentry_id=subentry.subentry_id,
            title=subentry.title,
            entity_id=data["entity_id"],
            sensor_id=int(data[CONF_SENSOR_ID]),
            sensor_unit=str(data[CONF_SENSOR_UNIT]),
            resolution=int(data[CONF_SENSOR_RESOLUTION]),
            invert=bool(data.get(CONF_INVERT, False)),
            aggregation=Aggregation(data[CONF_AGGREGATION]),
            upload_interval=int(
                selector_seconds(interval)
                if interval
                else DEFAULT_UPLOAD_INTERVAL.total_seconds()
            ),
        )

    @property
    def instantaneous(self) -> bool:
        """Return whether the sensor records instants rather than intervals."""
        return self.resolution == 0

    @property
    def step(self) -> int:
        """Return the slot length: the resolution, or the interval for instants."""
        return self.resolution or self.upload_interval

    @property
    def kind(self) -> Aggregation:
        """Return the aggregation; an instantaneous sensor gets the last value."""
        return Aggregation.LAST if self.instantaneous else self.aggregation


class Link:
    """One link at run time: its aggregator and the slots waiting to be sent."""

    __slots__ = (
        "_convert",
        "_entity_unit",
        "aggregator",
        "config",
        "jobs",
        "next_due",
        "pending",
        "rejected",
        "retry_at",
    )

    def __init__(
        self, config: LinkConfig, stored: Mapping[str, Any] | None, now: float
    ) -> None:
        """Continue from what was stored for this link, if it still fits."""
        self.config = config
        stored = stored or {}
        # The open slot continues only if it is the same stream, in the same unit.
        same_stream = all(
            stored.get(key) == value
            for key, value in (
                ("entity_id", config.entity_id),
                ("sensor_id", config.sensor_id),
                ("unit", config.sensor_unit),
            )
        )
        self.aggregator: Aggregator = create_aggregator(
            config.kind, config.step, stored.get("aggregator") if same_stream else None
        )
        self.pending = _restore_pending(config, stored)
        # Ingestion jobs still storing some of the pending values, by job id.
        self.jobs: dict[str, IngestionJob[list[tuple[int, float]]]] = (
            {
                job_id: IngestionJob(
                    [(int(slot), float(value)) for slot, value in job["values"]],
                    int(job.get("checks", 0)),
                )
                for job_id, job in stored.get("jobs", {}).items()
            }
            if self.pending
            else {}
        )
        self.next_due = now + config.upload_interval
        self.retry_at = 0.0
        self.rejected: str | None = None
        self._entity_unit: str | None = None
        self._convert: Callable[[float], float | None] | None = None

    def value_of(self, state: State | None) -> float | None:
        """Return the state as a number in the sensor's unit, or None for a gap."""
        if state is None or state.state in GAP_STATES:
            return None
        value = parse_number(state.state)
        if value is None:
            return None
        unit = state.attributes.get(ATTR_UNIT_OF_MEASUREMENT)
        if unit != self._entity_unit or self._convert is None:
            self._entity_unit = unit
            try:
                self._convert = unit_converter(unit, self.config.sensor_unit)
            except IncompatibleUnitsError:
                LOGGER.warning(
                    "%s reports %s, which cannot be converted to %s; ignoring it",
                    self.config.entity_id,
                    unit,
                    self.config.sensor_unit,
                )
                self._convert = _gap
        return self._convert(value)

    def take(self, slots: list[Slot]) -> None:
        """Queue completed slots (already in the sensor's unit)."""
        sign = -1.0 if self.config.invert else 1.0
        offset = self.config.step if self.config.instantaneous else 0
        for start, value in slots:
            self.pending[start + offset] = sign * value + 0.0

    def unsent(self) -> dict[int, float]:
        """Return the pending slots no running ingestion job carries."""
        in_flight = {slot for job in self.jobs.values() for slot, _ in job.values}
        return {
            slot: value for slot, value in self.pending.items() if slot not in in_flight
        }

    def stored(self, values: Sequence[tuple[int, float]]) -> None:
        """Drop the slots FlexMeasures stored, unless a newer value replaced one."""
        for slot, value in values:
            if self.pending.get(slot) == value:
                del self.pending[slot]

    def as_dict(self) -> dict[str, Any]:
        """Return what to persist for this link."""
        return {
            "entity_id": self.config.entity_id,
            "sensor_id": self.config.sensor_id,
            "step": self.config.step,
            "unit": self.config.sensor_unit,
            "pending": [[slot, value] for slot, value in sorted(self.pending.items())],
            "jobs": {
                job_id: {
                    "values": [list(item) for item in job.values],
                    "checks": job.checks,
                }
                for job_id, job in self.jobs.items()
            },
            "aggregator": self.aggregator.as_dict(),
        }


def _gap(value: float) -> float | None:
    """Turn any value into a gap (for an entity in an unusable unit)."""
    return None


def _restore_pending(config: LinkConfig, stored: Mapping[str, Any]) -> dict[int, float]:
    """Return the stored queue of a link, in its sensor's current unit."""
    pending = {int(slot): float(value) for slot, value in stored.get("pending", [])}
    if not pending:
        return pending
    try:
        convert = unit_converter(stored.get("unit"), config.sensor_unit)
    except IncompatibleUnitsError:
        convert = None
    if convert is None or stored.get("step") != config.step:
        LOGGER.warning(
            "Dropping %s values of %s that no longer fit its sensor",
            len(pending),
            config.title,
        )
        return {}
    return {slot: convert(value) for slot, value in pending.items()}


def _measurement_store(hass: HomeAssistant, entry_id: str) -> Store[dict[str, Any]]:
    """Return the store of an entry's pending measurements."""
    return Store(hass, STORAGE_VERSION, f"{DOMAIN}.measurements.{entry_id}")


async def async_remove_measurements(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry
) -> None:
    """Delete the pending measurements of a removed entry."""
    await _measurement_store(hass, entry.entry_id).async_remove()


class DurableUploader[LinkT: QueuedLink, ValuesT](ABC):
    """Posts queued values of one config entry's links; forgets them once stored.

    The measurement uploader and the forecast links share this: a value leaves
    its link's queue only once FlexMeasures stored it (200, or a finished
    ingestion job); a refusal keeps it and raises a repair issue; an unreachable
    server backs off, said once; the queue is saved soon after every change and
    at once when Home Assistant stops.
    """

    # What waits, in the log line of an outage ("keeping 3 measurements ...").
    pending_noun: str

    def __init__(
        self,
        hass: HomeAssistant,
        entry: FlexMeasuresConfigEntry,
        api: FlexMeasuresApi,
        *,
        path: str,
        store: Store[dict[str, Any]],
    ) -> None:
        """Prepare for the links of ``entry``; ``path`` names them in the log."""
        self.hass = hass
        self.entry = entry
        self.api = api
        self.links: dict[str, LinkT] = {}
        self._availability = ServerAvailability(LOGGER, path, api.url)
        self._failures = 0
        self._retry_at = 0.0
        self._last_error = ""
        self._store = store
        self._lock = asyncio.Lock()
        self._unsub_stop: CALLBACK_TYPE | None = None
        self._stopped = False

    # Life cycle

    def _async_track(self, tick_name: str) -> None:
        """Flush every tick, follow the entry's changes, save when HA stops."""
        entry = self.entry
        entry.async_on_unload(
            async_track_time_interval(self.hass, self._async_tick, TICK, name=tick_name)
        )
        entry.async_on_unload(entry.add_update_listener(self._async_entry_updated))
        self._unsub_stop = self.hass.bus.async_listen_once(
            EVENT_HOMEASSISTANT_STOP, self._async_on_stop
        )
        entry.async_on_unload(self._async_remove_stop_listener)

    @abstractmethod
    async def _async_tick(self, now: datetime) -> None:
        """Send what is due."""

    @abstractmethod
    async def _async_entry_updated(
        self, hass: HomeAssistant, entry: FlexMeasuresConfigEntry
    ) -> None:
        """Follow the entry's added, changed and removed links."""

    @abstractmethod
    async def async_shutdown(self) -> None:
        """Stop following, and save now."""

    async def _async_on_stop(self, event: Event) -> None:
        """Save everything when Home Assistant stops."""
        self._unsub_stop = None
        await self.async_shutdown()

    @callback
    def _async_remove_stop_listener(self) -> None:
        """Stop waiting for Home Assistant to stop (a listener fired is gone)."""
        if self._unsub_stop:
            self._unsub_stop()
            self._unsub_stop = None

    # Sending

    @abstractmethod
    def _posts(self, link: LinkT) -> Iterator[tuple[Awaitable[str | None], ValuesT]]:
        """Yield a POST of the link's unsent values, and the values it carries."""

    @abstractmethod
    def _stored(self, link: LinkT, values: ValuesT) -> None:
        """Drop values FlexMeasures stored from the link's queue."""

    @abstractmethod
    def _reject(self, link: LinkT, error: str, now: float) -> None:
        """Keep the values of a refused POST, say so, retry later."""

    @abstractmethod
    def _job_failed(self, link: LinkT, error: str, now: float) -> None:
        """Keep the values of a failed ingestion job, say so, retry later."""

    async def _async_send(self, link: LinkT, now: float) -> bool:
        """Post a link's unsent values in order; return False if the server is down."""
        for post, sent in self._posts(link):
            try:
                job_id = await post
            except FlexMeasuresRejectedError as err:
                self._reject(link, str(err), now)
                return True
            except FlexMeasuresError as err:
                return self._server_failed(err)
            if job_id is None:
                self._stored(link, sent)
            else:
                link.jobs[job_id] = IngestionJob(sent)
        return True

    async def _async_check_jobs(
        self,
        now: float,
        delays: Sequence[float],
        skip: AbstractSet[str] = frozenset(),
    ) -> bool:
        """Ask how the ingestion jobs (but ``skip``) did; False if the server is down.

        After each delay, one status request per job still running; a job asked
        about JOB_CHECKS times is given up (its values are sent again later).
        """
        for delay in delays:
            running = [link for link in self.links.values() if set(link.jobs) - skip]
            if not running:
                break
            if delay:
                await _pause(delay)
            for link in running:
                if not await self._async_check_link_jobs(link, now, skip):
                    return False
        return True

    async def _async_check_link_jobs(
        self, link: LinkT, now: float, skip: AbstractSet[str]
    ) -> bool:
        """Ask once about each running job of a link; False if the server is down."""
        for job_id, job in list(link.jobs.items()):
            if job_id in skip:
                continue
            try:
                outcome, error = await async_ingestion_outcome(self.api, job_id)
            except FlexMeasuresError as err:
                return self._server_failed(err)
            job.checks += 1
            if outcome is JobOutcome.STORED:
                del link.jobs[job_id]
                self._stored(link, job.values)
            elif outcome is JobOutcome.FAILED:
                del link.jobs[job_id]
                self._job_failed(link, error, now)
            elif outcome is JobOutcome.LOST or job.checks >= JOB_CHECKS:
                # Lost, canceled, stopped, or running too long: send them again.
                LOGGER.debug("Ingestion job %s is %s; resending", job_id, error)
                del link.jobs[job_id]
        return True

    # Reaching the server

    def _server_failed(self, err: FlexMeasuresError) -> bool:
        """Note why the server failed us (a refused login asks to log in); False."""
        self._last_error = str(err)
        if error_kind(err) is ErrorKind.AUTHENTICATION:
            self.entry.async_start_reauth(self.hass)
        return False

    @property
    def server_down(self) -> bool:
        """Return whether the last attempt to reach the server failed."""
        return self._availability.down

    def _mark_down(self, now: float) -> None:
        """Back off; say once that the server is down."""
        self._failures += 1
        delay = min(RETRY_MIN * 2 ** (self._failures - 1), RETRY_MAX)
        self._retry_at = now + delay
        self._availability.mark_down(
            f"keeping {self.pending_count} {self.pending_noun} until it is back: "
            f"{self._last_error}"
        )

    def _mark_up(self) -> None:
        """Say once that the server is back."""
        self._failures = 0
        self._availability.mark_up()

    # State

    @property
    def pending_count(self) -> int:
        """Return how many values wait to be sent."""
        return sum(len(link.pending) for link in self.links.values())

    @abstractmethod
    def _data_to_save(self) -> dict[str, Any]:
        """Return what to persist."""

    @callback
    def _save(self) -> None:
        """Save soon."""
        self._store.async_delay_save(self._data_to_save, SAVE_DELAY)


class MeasurementUploader(DurableUploader[Link, list[tuple[int, float]]]):
    """Collects the linked entities' states and posts them for one config entry."""

    pending_noun = "measurements"

    def __init__(
        self, hass: HomeAssistant, entry: FlexMeasuresConfigEntry, api: FlexMeasuresApi
    ) -> None:
        """Prepare the uploader; ``async_start`` loads the queue and listens."""
        super().__init__(
            hass,
            entry,
            api,
            path="Uploads",
            store=_measurement_store(hass, entry.entry_id),
        )
        self.last_upload: datetime | None = None
        self.history_progress: float | None = None
        self._by_entity: dict[str, list[Link]] = {}
        self._stored_links: dict[str, Any] = {}
        self._unsub_state: CALLBACK_TYPE | None = None

    # Life cycle

    async def async_start(self) -> None:
        """Load the queue, follow the linked entities and start the upload timer."""
        stored = await self._store.async_load() or {}
        self._stored_links = dict(stored.get("links", {}))
        if last := stored.get("last_upload"):
            self.last_upload = dt_util.parse_datetime(last)
        self.async_sync_links()
        self._async_track(f"{DOMAIN} uploader")

    async def async_shutdown(self) -> None:
        """Close the open stretch of every link as a gap and save the queue now."""
        if self._stopped:
            return
        self._stopped = True
        if self._unsub_state:
            self._unsub_state()
            self._unsub_state = None
        now = _now()
        for link in self.links.values():
            link.take(link.aggregator.update(now, None))
        await self._store.async_save(self._data_to_save())

    async def _async_entry_updated(
        self, hass: HomeAssistant, entry: FlexMeasuresConfigEntry
    ) -> None:
        """Pick up added, changed and removed links."""
        self.async_sync_links()

    @callback
    def async_sync_links(self) -> None:
        """Make the running links match the entry's measurement link subentries."""
        now = _now()
        configs = {
            subentry.subentry_id: LinkConfig.from_subentry(subentry)
            for subentry in self.entry.subentries.values()
            if subentry.subentry_type == SUBENTRY_MEASUREMENT_LINK
        }
        for subentry_id in list(self.links):
            link = self.links[subentry_id]
            if configs.get(subentry_id) != link.config:
                # Removed or changed: keep what still fits, clear a rejection.
                self.links.pop(subentry_id)
                link.take(link.aggregator.update(now, None))
                self._stored_links[subentry_id] = link.as_dict()
                for kind in (ISSUE_REJECTED, ISSUE_NOT_STORED):
                    ir.async_delete_issue(
                        self.hass, DOMAIN, issue_id_for(subentry_id, kind)
                    )
        for subentry_id in list(self._stored_links):
            if subentry_id not in configs:
                self._stored_links.pop(subentry_id)
        for subentry_id, config in configs.items():
            if subentry_id in self.links:
                continue
            link = Link(config, self._stored_links.pop(subentry_id, None), now)
            self.links[subentry_id] = link
            link.take(
                link.aggregator.update(
                    now, link.value_of(self.hass.states.get(config.entity_id))
                )
            )
        self._by_entity = {}
        for link in self.links.values():
            self._by_entity.setdefault(link.config.entity_id, []).append(link)
        if self._unsub_state:
            self._unsub_state()
            self._unsub_state = None
        if self._by_entity:
            self._unsub_state = async_track_state_change_event(
                self.hass, list(self._by_entity), self._async_state_changed
            )
        self._save()
        self._notify()

    # Collecting

    @callback
    def _async_state_changed(self, event: Event[EventStateChangedData]) -> None:
        """Feed a state change to the links of its entity."""
        new_state = event.data["new_state"]
        time = (
            new_state.last_updated_timestamp
            if new_state is not None
            else event.time_fired_timestamp
        )
        for link in self._by_entity.get(event.data["entity_id"], ()):
            if slots := link.aggregator.update(time, link.value_of(new_state)):
                link.take(slots)
                self._save()

    # Sending

    async def _async_tick(self, now: datetime) -> None:
        """Send what is due; let the diagnostic entities catch up."""
        await self.async_flush()
        self._notify()

    async def async_flush(self, *, force: str | None = None) -> None:
        """Post the complete slots of every due link (or of ``force`` right away)."""
        if self._lock.locked():
            return
        async with self._lock:
            now = _now()
            for link in self.links.values():
                link.take(link.aggregator.advance(now))
            if self.server_down and now < self._retry_at and force is None:
                self._save()
                return
            due = [
                link
                for link in self.links.values()
                if link.config.subentry_id == force
                or (
                    now >= link.next_due and (not link.rejected or now >= link.retry_at)
                )
            ]
            # Jobs from earlier flushes first: once each, so a stored slot is not
            # sent again; then the jobs of this flush's POSTs, a few times.
            up = await self._async_check_jobs(now, (0.0,))
            earlier = {job for link in self.links.values() for job in link.jobs}
            for link in sorted(due, key=_oldest_pending) if up else ():
                if not await self._async_send(link, now):
                    up = False
                    break
                link.next_due = now + link.config.upload_interval
            if up:
                up = await self._async_check_jobs(now, JOB_POLL_DELAYS, earlier)
            if up:
                self._mark_up()
            else:
                self._mark_down(now)
            self._save()
            self._notify()

    def _posts(
        self, link: Link
    ) -> Iterator[tuple[Awaitable[str | None], list[tuple[int, float]]]]:
        """Yield a POST per run of the link's unsent slots, oldest first."""
        config = link.config
        runs = list(
            contiguous_runs(
                link.unsent(),
                config.step,
                1 if config.instantaneous else MAX_VALUES_PER_POST,
            )
        )
        resolution = timedelta(seconds=config.resolution)
        for start, values in runs:
            post = self.api.async_post_sensor_data(
                config.sensor_id,
                start=datetime.fromtimestamp(start, UTC),
                resolution=resolution,
                values=values,
                unit=config.sensor_unit,
            )
            yield (
                post,
                [
                    (start + index * config.step, value)
                    for index, value in enumerate(values)
                ],
            )

    def _stored(self, link: Link, values: list[tuple[int, float]]) -> None:
        """FlexMeasures stored these values: drop them, clear a rejection."""
        link.stored(values)
        self.last_upload = dt_util.utcnow()
        if link.rejected:
            LOGGER.info(
                "FlexMeasures accepts the measurements of %s again", link.config.title
            )
            link.rejected = None
            for kind in (ISSUE_REJECTED, ISSUE_NOT_STORED):
                ir.async_delete_issue(
                    self.hass, DOMAIN, issue_id_for(link.config.subentry_id, kind)
                )

    def _job_failed(self, link: Link, error: str, now: float) -> None:
        """Keep the values of a failed ingestion job, tell the user, retry hourly."""
        self._reject(link, error, now, kind=ISSUE_NOT_STORED)

    def _reject(
        self, link: Link, error: str, now: float, *, kind: str = ISSUE_REJECTED
    ) -> None:
        """Keep the link's data and ask the user to fix the link or discard it."""
        link.retry_at = now + REJECTED_RETRY
        if link.rejected == error:
            return
        link.rejected = error
        LOGGER.warning(
            "FlexMeasures %s the measurements of %s: %s",
            "refused" if kind == ISSUE_REJECTED else "did not store",
            link.config.title,
            error,
        )
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            issue_id_for(link.config.subentry_id, kind),
            is_fixable=True,
            is_persistent=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=kind,
            translation_placeholders={
                "link": link.config.title,
                "sensor_id": str(link.config.sensor_id),
                "error": error,
            },
            data={
                "entry_id": self.entry.entry_id,
                "subentry_id": link.config.subentry_id,
            },
        )

    @callback
    def async_discard(self, subentry_id: str) -> int:
        """Throw away a link's pending slots (the user's choice); return how many."""
        link = self.links.get(subentry_id)
        if link is None:
            return 0
        count = len(link.pending)
        link.pending.clear()
        link.jobs.clear()
        link.rejected = None
        link.retry_at = 0.0
        for kind in (ISSUE_REJECTED, ISSUE_NOT_STORED):
            ir.async_delete_issue(self.hass, DOMAIN, issue_id_for(subentry_id, kind))
        self._save()
        self._notify()
        return count

    # History

    async def async_upload_history(
        self, subentry_id: str, start: datetime, end: datetime
    ) -> int:
        """Queue the recorder's history of a link for ``[start, end)``; return slots."""
        link = self.links[subentry_id]
        config = link.config
        aggregator = create_aggregator(config.kind, config.step)
        first, last = start.timestamp(), end.timestamp()
        chunk_start = start
        queued: list[Slot] = []
        self.history_progress = 0.0
        self._notify()
        try:
            while chunk_start < end:
                chunk_end = min(chunk_start + HISTORY_CHUNK, end)
                # The recorder's bounds are exclusive; overlap so no change at a
                # chunk boundary is missed (a repeated state changes nothing).
                states = await get_instance(self.hass).async_add_executor_job(
                    history.state_changes_during_period,
                    self.hass,
                    chunk_start - HISTORY_OVERLAP,
                    chunk_end,
                    config.entity_id,
                )
                for state in states.get(config.entity_id, []):
                    queued.extend(
                        aggregator.update(
                            state.last_updated_timestamp, link.value_of(state)
                        )
                    )
                chunk_start = chunk_end
                self.history_progress = round(
                    100 * (chunk_start.timestamp() - first) / (last - first), 1
                )
                self._notify()
            queued.extend(aggregator.advance(last))
            slots = [
                slot
                for slot in queued
                if first <= slot[0] and slot[0] + config.step <= last
            ]
            link.take(slots)
            self._save()
        finally:
            self.history_progress = None
            self._notify()
        await self.async_flush(force=subentry_id)
        return len(slots)

    # State for entities and diagnostics

    @callback
    def _notify(self) -> None:
        """Tell the entities the queue or the last upload changed."""
        async_dispatcher_send(self.hass, signal_uploader_updated(self.entry.entry_id))

    @callback
    def _data_to_save(self) -> dict[str, Any]:
        """Return the queue and the links' partial slots."""
        return {
            "links": {
                **self._stored_links,
                **{sid: link.as_dict() for sid, link in self.links.items()},
            },
            "last_upload": self.last_upload.isoformat() if self.last_upload else None,
        }


async def _pause(seconds: float) -> None:
    """Wait between rounds of job look-ups."""
    await asyncio.sleep(seconds)


def _job_error(document: Mapping[str, Any]) -> str:
    """Return why an ingestion job failed, in one line."""
    info = document.get("exc-info") or document.get("exc_info")
    if isinstance(info, str) and info.strip():
        return info.strip().splitlines()[-1]
    return str(document.get("message") or "the ingestion job failed")


def _oldest_pending(link: Link) -> int:
    """Sort key: the link with the oldest waiting slot goes first."""
    return min(link.pending, default=2**62)


def _now() -> float:
    """Return the current time in epoch seconds."""
    return dt_util.utcnow().timestamp()
