"""Tests for the dashboard card's site commands: the sites and a site's feed.

The site scheduler is built elsewhere; here a stand-in with its ``config`` and
``devices`` (the entry's real device schedulers) is the entry's ``sites``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigSubentryDataWithId
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser
from pytest_homeassistant_custom_component.typing import WebSocketGenerator
from syrupy.assertion import SnapshotAssertion
from yarl import URL

from custom_components.flexmeasures import card_data
from custom_components.flexmeasures.compat import device_by_identifier
from custom_components.flexmeasures.const import DOMAIN, SUBENTRY_SITE
from custom_components.flexmeasures.data import (
    FlexMeasuresConfigEntry,
    FlexMeasuresData,
)
from custom_components.flexmeasures.scheduling import (
    DeviceScheduler,
    Schedule,
    ScheduleStatus,
)
from custom_components.flexmeasures.scheduling.model import SiteConfig

from .conftest import (
    BATTERY_DATA,
    BATTERY_SUBENTRY_ID,
    FakeFlexMeasures,
    battery_device,
)

CAR_SUBENTRY_ID = "car01subentry"
SITE_SUBENTRY_ID = "site01subentry"
CAR_SOC = "sensor.car_soc"
NOW = datetime(2026, 11, 20, 10, 22, tzinfo=UTC)
SLOT = datetime(2026, 11, 20, 10, 15, tzinfo=UTC)


@dataclass
class FakeSite:
    """Stands in for the scheduling code's SiteScheduler: settings and devices."""

    config: SiteConfig
    devices: list[DeviceScheduler] = field(default_factory=list)


SITE_CONFIG = SiteConfig(
    name="Home",
    asset_id=10,
    device_subentry_ids=(BATTERY_SUBENTRY_ID, CAR_SUBENTRY_ID),
    site_power_capacity_kva=11.0,
    consumption_price_sensor=30,
    production_price_sensor=None,
)


@pytest.fixture
def site_entry(
    battery_entry: MockConfigEntry, battery_subentry: ConfigSubentryDataWithId
) -> MockConfigEntry:
    """Return the battery's entry with an EV charger and a site planning both."""
    car = ConfigSubentryDataWithId(
        data={
            **BATTERY_DATA,
            "name": "Car charger",
            "kind": "ev_charger",
            "power_sensor": 22,
            "soc_entity": CAR_SOC,
            "soc_unit": "kwh",
            "capacity": 60.0,
            "soc_min": 0.0,
            "soc_max": 60.0,
            "charge_power": 7.4,
            "discharge_power": 0.0,
        },
        subentry_id=CAR_SUBENTRY_ID,
        subentry_type="controlled_device",
        title="Car charger",
        unique_id="controlled_device_22",
    )
    site = ConfigSubentryDataWithId(
        data={"asset_id": 10},
        subentry_id=SITE_SUBENTRY_ID,
        subentry_type=SUBENTRY_SITE,
        title="Home",
        unique_id="site_10",
    )
    return MockConfigEntry(
        domain=DOMAIN,
        title=battery_entry.title,
        unique_id=battery_entry.unique_id,
        data=dict(battery_entry.data),
        version=battery_entry.version,
        minor_version=battery_entry.minor_version,
        subentries_data=[battery_subentry, car, site],
    )


def _sites(data: FlexMeasuresData) -> dict[str, FakeSite]:
    """Return the entry's sites: one planning its device schedulers."""
    devices = [data.schedulers[BATTERY_SUBENTRY_ID], data.schedulers[CAR_SUBENTRY_ID]]
    return {SITE_SUBENTRY_ID: FakeSite(SITE_CONFIG, devices)}


@pytest.fixture
def with_sites() -> Generator[None]:
    """Give every loaded entry its ``sites``, as the scheduling code will."""
    with patch.object(FlexMeasuresData, "sites", property(_sites), create=True):
        yield


@pytest.fixture(autouse=True)
def frozen_now(freezer: FrozenDateTimeFactory) -> None:
    """Freeze the clock at NOW, before any token or entry exists."""
    freezer.move_to(NOW)


@pytest.fixture
async def init_site(
    hass: HomeAssistant,
    with_sites: None,
    fake_scheduling: Any,
    site_entry: MockConfigEntry,
) -> dr.DeviceEntry:
    """Set up the site's entry; return the site's device."""
    hass.states.async_set("sensor.home_battery_soc", "50", {"unit_of_measurement": "%"})
    hass.states.async_set(CAR_SOC, "20", {"unit_of_measurement": "kWh"})
    site_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(site_entry.entry_id)
    await hass.async_block_till_done()
    return dr.async_get(hass).async_get_or_create(
        config_entry_id=site_entry.entry_id,
        config_subentry_id=SITE_SUBENTRY_ID,
        identifiers={(DOMAIN, "site_test_10")},
        name="Home site",
    )


@pytest.fixture
def price_queries(fake_server: FakeFlexMeasures) -> list[dict[str, str]]:
    """Serve hourly site prices for the window asked; record the queries."""
    queries: list[dict[str, str]] = []

    def answer(method: str, url: URL, data: Any) -> tuple[int, Any]:
        queries.append(dict(url.query))
        return HTTPStatus.OK, {
            "start": url.query["start"],
            "duration": url.query["duration"],
            "unit": url.query["unit"],
            "values": [81.5, 92.0],
        }

    fake_server.handlers["GET /api/v3_0/sensors/30/data"] = answer
    return queries


def car_device(hass: HomeAssistant) -> dr.DeviceEntry:
    """Return the device registry entry of the car charger."""
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    device = device_by_identifier(
        dr.async_get(hass),
        (DOMAIN, f"controlled_device_{CAR_SUBENTRY_ID}"),
        entry.entry_id,
    )
    assert device is not None
    return device


def scheduler(hass: HomeAssistant, subentry_id: str) -> DeviceScheduler:
    """Return the current scheduler of a controlled device."""
    entry: FlexMeasuresConfigEntry = hass.config_entries.async_entries(DOMAIN)[0]
    return entry.runtime_data.schedulers[subentry_id]


def plan(job_id: str, values: list[float]) -> Schedule:
    """Return a quarter-hourly plan from the current slot."""
    return Schedule(
        job_id=job_id,
        start=SLOT,
        resolution=timedelta(minutes=15),
        values=tuple(values),
        soc_at_start_kwh=5.0,
        soc=tuple(5.0 + value / 4 for value in values),
        targets=(),
        computed_at=NOW,
    )


def set_plan(hass: HomeAssistant, subentry_id: str, schedule: Schedule) -> None:
    """Give a device a new plan, as a finished job does, and tell its followers."""
    device = scheduler(hass, subentry_id)
    device.schedule = schedule
    device.status = ScheduleStatus.READY
    device.last_updated = NOW
    device.async_update_listeners()


async def subscribe(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    device_id: str,
    token: str | None = None,
) -> tuple[Any, int]:
    """Subscribe to a site; return the client and the subscription id."""
    client = await (hass_ws_client(hass, token) if token else hass_ws_client(hass))
    await client.send_json_auto_id(
        {"type": "flexmeasures/schedule/site/subscribe", "device_id": device_id}
    )
    subscribed = await client.receive_json()
    assert subscribed["success"], subscribed
    return client, subscribed["id"]


async def next_plan(client: Any, subscription: int) -> dict[str, Any]:
    """Return the site's plan the next event carries."""
    event = await client.receive_json()
    assert event["id"] == subscription
    assert event["type"] == "event"
    payload: dict[str, Any] = event["event"]
    return payload


async def nothing_more(client: Any) -> None:
    """Assert the subscription sent nothing further."""
    await client.send_json_auto_id({"type": "ping"})
    assert (await client.receive_json())["type"] == "pong"


async def test_sites(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    init_site: dr.DeviceEntry,
) -> None:
    """Only sites are listed, by the name the user sees."""
    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": "flexmeasures/schedule/sites"})
    msg = await client.receive_json()

    assert msg["success"]
    assert msg["result"] == [{"device_id": init_site.id, "name": "Home site"}]


@pytest.mark.parametrize("admin", [True, False], ids=["admin", "read_only"])
async def test_site_feed(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_read_only_access_token: str,
    init_site: dr.DeviceEntry,
    price_queries: list[dict[str, str]],
    snapshot: SnapshotAssertion,
    admin: bool,
) -> None:
    """The plan comes at once, then with each device's new plan till unsubscribed."""
    token = None if admin else hass_read_only_access_token
    client, subscription = await subscribe(hass, hass_ws_client, init_site.id, token)

    first = await next_plan(client, subscription)
    assert first["status"] == "idle"
    assert [device["name"] for device in first["devices"]] == [
        "Home battery",
        "Car charger",
    ]
    assert first["start"] is None

    set_plan(hass, BATTERY_SUBENTRY_ID, plan("job-b", [5.0, 5.0, -2.0, 0.0]))
    await hass.async_block_till_done()
    battery_only = await next_plan(client, subscription)
    assert battery_only["total"] == [5.0, 5.0, -2.0, 0.0]

    set_plan(hass, CAR_SUBENTRY_ID, plan("job-c", [7.4, 7.4, 7.4, 0.0]))
    await hass.async_block_till_done()
    both = await next_plan(client, subscription)
    # Registry ids differ per run: checked here, left out of the snapshot.
    assert both.pop("device_id") == init_site.id
    assert [device.pop("device_id") for device in both["devices"]] == [
        battery_device(hass).id,
        car_device(hass).id,
    ]
    assert both == snapshot
    # Asked once per set of plans, over the hours of the grid.
    query = price_queries[-1]
    assert dt_util.parse_datetime(query["start"]) == SLOT.replace(minute=0)
    assert dt_util.parse_duration(query["duration"]) == timedelta(hours=2)

    await client.send_json_auto_id(
        {"type": "unsubscribe_events", "subscription": subscription}
    )
    assert (await client.receive_json())["success"]
    set_plan(hass, CAR_SUBENTRY_ID, plan("job-c2", [0.0]))
    await hass.async_block_till_done()
    await nothing_more(client)


async def test_site_feed_status(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    init_site: dr.DeviceEntry,
) -> None:
    """A device that starts computing makes the site's status computing."""
    client, subscription = await subscribe(hass, hass_ws_client, init_site.id)
    await next_plan(client, subscription)

    device = scheduler(hass, CAR_SUBENTRY_ID)
    device.status = ScheduleStatus.COMPUTING
    device.async_update_listeners()
    await hass.async_block_till_done()

    changed = await next_plan(client, subscription)
    assert changed["status"] == "computing"
    assert changed["devices"][1]["status"] == "computing"


async def test_site_feed_coalesces(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    init_site: dr.DeviceEntry,
) -> None:
    """Changes while a plan is being built are sent as one more plan."""
    client, subscription = await subscribe(hass, hass_ws_client, init_site.id)
    await next_plan(client, subscription)

    release = asyncio.Event()
    build = card_data.async_site_payload

    async def slow_build(hass: HomeAssistant, ref: Any) -> Any:
        await release.wait()
        return await build(hass, ref)

    with patch(
        "custom_components.flexmeasures.websocket_api.async_site_payload", slow_build
    ):
        set_plan(hass, BATTERY_SUBENTRY_ID, plan("job-b", [1.0]))
        set_plan(hass, CAR_SUBENTRY_ID, plan("job-c", [2.0]))
        set_plan(hass, CAR_SUBENTRY_ID, plan("job-c", [3.0]))
        release.set()
        await hass.async_block_till_done()

    assert (await next_plan(client, subscription))["total"] == [4.0]
    assert (await next_plan(client, subscription))["total"] == [4.0]
    await nothing_more(client)


async def test_site_feed_follows_reload(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    init_site: dr.DeviceEntry,
) -> None:
    """After a reload the feed listens to the entry's new device schedulers."""
    client, subscription = await subscribe(hass, hass_ws_client, init_site.id)
    await next_plan(client, subscription)
    other = MockConfigEntry(domain=DOMAIN, unique_id="account_99")
    other.add_to_hass(hass)
    hass.config_entries.async_update_entry(other, title="Another account")
    await hass.async_block_till_done()

    entry = hass.config_entries.async_entries(DOMAIN)[0]
    old = scheduler(hass, BATTERY_SUBENTRY_ID)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert scheduler(hass, BATTERY_SUBENTRY_ID) is not old
    reloaded = await next_plan(client, subscription)
    assert reloaded["status"] == "idle"

    set_plan(hass, BATTERY_SUBENTRY_ID, plan("job-b", [2.0]))
    await hass.async_block_till_done()
    assert (await next_plan(client, subscription))["total"] == [2.0]
    await nothing_more(client)


@pytest.mark.parametrize("device", ["battery", "nonexistent"])
async def test_site_feed_unknown_device(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    init_site: dr.DeviceEntry,
    device: str,
) -> None:
    """Only a site's device can be subscribed to: a controlled device is none."""
    device_id = battery_device(hass).id if device == "battery" else device
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {"type": "flexmeasures/schedule/site/subscribe", "device_id": device_id}
    )
    msg = await client.receive_json()

    assert not msg["success"]
    assert msg["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("readable", "allowed"),
    [
        ("site", True),
        ("battery", False),
    ],
)
async def test_site_feed_permission(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_read_only_user: MockUser,
    hass_read_only_access_token: str,
    init_site: dr.DeviceEntry,
    readable: str,
    allowed: bool,
) -> None:
    """A user reads a site through its own entities, or those of all its devices."""
    registry = er.async_get(hass)
    site_entity = registry.async_get_or_create(
        "sensor", DOMAIN, "site_test_peak", device_id=init_site.id
    )
    battery_entities = er.async_entries_for_device(registry, battery_device(hass).id)
    entity_id = (
        site_entity.entity_id if readable == "site" else battery_entities[0].entity_id
    )
    hass_read_only_user.mock_policy({"entities": {"entity_ids": {entity_id: True}}})
    client = await hass_ws_client(hass, hass_read_only_access_token)

    await client.send_json_auto_id(
        {"type": "flexmeasures/schedule/site/subscribe", "device_id": init_site.id}
    )
    msg = await client.receive_json()

    if allowed:
        assert msg["success"]
        assert (await client.receive_json())["event"]["name"] == "Home site"
    else:
        assert msg["error"]["code"] == "unauthorized"


async def test_site_feed_stops_when_no_longer_readable(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_read_only_user: MockUser,
    hass_read_only_access_token: str,
    init_site: dr.DeviceEntry,
) -> None:
    """A user who may no longer read the site hears nothing of new plans."""
    client, subscription = await subscribe(
        hass, hass_ws_client, init_site.id, hass_read_only_access_token
    )
    await next_plan(client, subscription)

    hass_read_only_user.mock_policy({"entities": {"entity_ids": {}}})
    set_plan(hass, BATTERY_SUBENTRY_ID, plan("job-b", [2.0]))
    await hass.async_block_till_done()

    await nothing_more(client)
