"""Asynchronous ingestion: values leave the queue only once FlexMeasures stored them.

FlexMeasures 1.0 with a worker on its ``ingestion`` queue answers a sensor-data POST
with 202 and a job id; the job stores the values later, or fails. Without such a
worker it stores them at once (200), which the rest of the uploader tests cover.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

from aiohttp import ClientConnectionError
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from yarl import URL

from custom_components.flexmeasures import uploader as uploader_module
from custom_components.flexmeasures.const import DOMAIN
from custom_components.flexmeasures.uploader import (
    ISSUE_NOT_STORED,
    JOB_CHECKS,
    JOB_POLL_DELAYS,
    REJECTED_RETRY,
    issue_id_for,
)

from .conftest import POWER_ENTITY, FakeFlexMeasures, posted

pytestmark = pytest.mark.usefixtures("no_secrets_logged")

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KW = {"unit_of_measurement": "kW"}
POWER_PATH = "POST /api/v3_0/sensors/20/data"
SLOT = timedelta(minutes=15)
# The first slot completes at 12:15, when the link's upload is due (every 5 min).
POSTED = START + SLOT


@dataclass
class FakeIngestion:
    """Sensor-data POSTs answered 202 + job; each job walks through ``script``.

    ``script`` lists the statuses a job reports to successive look-ups; the last
    one repeats. ``stored`` collects what finished jobs stored, per slot.
    """

    server: FakeFlexMeasures
    script: list[str] = field(default_factory=lambda: ["FINISHED"])
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    stored: dict[str, list[float]] = field(default_factory=dict)
    lookups: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Take over the POST route of sensor 20."""
        self.server.handlers[POWER_PATH] = self._post

    def _post(self, method: str, url: URL, data: Any) -> tuple[int, Any]:
        """Queue an ingestion job."""
        uuid = f"11111111-0000-4000-8000-{len(self.jobs) + 1:012d}"
        self.jobs[uuid] = {"body": data, "statuses": deque(self.script)}
        self.lookups[uuid] = 0
        self.server.handlers[f"GET /api/v3_0/jobs/{uuid}"] = self._job
        return HTTPStatus.ACCEPTED, {
            "status": "ACCEPTED",
            "message": "Sensor data has been accepted for processing.",
            "job": uuid,
            "job-url": f"/api/v3_0/jobs/{uuid}",
        }

    def _job(self, method: str, url: URL, data: Any) -> tuple[int, Any]:
        """Answer a job-status look-up the way FlexMeasures 1.0.1 does."""
        uuid = url.path.rsplit("/", 1)[1]
        self.lookups[uuid] += 1
        job = self.jobs[uuid]
        statuses: deque[str] = job["statuses"]
        status = statuses.popleft() if len(statuses) > 1 else statuses[0]
        document = {"status": status, "message": f"Job is {status.lower()}."}
        if status == "FINISHED":
            body = job["body"]
            self.stored.setdefault(body["start"], []).extend(body["values"])
            return HTTPStatus.OK, {**document, "result": "success"}
        if status == "FAILED":
            return HTTPStatus.UNPROCESSABLE_ENTITY, {
                **document,
                "exc-info": "Traceback (most recent call last):\n  ...\n"
                "psycopg2.errors.QueryCanceled: statement timeout",
            }
        return HTTPStatus.ACCEPTED, document


@pytest.fixture(autouse=True)
def no_poll_delays(monkeypatch: pytest.MonkeyPatch) -> None:
    """Poll without sleeping (the number of look-ups stays the same)."""
    monkeypatch.setattr(
        uploader_module, "JOB_POLL_DELAYS", tuple(0.0 for _ in JOB_POLL_DELAYS)
    )


@pytest.fixture
def ingestion(fake_server: FakeFlexMeasures, linked_entry: MockConfigEntry) -> Any:
    """Serve sensor 20 the way a FlexMeasures 1.0 with an ingestion worker does."""
    return FakeIngestion(fake_server)


async def advance(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, until: datetime
) -> None:
    """Move the clock to ``until`` in 30-second steps, running every timer."""
    now = dt_util.utcnow()
    while now < until:
        now = min(now + timedelta(seconds=30), until)
        await hass.async_block_till_done()
        freezer.move_to(now)
        async_fire_time_changed(hass, now)
        await hass.async_block_till_done()


async def setup(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, entry: MockConfigEntry
) -> None:
    """Set the entry up at START, with the power entity at 2 kW."""
    freezer.move_to(START)
    hass.states.async_set(POWER_ENTITY, "2", KW)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


def stored_jobs(hass_storage: dict[str, Any], entry: MockConfigEntry) -> Any:
    """Return the persisted ingestion jobs of the only link."""
    data = hass_storage[f"{DOMAIN}.measurements.{entry.entry_id}"]["data"]
    (link,) = data["links"].values()
    return link["jobs"]


async def test_kept_until_the_job_finished(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    ingestion: FakeIngestion,
    linked_entry: MockConfigEntry,
) -> None:
    """A 202 keeps the values queued; they leave once the job reports FINISHED."""
    # Queued through the look-ups of the flush that posted, finished at the next.
    ingestion.script = ["QUEUED"] * len(JOB_POLL_DELAYS) + ["FINISHED"]
    await setup(hass, freezer, linked_entry)
    uploader = linked_entry.runtime_data.uploader
    await advance(hass, freezer, POSTED)

    (uuid,) = ingestion.jobs
    assert ingestion.lookups[uuid] == len(JOB_POLL_DELAYS)
    assert uploader.pending_count == 1
    assert uploader.last_upload is None
    assert next(iter(uploader.links.values())).jobs.keys() == {uuid}

    await advance(hass, freezer, POSTED + timedelta(seconds=30))
    assert ingestion.lookups[uuid] == len(JOB_POLL_DELAYS) + 1
    assert uploader.pending_count == 0
    assert uploader.last_upload == POSTED + timedelta(seconds=30)
    assert ingestion.stored == {START.isoformat(): [2.0]}
    # Never posted twice while its job ran.
    assert len(posted(ingestion.server, 20)) == 1


async def test_finished_within_the_flush(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    ingestion: FakeIngestion,
    linked_entry: MockConfigEntry,
) -> None:
    """A quick job is followed within the flush that posted: a few look-ups."""
    ingestion.script = ["QUEUED", "STARTED", "FINISHED"]
    await setup(hass, freezer, linked_entry)
    await advance(hass, freezer, START + timedelta(minutes=50))

    assert linked_entry.runtime_data.uploader.pending_count == 0
    assert sorted(ingestion.stored) == [
        (START + index * SLOT).isoformat() for index in range(3)
    ]
    assert all(count == 3 for count in ingestion.lookups.values())


async def test_failed_job_keeps_values_and_raises_issue(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    ingestion: FakeIngestion,
    linked_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    """FAILED keeps the values, raises upload_not_stored, and retries hourly."""
    ingestion.script = ["STARTED", "FAILED"]
    await setup(hass, freezer, linked_entry)
    uploader = linked_entry.runtime_data.uploader
    await advance(hass, freezer, START + timedelta(minutes=40))

    subentry_id = next(iter(linked_entry.subentries))
    issue = issue_registry.async_get_issue(
        DOMAIN, issue_id_for(subentry_id, ISSUE_NOT_STORED)
    )
    assert issue is not None
    assert issue.translation_key == "upload_not_stored"
    assert issue.is_fixable
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["error"] == (
        "psycopg2.errors.QueryCanceled: statement timeout"
    )
    assert uploader.pending_count == 2
    assert len(posted(ingestion.server, 20)) == 1
    assert not next(iter(uploader.links.values())).jobs

    # The worker recovers: the hourly retry stores everything, the issue goes.
    ingestion.script = ["FINISHED"]
    await advance(hass, freezer, START + timedelta(minutes=16, seconds=REJECTED_RETRY))
    assert uploader.pending_count == 0
    assert len(posted(ingestion.server, 20)) == 2
    assert ingestion.stored[START.isoformat()][0] == 2.0
    assert not issue_registry.issues


async def test_restart_resumes_a_pending_job(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    ingestion: FakeIngestion,
    linked_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """A job id is saved with the queue; after a restart it is asked, not re-sent."""
    ingestion.script = ["QUEUED"] * len(JOB_POLL_DELAYS) + ["FINISHED"]
    await setup(hass, freezer, linked_entry)
    await advance(hass, freezer, POSTED)
    assert await hass.config_entries.async_unload(linked_entry.entry_id)
    await hass.async_block_till_done()

    (uuid,) = ingestion.jobs
    assert stored_jobs(hass_storage, linked_entry) == {
        uuid: {"values": [[START.timestamp(), 2.0]], "checks": len(JOB_POLL_DELAYS)}
    }

    assert await hass.config_entries.async_setup(linked_entry.entry_id)
    await hass.async_block_till_done()
    await advance(hass, freezer, POSTED + timedelta(minutes=1))
    uploader = linked_entry.runtime_data.uploader
    assert ingestion.lookups[uuid] == len(JOB_POLL_DELAYS) + 1
    assert uploader.pending_count == 0
    assert len(posted(ingestion.server, 20)) == 1
    assert ingestion.stored == {START.isoformat(): [2.0]}


async def test_status_requests_are_bounded(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    ingestion: FakeIngestion,
    linked_entry: MockConfigEntry,
) -> None:
    """A job that never ends is asked JOB_CHECKS times, then its values are re-sent."""
    ingestion.script = ["QUEUED"]
    await setup(hass, freezer, linked_entry)
    uploader = linked_entry.runtime_data.uploader
    # The flush that posted asks len(JOB_POLL_DELAYS) times, each tick once more.
    ticks = JOB_CHECKS - len(JOB_POLL_DELAYS)
    await advance(hass, freezer, POSTED + timedelta(seconds=30 * ticks))

    first = next(iter(ingestion.jobs))
    assert ingestion.lookups[first] == JOB_CHECKS
    assert uploader.pending_count == 1

    # Given up in the flush where the link was due again: sent again, same slot.
    bodies = posted(ingestion.server, 20)
    assert [body["start"] for body in bodies] == [START.isoformat()] * 2
    await advance(hass, freezer, POSTED + timedelta(seconds=30 * (ticks + 2)))
    assert ingestion.lookups[first] == JOB_CHECKS
    assert next(iter(uploader.links.values())).jobs.keys() == set(ingestion.jobs) - {
        first
    }


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (HTTPStatus.NOT_FOUND, {"status": "ERROR", "message": "Job not found."}),
        (HTTPStatus.ACCEPTED, {"status": "CANCELED", "message": "Job is canceled."}),
    ],
)
async def test_lost_job_is_sent_again(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    ingestion: FakeIngestion,
    linked_entry: MockConfigEntry,
    status: int,
    body: dict[str, Any],
) -> None:
    """An unknown (expired) or canceled job never stores: its values go again."""
    ingestion.script = ["QUEUED"]
    await setup(hass, freezer, linked_entry)
    await advance(hass, freezer, POSTED)
    (uuid,) = ingestion.jobs
    ingestion.script = ["FINISHED"]
    ingestion.server.handlers.pop(f"GET /api/v3_0/jobs/{uuid}")
    ingestion.server.statuses[f"GET /api/v3_0/jobs/{uuid}"] = status
    if status != HTTPStatus.NOT_FOUND:
        ingestion.server.responses[f"GET /api/v3_0/jobs/{uuid}"] = body

    await advance(hass, freezer, START + timedelta(minutes=30))
    uploader = linked_entry.runtime_data.uploader
    assert uploader.pending_count == 0
    assert [body["start"] for body in posted(ingestion.server, 20)] == [
        START.isoformat(),
        START.isoformat(),
        (START + SLOT).isoformat(),
    ]
    assert not uploader.server_down


async def test_server_gone_while_asking(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    ingestion: FakeIngestion,
    linked_entry: MockConfigEntry,
) -> None:
    """A status look-up that cannot connect is an outage; the job is kept."""
    ingestion.script = ["QUEUED"] * len(JOB_POLL_DELAYS) + ["FINISHED"]
    await setup(hass, freezer, linked_entry)
    await advance(hass, freezer, POSTED)
    (uuid,) = ingestion.jobs
    ingestion.server.errors[f"GET /api/v3_0/jobs/{uuid}"] = ClientConnectionError()
    await advance(hass, freezer, POSTED + timedelta(seconds=30))
    uploader = linked_entry.runtime_data.uploader
    assert uploader.server_down
    assert next(iter(uploader.links.values())).jobs.keys() == {uuid}

    ingestion.server.errors.clear()
    await advance(hass, freezer, POSTED + timedelta(minutes=2))
    assert not uploader.server_down
    assert uploader.pending_count == 0
    assert len(posted(ingestion.server, 20)) == 1


async def test_stored_at_once_without_an_ingestion_worker(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
) -> None:
    """200 (no ingestion worker): stored, no status look-up."""
    await setup(hass, freezer, linked_entry)
    await advance(hass, freezer, START + timedelta(minutes=20))
    uploader = linked_entry.runtime_data.uploader
    assert uploader.pending_count == 0
    assert uploader.last_upload == POSTED
    assert not any(
        path.startswith("/api/v3_0/jobs/") for _, path, _ in fake_server.calls
    )


async def test_server_trouble_while_asking(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    ingestion: FakeIngestion,
    linked_entry: MockConfigEntry,
) -> None:
    """503 on a look-up is an outage; a refused login asks to log in again."""
    ingestion.script = ["QUEUED"] * len(JOB_POLL_DELAYS) + ["FINISHED"]
    await setup(hass, freezer, linked_entry)
    await advance(hass, freezer, POSTED)
    (uuid,) = ingestion.jobs
    path = f"GET /api/v3_0/jobs/{uuid}"
    handler = ingestion.server.handlers.pop(path)
    ingestion.server.statuses[path] = HTTPStatus.SERVICE_UNAVAILABLE
    ingestion.server.responses[path] = {"status": 503}
    await advance(hass, freezer, POSTED + timedelta(seconds=30))
    uploader = linked_entry.runtime_data.uploader
    assert uploader.server_down
    assert next(iter(uploader.links.values())).jobs.keys() == {uuid}

    ingestion.server.handlers[path] = handler
    ingestion.server.password = "changed"  # noqa: S105
    ingestion.server.unauthorized_requests = 10_000
    await advance(hass, freezer, POSTED + timedelta(minutes=2))
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == ["reauth"]
    assert next(iter(uploader.links.values())).jobs.keys() == {uuid}
    assert uploader.pending_count == 1


async def test_failed_job_without_traceback(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    ingestion: FakeIngestion,
    linked_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    """A failed job that says no more than its message: the message is the error."""
    ingestion.script = ["QUEUED"] * len(JOB_POLL_DELAYS) + ["FINISHED"]
    await setup(hass, freezer, linked_entry)
    await advance(hass, freezer, POSTED)
    (uuid,) = ingestion.jobs
    path = f"GET /api/v3_0/jobs/{uuid}"
    ingestion.server.handlers.pop(path)
    ingestion.server.statuses[path] = HTTPStatus.UNPROCESSABLE_ENTITY
    ingestion.server.responses[path] = {"status": "FAILED", "exc-info": None}
    await advance(hass, freezer, POSTED + timedelta(seconds=30))
    (issue,) = issue_registry.issues.values()
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["error"] == "the ingestion job failed"


async def test_look_ups_wait_between_rounds(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    ingestion: FakeIngestion,
    linked_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The flush that posted waits before each round of look-ups, as configured."""
    waits: list[float] = []

    pause = uploader_module._pause

    async def record(seconds: float) -> None:
        waits.append(seconds)
        await pause(0)  # the real pause, without the wait

    monkeypatch.setattr(uploader_module, "JOB_POLL_DELAYS", (0.5, 1.0, 2.0))
    monkeypatch.setattr(uploader_module, "_pause", record)
    ingestion.script = ["QUEUED", "STARTED", "FINISHED"]
    await setup(hass, freezer, linked_entry)
    await advance(hass, freezer, POSTED)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert list(ingestion.lookups.values()) == [3]
    assert waits == [0.5, 1.0, 2.0]
    assert linked_entry.runtime_data.uploader.pending_count == 0
