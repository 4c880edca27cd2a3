"""Sites: the battery and the EV charger planned together in one asset-level job."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp import ClientConnectionError
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.flexmeasures.const import (
    CONFIG_ENTRY_MINOR_VERSION,
    DOMAIN,
    EVENT_SCHEDULE_UPDATED,
)
from custom_components.flexmeasures.identity import (
    controlled_device_identifier,
    site_identifier,
)
from custom_components.flexmeasures.scheduling import (
    AUTO_DEBOUNCE,
    AUTO_MIN_INTERVAL,
    STORE_DELAY,
    ScheduleStatus,
    SiteScheduler,
)
from custom_components.flexmeasures.signals import signal_forecast_posted

from .conftest import (
    BATTERY_SENSOR_ID,
    BATTERY_SUBENTRY_ID,
    ENTRY_DATA,
    EV_SENSOR_ID,
    EV_SUBENTRY_ID,
    INFLEXIBLE_SENSOR_ID,
    PRICE_SENSOR_ID,
    SERVER_URL,
    SITE_ASSET_ID,
    SITE_SUBENTRY_ID,
    UNIQUE_ID,
    FakeScheduling,
    FakeSiteScheduling,
    entity_snapshot,
    find_device,
    job_id,
    load_fixture,
    setup_entry,
    site_subentry,
)
from .scheduling_helpers import NOW, START, advance

pytestmark = pytest.mark.usefixtures("fast_polling")

# What the real server planned for the site (tests/fixtures/recorded), as the
# response rounds it.
BATTERY_PLAN = [
    round(value, 4)
    for value in load_fixture("recorded/site_schedule_battery.json")["body"]["values"]
]
EV_PLAN = [
    round(value, 4)
    for value in load_fixture("recorded/site_schedule_ev_charger.json")["body"][
        "values"
    ]
]


@pytest.fixture(autouse=True)
def _frozen_now(freezer: FrozenDateTimeFactory) -> None:
    """Start every test at NOW, before the integration is set up."""
    freezer.move_to(NOW)


def _site(entry: MockConfigEntry) -> SiteScheduler:
    """Return the site's scheduler."""
    site: SiteScheduler = entry.runtime_data.sites[SITE_SUBENTRY_ID]
    return site


def _device_id(hass: HomeAssistant, entry: MockConfigEntry, identifier: Any) -> str:
    """Return the device registry id of a device of the entry."""
    device = find_device(hass, entry.entry_id, identifier)
    assert device is not None
    return device.id


def _ids(hass: HomeAssistant, entry: MockConfigEntry) -> tuple[str, str, str]:
    """Return the device ids of the site, the battery and the EV charger."""
    return (
        _device_id(hass, entry, site_identifier(SITE_SUBENTRY_ID)),
        _device_id(hass, entry, controlled_device_identifier(BATTERY_SUBENTRY_ID)),
        _device_id(hass, entry, controlled_device_identifier(EV_SUBENTRY_ID)),
    )


def _state(hass: HomeAssistant, entity_id: str) -> str:
    """Return an entity's state."""
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


async def _call(
    hass: HomeAssistant,
    service: str,
    device_id: str,
    *,
    response: bool = True,
    **data: Any,
) -> Any:
    """Call an action of the integration for a device or site."""
    return await hass.services.async_call(
        DOMAIN,
        service,
        {"device_id": device_id, **data},
        blocking=True,
        return_response=response,
    )


async def _unload_while_computing(
    hass: HomeAssistant, fake_site: FakeSiteScheduling, entry: MockConfigEntry
) -> None:
    """Ask the site for a plan, then unload the entry while its job runs."""
    site_id, _, _ = _ids(hass, entry)
    fake_site.hold = True
    await _call(hass, "trigger_schedule", site_id, response=False)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_site_plan_reaches_each_device(
    hass: HomeAssistant,
    fake_site: FakeSiteScheduling,
    init_site: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """One asset-level job; each device's plan drives its own entities and event."""
    site_id, battery_id, ev_id = _ids(hass, init_site)
    events: list[Event] = []
    hass.bus.async_listen(EVENT_SCHEDULE_UPDATED, events.append)
    target = {"datetime": "2026-11-20T18:00:00+00:00", "value": 40}
    response = await _call(
        hass,
        "trigger_schedule",
        site_id,
        duration="12:00:00",
        devices=[{"device_id": ev_id, "soc_targets": [target]}],
    )
    await hass.async_block_till_done()

    (sent,) = fake_site.triggers
    trigger = f"POST /api/v3_0/assets/{SITE_ASSET_ID}/schedules/trigger"
    assert fake_site.server.count(trigger) == 1
    battery_model, ev_model = sent["flex-model"]
    assert battery_model["sensor"] == BATTERY_SENSOR_ID
    assert battery_model["soc-at-start"] == "5 kWh"
    assert ev_model["sensor"] == EV_SENSOR_ID
    assert ev_model["soc-at-start"] == "12 kWh"
    assert ev_model["production-capacity"] == "0 kW"
    assert ev_model["soc-targets"] == [
        {"datetime": "2026-11-20T18:00:00+00:00", "value": "40 kWh"}
    ]
    assert sent["flex-context"] == {
        "consumption-price": {"sensor": PRICE_SENSOR_ID},
        "site-power-capacity": "10 kVA",
        "inflexible-device-sensors": [INFLEXIBLE_SENSOR_ID],
    }
    assert sent["start"] == START.isoformat()
    assert dt_util.parse_duration(sent["duration"]) == timedelta(hours=12)

    assert response is not None
    assert response["status"] == "ready"
    assert set(response["devices"]) == {battery_id, ev_id}
    assert response["devices"][battery_id]["values"] == BATTERY_PLAN
    assert response["devices"][ev_id]["values"] == EV_PLAN
    assert response["devices"][ev_id]["soc_unit"] == "kWh"

    assert _state(hass, "sensor.home_battery_planned_power") == str(BATTERY_PLAN[0])
    assert _state(hass, "sensor.ev_charger_planned_power") == str(EV_PLAN[0])
    assert _state(hass, "sensor.home_battery_schedule_status") == "ready"
    assert _state(hass, "sensor.ev_charger_schedule_status") == "ready"
    peak = max(b + e for b, e in zip(BATTERY_PLAN, EV_PLAN, strict=True))
    assert float(_state(hass, "sensor.home_site_planned_peak_power")) == peak
    assert peak <= 10.0
    assert {event.data["name"] for event in events} == {"Home battery", "EV charger"}
    site_entities = {
        entity_id: item
        for entity_id, item in entity_snapshot(hass, init_site.entry_id).items()
        if item["device"] == "Home site"
    }
    assert site_entities == snapshot


async def test_statuses_while_computing_and_device_rounds_queue(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    fake_site: FakeSiteScheduling,
    init_site: MockConfigEntry,
) -> None:
    """While the site's job runs each device computes; its own round waits."""
    site_id, battery_id, _ = _ids(hass, init_site)
    fake_site.hold = True
    assert await _call(hass, "trigger_schedule", site_id, response=False) is None
    site = _site(init_site)
    assert site.busy
    assert _state(hass, "sensor.home_site_plan_status") == "computing"
    assert _state(hass, "sensor.home_battery_schedule_status") == "computing"
    assert _state(hass, "sensor.ev_charger_schedule_status") == "computing"

    # The battery's own round queues behind the site's job, no second job.
    assert await _call(hass, "trigger_schedule", battery_id, response=False) is None
    assert fake_scheduling.triggers == []
    # A second site round is refused while the first runs.
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "trigger_schedule", site_id, response=False)
    assert err.value.translation_key == "site_busy"

    fake_site.hold = False
    await hass.async_block_till_done(wait_background_tasks=True)
    assert not _site(init_site).busy
    # Then the battery's queued round ran on its own.
    assert len(fake_scheduling.triggers) == 1
    assert _state(hass, "sensor.home_battery_schedule_status") == "ready"
    assert _state(hass, "sensor.ev_charger_schedule_status") == "ready"
    assert _state(hass, "sensor.home_site_plan_status") == "ready"


async def test_site_refused_while_a_device_plans_on_its_own(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    fake_site: FakeSiteScheduling,
    init_site: MockConfigEntry,
) -> None:
    """A site round is refused, naming the device, while a device's job runs."""
    site_id, battery_id, _ = _ids(hass, init_site)
    fake_scheduling.hold = True
    await _call(hass, "trigger_schedule", battery_id, response=False)
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "trigger_schedule", site_id, response=False)
    assert err.value.translation_key == "site_device_busy"
    assert err.value.translation_placeholders == {
        "site": "Home site",
        "devices": "Home battery",
    }
    assert fake_site.triggers == []
    fake_scheduling.hold = False
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_site_failure_reaches_each_device(
    hass: HomeAssistant,
    fake_site: FakeSiteScheduling,
    init_site: MockConfigEntry,
) -> None:
    """A failed site job fails each device's status with its reason."""
    site_id, _, _ = _ids(hass, init_site)
    fake_site.final_status = "FAILED"
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "trigger_schedule", site_id)
    assert err.value.translation_key == "schedule_job_failed"
    await hass.async_block_till_done()
    for entity_id in (
        "sensor.home_battery_schedule_status",
        "sensor.ev_charger_schedule_status",
        "sensor.home_site_plan_status",
    ):
        state = hass.states.get(entity_id)
        assert state is not None
        assert state.state == "failed"
        assert state.attributes["failure_reason"] == "job_failed"
    site = _site(init_site)
    assert site.failure_message == "Scheduling job failed: no prices"
    assert all(device.status is ScheduleStatus.FAILED for device in site.devices)
    assert site.pending_job is None


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"soc_at_start": 40}, "site_field_not_allowed"),
        ({"soc_targets": []}, "site_field_not_allowed"),
        ({"flex_context": {}}, "site_field_not_allowed"),
    ],
)
async def test_site_refuses_single_device_fields(
    hass: HomeAssistant,
    fake_site: FakeSiteScheduling,
    init_site: MockConfigEntry,
    data: dict[str, Any],
    key: str,
) -> None:
    """What only one device has is refused for a site, naming the field."""
    site_id, _, _ = _ids(hass, init_site)
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "trigger_schedule", site_id, **data)
    assert err.value.translation_key == key
    placeholders = err.value.translation_placeholders or {}
    assert placeholders["fields"] == next(iter(data))
    assert fake_site.triggers == []


async def test_devices_field_refused_for_one_device(
    hass: HomeAssistant,
    fake_site: FakeSiteScheduling,
    init_site: MockConfigEntry,
) -> None:
    """``devices`` is for a site; a single device refuses it."""
    _, battery_id, ev_id = _ids(hass, init_site)
    with pytest.raises(ServiceValidationError) as err:
        await _call(
            hass, "trigger_schedule", battery_id, devices=[{"device_id": ev_id}]
        )
    assert err.value.translation_key == "devices_only_for_site"


async def test_device_of_another_site_refused(
    hass: HomeAssistant,
    fake_site: FakeSiteScheduling,
    init_site: MockConfigEntry,
) -> None:
    """A device under ``devices`` must belong to the site."""
    site_id, _, ev_id = _ids(hass, init_site)
    site = _site(init_site)
    site._devices.pop()
    with pytest.raises(ServiceValidationError) as err:
        await _call(hass, "trigger_schedule", site_id, devices=[{"device_id": ev_id}])
    assert err.value.translation_key == "device_not_in_site"
    assert err.value.translation_placeholders == {
        "device": "EV charger",
        "site": "Home site",
    }


async def test_per_device_soc_at_start(
    hass: HomeAssistant,
    fake_site: FakeSiteScheduling,
    init_site: MockConfigEntry,
) -> None:
    """A device's SoC at start is its own, in its unit."""
    site_id, battery_id, _ = _ids(hass, init_site)
    await _call(
        hass,
        "trigger_schedule",
        site_id,
        devices=[{"device_id": battery_id, "soc_at_start": 80}],
    )
    battery_model = fake_site.triggers[0]["flex-model"][0]
    assert battery_model["soc-at-start"] == "8 kWh"


async def test_get_schedule_of_a_site(
    hass: HomeAssistant,
    fake_site: FakeSiteScheduling,
    init_site: MockConfigEntry,
) -> None:
    """get_schedule on a site answers each device's plan, keyed by device."""
    site_id, battery_id, ev_id = _ids(hass, init_site)
    before = await _call(hass, "get_schedule", site_id)
    assert before == {
        "status": "idle",
        "failure_reason": None,
        "devices": {
            battery_id: {"status": "idle", "failure_reason": None},
            ev_id: {"status": "idle", "failure_reason": None},
        },
    }
    await _call(hass, "trigger_schedule", site_id)
    after = await _call(hass, "get_schedule", site_id)
    assert after is not None
    devices: dict[str, Any] = after["devices"]
    assert devices[battery_id]["values"] == BATTERY_PLAN
    assert devices[ev_id]["values"] == EV_PLAN


async def test_replan_when_prices_arrive(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_site: FakeSiteScheduling,
    init_site: MockConfigEntry,
) -> None:
    """New prices on the site's price sensor replan it, merged and rate limited."""
    signal = signal_forecast_posted(init_site.entry_id)
    async_dispatcher_send(hass, signal, INFLEXIBLE_SENSOR_ID)
    async_dispatcher_send(hass, signal, PRICE_SENSOR_ID)
    async_dispatcher_send(hass, signal, PRICE_SENSOR_ID)
    await hass.async_block_till_done()
    assert fake_site.triggers == []
    await advance(hass, freezer, timedelta(seconds=AUTO_DEBOUNCE + 1))
    assert len(fake_site.triggers) == 1
    assert _state(hass, "sensor.home_site_plan_status") == "ready"

    # Within the rate limit: deferred until it has passed.
    async_dispatcher_send(hass, signal, PRICE_SENSOR_ID)
    await advance(hass, freezer, timedelta(seconds=AUTO_DEBOUNCE + 1))
    assert len(fake_site.triggers) == 1
    await advance(hass, freezer, AUTO_MIN_INTERVAL)
    assert len(fake_site.triggers) == 2


async def test_replan_while_busy_runs_once_done(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_site: FakeSiteScheduling,
    init_site: MockConfigEntry,
) -> None:
    """New prices while the site computes replan once its job is done."""
    site_id, _, ev_id = _ids(hass, init_site)
    fake_site.hold = True
    target = {"datetime": "2026-11-20T18:00:00+00:00", "value": 40}
    await _call(
        hass,
        "trigger_schedule",
        site_id,
        response=False,
        devices=[{"device_id": ev_id, "soc_targets": [target]}],
    )
    async_dispatcher_send(hass, signal_forecast_posted(init_site.entry_id), 30)
    await advance(hass, freezer, timedelta(seconds=AUTO_DEBOUNCE + 1), background=False)
    assert len(fake_site.triggers) == 1
    fake_site.hold = False
    await hass.async_block_till_done(wait_background_tasks=True)
    await advance(hass, freezer, timedelta(seconds=AUTO_DEBOUNCE + 1))
    assert len(fake_site.triggers) == 2
    # The replan keeps the EV charger's target still ahead.
    ev_model = fake_site.triggers[1]["flex-model"][1]
    assert ev_model["soc-targets"] == [
        {"datetime": "2026-11-20T18:00:00+00:00", "value": "40 kWh"}
    ]


async def test_replan_without_soc_fails_the_site(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_site: FakeSiteScheduling,
    init_site: MockConfigEntry,
) -> None:
    """A replan that cannot read a device's SoC fails the site, asks nothing."""
    hass.states.async_set("sensor.ev_energy", "unavailable")
    async_dispatcher_send(hass, signal_forecast_posted(init_site.entry_id), 30)
    await advance(hass, freezer, timedelta(seconds=AUTO_DEBOUNCE + 1))
    assert fake_site.triggers == []
    state = hass.states.get("sensor.home_site_plan_status")
    assert state is not None
    assert state.state == "failed"
    assert state.attributes["failure_reason"] == "soc_unavailable"


async def test_site_job_survives_a_restart(
    hass: HomeAssistant,
    fake_site: FakeSiteScheduling,
    init_site: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """A site job in flight at unload is picked up again, not asked for anew."""
    await _unload_while_computing(hass, fake_site, init_site)
    stored = hass_storage[f"{DOMAIN}.site.{SITE_SUBENTRY_ID}"]["data"]
    assert stored["pending_job"]["job_id"] == "00000000-0000-4000-8000-000000005001"
    assert set(stored["pending_job"]["requests"]) == {
        BATTERY_SUBENTRY_ID,
        EV_SUBENTRY_ID,
    }

    fake_site.hold = False
    assert await hass.config_entries.async_setup(init_site.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(fake_site.triggers) == 1
    site = _site(init_site)
    assert site.recovery is not None
    assert site.recovery.value == "resumed"
    assert all(device.schedule is not None for device in site.devices)
    assert _state(hass, "sensor.home_battery_schedule_status") == "ready"
    state = hass.states.get("sensor.home_site_plan_status")
    assert state is not None
    assert state.attributes["recovery"] == "resumed"


async def test_failed_site_job_planned_anew_after_a_restart(
    hass: HomeAssistant,
    fake_site: FakeSiteScheduling,
    init_site: MockConfigEntry,
) -> None:
    """A site job that failed while HA was down is planned anew from now."""
    await _unload_while_computing(hass, fake_site, init_site)

    fake_site.hold = False
    # The stored job failed on the server; the new one finishes.
    fake_site.failed_jobs.add(job_id(5001))
    assert await hass.config_entries.async_setup(init_site.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(fake_site.triggers) == 2
    site = _site(init_site)
    assert site.recovery is not None
    assert site.recovery.value == "recomputed"
    assert _state(hass, "sensor.ev_charger_schedule_status") == "ready"


async def test_site_without_devices_is_not_set_up(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    fake_site: FakeSiteScheduling,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A site whose devices are gone is skipped, with a warning."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"Home ({SERVER_URL})",
        unique_id=UNIQUE_ID,
        data=dict(ENTRY_DATA),
        version=1,
        minor_version=CONFIG_ENTRY_MINOR_VERSION,
        subentries_data=[site_subentry(devices=["gone01", "gone02"])],
    )
    await setup_entry(hass, entry)
    assert entry.runtime_data.sites == {}
    assert "no longer exist" in caplog.text


async def test_removing_the_site_reloads_and_deletes_its_store(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_site: FakeSiteScheduling,
    init_site: MockConfigEntry,
    hass_storage: dict[str, Any],
) -> None:
    """A removed site's store is deleted and the entry reloads without it."""
    site_id, _, _ = _ids(hass, init_site)
    await _call(hass, "trigger_schedule", site_id)
    await advance(hass, freezer, timedelta(seconds=STORE_DELAY + 1), background=False)
    assert f"{DOMAIN}.site.{SITE_SUBENTRY_ID}" in hass_storage
    hass.config_entries.async_remove_subentry(init_site, SITE_SUBENTRY_ID)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert f"{DOMAIN}.site.{SITE_SUBENTRY_ID}" not in hass_storage
    assert init_site.runtime_data.sites == {}


async def test_site_trigger_not_reaching_the_server(
    hass: HomeAssistant,
    fake_site: FakeSiteScheduling,
    init_site: MockConfigEntry,
) -> None:
    """A trigger that does not reach the server fails each device, translated."""
    site_id, _, _ = _ids(hass, init_site)
    trigger = f"POST /api/v3_0/assets/{SITE_ASSET_ID}/schedules/trigger"
    fake_site.server.errors[trigger] = ClientConnectionError("refused")
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "trigger_schedule", site_id)
    assert err.value.translation_key == "communication_error"
    await hass.async_block_till_done()
    for device in _site(init_site).devices:
        assert device.status is ScheduleStatus.FAILED
        assert device.failure_reason is not None
        assert device.failure_reason.value == "communication_error"


@pytest.mark.parametrize(
    ("triggered_at", "devices", "logged"),
    [
        pytest.param(
            NOW.isoformat(), ["another01"], "its devices changed", id="other_devices"
        ),
        pytest.param(
            "not a moment",
            [EV_SUBENTRY_ID],
            "unreadable stored job of site Home site",
            id="unreadable",
        ),
    ],
)
async def test_stored_job_not_resumed(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    fake_site: FakeSiteScheduling,
    site_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    triggered_at: str,
    devices: list[str],
    logged: str,
) -> None:
    """A stored site job for other devices, or unreadable, is dropped."""
    hass_storage[f"{DOMAIN}.site.{SITE_SUBENTRY_ID}"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.site.{SITE_SUBENTRY_ID}",
        "data": {
            "last_updated": None,
            "job_seconds_per_slot": 0.05,
            "job_spread_per_slot": None,
            "pending_job": {
                "job_id": job_id(5001),
                "triggered_at": triggered_at,
                "requests": {
                    subentry_id: _request()
                    for subentry_id in [*devices, BATTERY_SUBENTRY_ID]
                },
            },
        },
    }
    hass.states.async_set("sensor.home_battery_soc", "50")
    hass.states.async_set("sensor.ev_energy", "12")
    await setup_entry(hass, site_entry)
    site = _site(site_entry)
    assert site.pending_job is None
    assert site.waiter.seconds_per_slot == 0.05
    assert fake_site.triggers == []
    assert logged in caplog.text


def _request() -> dict[str, Any]:
    """Return a stored request of a device (kWh, kW)."""
    return {
        "start": START.isoformat(),
        "duration": 43200.0,
        "soc_at_start": 5.0,
        "soc_min": 1.0,
        "soc_max": 9.0,
        "targets": [],
        "charge_power": 5.0,
        "discharge_power": 5.0,
    }


async def test_missed_target_goes_to_its_device(
    hass: HomeAssistant,
    fake_site: FakeSiteScheduling,
    init_site: MockConfigEntry,
) -> None:
    """The site job's missed target is the battery's: its asset says so."""
    site_id, battery_id, ev_id = _ids(hass, init_site)
    at = datetime.fromisoformat("2026-11-20T11:00:00+00:00")
    fake_site.unmet_at = at
    target = {"datetime": at.isoformat(), "value": 90}
    response = await _call(
        hass,
        "trigger_schedule",
        site_id,
        devices=[
            {"device_id": battery_id, "soc_targets": [target]},
            {"device_id": ev_id, "soc_targets": [{**target, "value": 40}]},
        ],
    )
    assert response is not None
    battery_unmet = response["devices"][battery_id]["unmet_targets"]
    assert [item["datetime"] for item in battery_unmet] == [at.isoformat()]
    assert battery_unmet[0]["target"] == 90
    assert response["devices"][ev_id]["unmet_targets"] == []


async def test_old_site_job_without_soc_fails_after_a_restart(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_site: FakeSiteScheduling,
    init_site: MockConfigEntry,
) -> None:
    """A site job too old to trust is planned anew; without a SoC that fails."""
    await _unload_while_computing(hass, fake_site, init_site)

    freezer.tick(timedelta(hours=2))
    hass.states.async_set("sensor.ev_energy", "unavailable")
    assert await hass.config_entries.async_setup(init_site.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert len(fake_site.triggers) == 1
    site = _site(init_site)
    assert site.recovery is not None
    assert site.recovery.value == "recomputed"
    assert site.failure_reason is not None
    assert site.failure_reason.value == "soc_unavailable"
    assert _state(hass, "sensor.ev_charger_schedule_status") == "failed"
