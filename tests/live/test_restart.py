"""A Home Assistant restart (issue 9) against the real server.

Two Home Assistant instances share one storage, one after the other, as a restart
does: the first builds a backlog of measurements while the server is unreachable,
starts a schedule and is stopped (``async_stop``: stop, final write, close) while
the job runs; the second must send the backlog exactly once, pick the job up and
show the stored plan before it has asked the server anything about it.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
import random
from types import MappingProxyType
from typing import Any
from unittest.mock import patch
from uuid import uuid4

from freezegun import freeze_time
from freezegun.api import TickingDateTimeFactory
from homeassistant import loader
from homeassistant.config_entries import (
    ConfigEntryState,
    ConfigSubentry,
    ConfigSubentryDataWithId,
)
from homeassistant.const import CONF_URL
from homeassistant.core import CoreState, HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er, frame
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_test_home_assistant,
)

from custom_components.flexmeasures.aggregation import Aggregation
from custom_components.flexmeasures.api import FlexMeasuresApi
from custom_components.flexmeasures.const import (
    DOMAIN,
    SUBENTRY_CONTROLLED_DEVICE,
    SUBENTRY_MEASUREMENT_LINK,
)
from custom_components.flexmeasures.data import FlexMeasuresConfigEntry
from custom_components.flexmeasures.scheduling import (
    DeviceScheduler,
    ScheduleRecovery,
    ScheduleStatus,
)
from tests.series import aggregate

from .conftest import LiveServer, follow_ingestion, stored_values
from .proxy import Fault, FaultProxy

LINKS = 4
OUTAGE_MINUTES = 6  # upload intervals the server is unreachable before the stop
STEP = timedelta(minutes=1)  # the meters' resolution and upload interval
KW = {"unit_of_measurement": "kW"}
SOC_ENTITY = "sensor.restart_battery_soc"
SOC_ATTRIBUTES = {"unit_of_measurement": "%", "device_class": "battery"}
PICK_UP_TIMEOUT = 60.0  # seconds; the job usually ended while HA was down
# Job-status look-ups: held by the proxy to keep a job in flight on HA's side.
JOB_LOOKUPS = r"^GET /api/v3_0/jobs/"
ENTRY_ID = "restartentry01"
BATTERY_SUBENTRY = "restartbattery01"


@pytest.fixture
def api_calls() -> Iterator[dict[str, list[Any]]]:
    """Record accepted measurement POSTs and schedule triggers of every instance."""
    calls: dict[str, list[Any]] = {"posts": [], "triggers": []}
    post, trigger = (
        FlexMeasuresApi.async_post_sensor_data,
        FlexMeasuresApi.async_trigger_schedule,
    )

    async def spy_post(
        self: FlexMeasuresApi, sensor_id: int, **kwargs: Any
    ) -> str | None:
        job = await post(self, sensor_id, **kwargs)
        calls["posts"].append((sensor_id, kwargs["start"], list(kwargs["values"])))
        return job

    async def spy_trigger(self: FlexMeasuresApi, **kwargs: Any) -> str:
        job = await trigger(self, **kwargs)
        calls["triggers"].append(job)
        return job

    with (
        patch.object(FlexMeasuresApi, "async_post_sensor_data", spy_post),
        patch.object(FlexMeasuresApi, "async_trigger_schedule", spy_trigger),
    ):
        yield calls


@asynccontextmanager
async def _home_assistant(fixture: HomeAssistant) -> AsyncIterator[HomeAssistant]:
    """Run one Home Assistant instance on the test's storage, custom code allowed."""
    async with async_test_home_assistant() as instance:
        instance.data.pop(loader.DATA_CUSTOM_COMPONENTS)
        # Usage reports go to the running instance (the helper keeps only one).
        frame.async_setup(instance)
        try:
            yield instance
        finally:
            if instance.state is not CoreState.stopped:
                await instance.async_stop(force=True)
            frame.async_setup(fixture)


async def _meter_sensors(api: FlexMeasuresApi, site_id: int) -> list[int]:
    """Return the site's 1-minute kW restart meters, created on the first run."""
    existing = {
        sensor.name: sensor.id
        for sensor in await api.async_get_sensors()
        if sensor.asset_id == site_id
    }
    ids: list[int] = []
    for index in range(LINKS):
        name = f"Restart meter {index}"
        if name not in existing:
            sensor = await api.async_add_sensor(
                asset_id=site_id, name=name, unit="kW", resolution=STEP
            )
            existing[name] = sensor.id
        ids.append(existing[name])
    return ids


def _battery(live_server: LiveServer) -> ConfigSubentryDataWithId:
    """Return the seeded battery as a controlled device."""
    return ConfigSubentryDataWithId(
        data={
            "name": "Restart battery",
            "kind": "battery",
            "power_sensor": live_server.sensors["battery_power"],
            "soc_entity": SOC_ENTITY,
            "soc_unit": "percent",
            "capacity": 10.0,
            "soc_min": 10.0,
            "soc_max": 90.0,
            "charge_power": 5.0,
            "discharge_power": 5.0,
            "roundtrip_efficiency": 90.0,
            "consumption_price_sensor": live_server.sensors["price"],
            "horizon": 12.0,
            "auto_reschedule": {},
        },
        subentry_id=BATTERY_SUBENTRY,
        subentry_type=SUBENTRY_CONTROLLED_DEVICE,
        title="Restart battery",
        unique_id=f"controlled_device_{live_server.sensors['battery_power']}",
    )


def _link(index: int, sensor_id: int) -> ConfigSubentryDataWithId:
    """Return a measurement link of meter ``index`` to its sensor."""
    return ConfigSubentryDataWithId(
        data={
            "entity_id": f"sensor.restart_meter_{index}",
            "sensor_id": sensor_id,
            "sensor_unit": "kW",
            "sensor_resolution": int(STEP.total_seconds()),
            "invert": False,
            "aggregation": Aggregation.MEAN.value,
            "upload_interval": {"hours": 0, "minutes": 1, "seconds": 0},
        },
        subentry_id=f"restartlink{index:02}",
        subentry_type=SUBENTRY_MEASUREMENT_LINK,
        title=f"Restart meter {index}",
        unique_id=f"measurement_link_{sensor_id}",
    )


def _entry(
    live_server: LiveServer, url: str, subentries: list[ConfigSubentryDataWithId]
) -> MockConfigEntry:
    """Return the entry both instances load: same id, same subentries."""
    return MockConfigEntry(
        domain=DOMAIN,
        entry_id=ENTRY_ID,
        title="Home (restart)",
        unique_id=live_server.unique_id,
        data={**live_server.entry_data(), CONF_URL: url},
        version=1,
        subentries_data=subentries,
    )


def _subentry(data: ConfigSubentryDataWithId) -> ConfigSubentry:
    """Return a subentry to add to a loaded entry."""
    return ConfigSubentry(
        data=MappingProxyType(data["data"]),
        subentry_id=data["subentry_id"],
        subentry_type=data["subentry_type"],
        title=data["title"],
        unique_id=data["unique_id"],
    )


def _device_id(hass: HomeAssistant, scheduler: DeviceScheduler) -> str:
    """Return the device registry id of a controlled device."""
    (device_id,) = (
        device.id
        for device in dr.async_entries_for_config_entry(dr.async_get(hass), ENTRY_ID)
        if scheduler.device_identifier in device.identifiers
    )
    return device_id


async def _set_up(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Set the entry up in ``hass``."""
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED, entry.reason


def _entity(hass: HomeAssistant, key: str, subentry_id: str | None = None) -> str:
    """Return the entity id of the entry's entity with translation key ``key``."""
    (entity_id,) = (
        entity.entity_id
        for entity in er.async_entries_for_config_entry(er.async_get(hass), ENTRY_ID)
        if entity.translation_key == key and entity.config_subentry_id == subentry_id
    )
    return entity_id


def _states(hass: HomeAssistant) -> dict[str, tuple[str, dict[str, Any]]]:
    """Return the state and attributes of every enabled entity of the entry."""
    result: dict[str, tuple[str, dict[str, Any]]] = {}
    for entity in er.async_entries_for_config_entry(er.async_get(hass), ENTRY_ID):
        if entity.disabled_by is not None:
            continue
        state = hass.states.get(entity.entity_id)
        assert state is not None, entity.entity_id
        result[entity.entity_id] = (state.state, dict(state.attributes))
    return result


async def _until(condition: Callable[[], bool], seconds: float) -> None:
    """Wait (in real time, at most ``seconds``) until ``condition()`` holds."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still not so after {seconds} s")


# A stopped Home Assistant leaves its interval timers behind (the process would
# exit); the entry is deliberately not unloaded first, as a real stop does not.
@pytest.mark.parametrize("expected_lingering_timers", [True])
@pytest.mark.parametrize("job_lost", [False, True], ids=["job_kept", "job_lost"])
async def test_restart_with_backlog_and_job_in_flight(
    hass: HomeAssistant,
    job_lost: bool,
    hass_storage: dict[str, Any],
    live_server: LiveServer,
    proxy: FaultProxy,
    api_calls: dict[str, list[Any]],
) -> None:
    """Nothing is lost or sent twice, the plan is restored, the job picked up.

    With ``job_lost`` the server no longer knows the job after the restart (as
    when its queue was emptied meanwhile; the shared server's own Redis is left
    alone, the stored job id is swapped for an unknown one): one new job.
    """
    loop = asyncio.get_running_loop()
    # Half an hour ago on a whole minute: measurements lie in the server's past.
    # Each case has slots of its own: a slot's value is stored under one belief
    # time (its end), and the server keeps the first value posted for it.
    begin = dt_util.utcnow().replace(second=0, microsecond=0) - timedelta(
        minutes=75 if job_lost else 30
    )
    offset = round(random.uniform(0.5, 1.5), 3)  # noqa: S311
    points: dict[str, list[tuple[float, float | None]]] = defaultdict(list)
    meters = [f"sensor.restart_meter_{index}" for index in range(LINKS)]

    def set_all(instance: HomeAssistant, minute: int) -> None:
        """Give every meter a new value now, different per meter and minute."""
        now = dt_util.utcnow().timestamp()
        for index, entity_id in enumerate(meters):
            value = round(offset + index * 0.25 + (minute * 7 + index) % 5 * 0.5, 3)
            instance.states.async_set(entity_id, str(value), KW, timestamp=now)
            points[entity_id].append((now, value))

    # A ticking clock: sleeps and timeouts work, and time can jump a minute on.
    with freeze_time(begin, tick=True) as clock:
        assert isinstance(clock, TickingDateTimeFactory)

        async def at(instance: HomeAssistant, moment: datetime) -> None:
            await instance.async_block_till_done()
            clock.move_to(moment)

        # --- Home Assistant #1: a plan, a backlog, a job in flight, a stop.
        async with _home_assistant(hass) as hass1:
            hass1.states.async_set(SOC_ENTITY, "30", SOC_ATTRIBUTES)
            entry1 = _entry(live_server, proxy.url, [_battery(live_server)])
            await _set_up(hass1, entry1)
            data1: FlexMeasuresConfigEntry = entry1
            sensor_ids = await _meter_sensors(
                data1.runtime_data.api, live_server.assets["site"]
            )
            # Meters created just now (a first run) get their entities here too.
            await data1.runtime_data.inventory.async_refresh()
            await data1.runtime_data.sensor_values.async_refresh()
            await hass1.async_block_till_done()
            links = [_link(index, sensor) for index, sensor in enumerate(sensor_ids)]
            await at(hass1, begin + timedelta(seconds=20))
            set_all(hass1, 0)
            for link in links:
                hass1.config_entries.async_add_subentry(entry1, _subentry(link))
            await hass1.async_block_till_done()
            uploader1 = data1.runtime_data.uploader
            assert len(uploader1.links) == LINKS
            scheduler1: DeviceScheduler = data1.runtime_data.schedulers[
                BATTERY_SUBENTRY
            ]

            # A plan in hand (job A), computed while the server is reachable.
            device = _device_id(hass1, scheduler1)
            await hass1.services.async_call(
                DOMAIN,
                "trigger_schedule",
                {"device_id": device, "force": True},
                blocking=True,
                return_response=True,
            )
            plan_a = scheduler1.schedule
            assert plan_a is not None
            assert scheduler1.status is ScheduleStatus.READY

            # Unreachable for OUTAGE_MINUTES upload intervals: the backlog grows.
            await proxy.down()
            for minute in range(1, OUTAGE_MINUTES + 1):
                await at(hass1, begin + minute * STEP + timedelta(seconds=20))
                set_all(hass1, minute)
                # The upload timer may be flushing already (the clock jumped).
                await uploader1.async_flush()
                await hass1.async_block_till_done()
            assert uploader1.server_down
            assert api_calls["posts"] == []
            stop_at = begin + (OUTAGE_MINUTES + 1) * STEP
            await at(hass1, stop_at)

            # Reachable again, but HA stops before the job's result is fetched.
            proxy.fail(Fault.HOLD, JOB_LOOKUPS)
            await proxy.up()
            await hass1.services.async_call(
                DOMAIN, "trigger_schedule", {"device_id": device}, blocking=True
            )
            assert scheduler1.pending_job is not None
            job_b = scheduler1.pending_job.job_id
            assert job_b != plan_a.job_id
            async with asyncio.timeout(30):
                await proxy.wait_for(Fault.HOLD)
            assert scheduler1.busy
            states1 = _states(hass1)
            power_entity = _entity(hass1, "planned_power", BATTERY_SUBENTRY)
            status_entity = _entity(hass1, "schedule_status", BATTERY_SUBENTRY)
            backlog_entity = _entity(hass1, "pending_measurements")
            assert states1[status_entity][0] == ScheduleStatus.COMPUTING

            await hass1.async_stop()
            assert hass1.state is CoreState.stopped
            # Only the running job and the open slots were left to write at stop.
            backlog = sum(
                len(link["pending"])
                for link in hass_storage[f"{DOMAIN}.measurements.{ENTRY_ID}"]["data"][
                    "links"
                ].values()
            )
            stored_plan = hass_storage[f"{DOMAIN}.schedule.{BATTERY_SUBENTRY}"]["data"]
            assert stored_plan["pending_job"]["job_id"] == job_b
            assert stored_plan["schedule"]["job_id"] == plan_a.job_id
            if job_lost:
                stored_plan["pending_job"]["job_id"] = str(uuid4())

        # The expected slots: every complete minute up to the stop, from the first
        # state on, with the time-weighted mean of the meter's states in it.
        expected = {
            entity_id: {
                datetime.fromtimestamp(slot, UTC): value
                for slot, value in aggregate(
                    Aggregation.MEAN,
                    int(STEP.total_seconds()),
                    points[entity_id],
                    stop_at.timestamp(),
                )
            }
            for entity_id in meters
        }
        assert backlog == sum(len(slots) for slots in expected.values())
        assert backlog == LINKS * (OUTAGE_MINUTES + 1)

        # --- Home Assistant #2: same storage, server reachable.
        async with _home_assistant(hass) as hass2:
            hass2.states.async_set(SOC_ENTITY, "30", SOC_ATTRIBUTES)
            for entity_id in meters:
                hass2.states.async_set(entity_id, str(points[entity_id][-1][1]), KW)
            entry2 = _entry(live_server, proxy.url, [_battery(live_server), *links])
            started = loop.time()
            await _set_up(hass2, entry2)
            data2: FlexMeasuresConfigEntry = entry2
            scheduler2 = data2.runtime_data.schedulers[BATTERY_SUBENTRY]
            uploader2 = data2.runtime_data.uploader

            # Restored from the store, before any word from the server about it.
            assert uploader2.pending_count == backlog
            assert scheduler2.busy
            assert scheduler2.recovery == "resumed"  # not narrowed: it may change
            assert scheduler2.schedule == plan_a
            states2 = _states(hass2)
            assert set(states2) == set(states1)
            assert states2[power_entity] == states1[power_entity]
            assert states2[status_entity] == (
                ScheduleStatus.COMPUTING,
                {**states1[status_entity][1], "recovery": "resumed"},
            )
            assert states2[backlog_entity][0] == str(backlog)

            # The job is picked up, not triggered again; a lost one once anew.
            released = loop.time()
            proxy.clear()
            await _until(
                lambda: scheduler2.status is ScheduleStatus.READY, PICK_UP_TIMEOUT
            )
            picked_up = loop.time()
            assert scheduler2.schedule is not None
            assert scheduler2.pending_job is None
            if job_lost:
                assert scheduler2.recovery is ScheduleRecovery.RECOMPUTED
                assert len(api_calls["triggers"]) == 3
                assert scheduler2.schedule.job_id == api_calls["triggers"][-1]
            else:
                assert scheduler2.recovery is ScheduleRecovery.RESUMED
                assert scheduler2.schedule.job_id == job_b
                assert api_calls["triggers"] == [plan_a.job_id, job_b]
            status = hass2.states.get(status_entity)
            assert status is not None
            assert status.state == ScheduleStatus.READY
            assert status.attributes["recovery"] == scheduler2.recovery

            # The backlog goes out once the first upload interval is over.
            await at(hass2, stop_at + STEP + timedelta(seconds=30))
            await uploader2.async_flush()
            await hass2.async_block_till_done()
            assert not uploader2.server_down
            assert uploader2.pending_count == 0

            sent: dict[int, Counter[datetime]] = defaultdict(Counter)
            values: dict[int, dict[datetime, float]] = defaultdict(dict)
            for sensor_id, start, batch in api_calls["posts"]:
                for index, value in enumerate(batch):
                    sent[sensor_id][start + index * STEP] += 1
                    values[sensor_id][start + index * STEP] = value
            # With an ingestion worker, stored once their jobs finished.
            await follow_ingestion(data2)
            api = data2.runtime_data.api
            for link in links:
                entity_id, sensor_id = (
                    link["data"]["entity_id"],
                    link["data"]["sensor_id"],
                )
                wanted = expected[entity_id]
                assert set(wanted) <= set(sent[sensor_id]), entity_id
                assert set(sent[sensor_id].values()) == {1}, entity_id
                assert {slot: values[sensor_id][slot] for slot in wanted} == (
                    pytest.approx(wanted)
                ), entity_id
                stored = await stored_values(api, sensor_id, min(wanted), stop_at, STEP)
                assert stored == pytest.approx(wanted), entity_id
            await hass2.async_stop()

    # Figures for the report (pytest -s); timing is never asserted.
    print(  # noqa: T201
        f"restart: backlog {backlog} values ({LINKS} links x {OUTAGE_MINUTES + 1} "
        f"slots), all read back; second set-up {released - started:.2f} s; "
        f"{'lost job recomputed' if job_lost else 'job picked up'} "
        f"{picked_up - released:.2f} s after its look-ups passed"
    )
