"""Tests for the FlexMeasures sensor platform."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from http import HTTPStatus
import json
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components.sensor import SensorDeviceClass, SensorStateClass
from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.json import JSONEncoder
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.flexmeasures.api import Sensor
from custom_components.flexmeasures.const import DOMAIN
from custom_components.flexmeasures.sensor import UPLOADER_SENSORS, description_for

from .conftest import (
    BATTERY_SUBENTRY_ID,
    POWER_ENTITY,
    RECORDED_AT,
    UNIQUE_ID,
    FakeFlexMeasures,
    FakeScheduling,
    battery_device,
    entity_snapshot,
    setup_entry,
)

pytestmark = pytest.mark.freeze_time(RECORDED_AT)

QUARTER = timedelta(minutes=15)


@pytest.mark.parametrize(
    ("unit", "resolution", "key", "device_class", "state_class", "precision"),
    [
        ("W", QUARTER, "power", SensorDeviceClass.POWER, "measurement", 0),
        ("kW", QUARTER, "power", SensorDeviceClass.POWER, "measurement", 2),
        ("MW", QUARTER, "power", SensorDeviceClass.POWER, "measurement", 3),
        ("GW", QUARTER, "power", SensorDeviceClass.POWER, "measurement", 3),
        ("Wh", QUARTER, "energy", SensorDeviceClass.ENERGY, "total", 0),
        ("kWh", QUARTER, "energy", SensorDeviceClass.ENERGY, "total", 2),
        ("MWh", timedelta(hours=1), "energy", SensorDeviceClass.ENERGY, "total", 3),
        (
            "kWh",
            timedelta(0),
            "stored_energy",
            SensorDeviceClass.ENERGY_STORAGE,
            "measurement",
            2,
        ),
        ("EUR/MWh", timedelta(hours=1), "price", None, "measurement", 2),
        ("EUR/kWh", QUARTER, "price", None, "measurement", 4),
        ("USD/Wh", QUARTER, "price", None, "measurement", 6),
        ("XYZ/MWh", QUARTER, "measurement", None, "measurement", None),
        ("EUR", QUARTER, "cost", SensorDeviceClass.MONETARY, "total", 2),
        ("EUR", timedelta(0), "measurement", None, "measurement", None),
        ("%", QUARTER, "percentage", None, "measurement", 1),
        ("°C", timedelta(hours=1), "temperature", SensorDeviceClass.TEMPERATURE,
         "measurement", 1),
        ("K", QUARTER, "temperature", SensorDeviceClass.TEMPERATURE, "measurement", 1),
        ("A", QUARTER, "current", SensorDeviceClass.CURRENT, "measurement", 1),
        ("V", QUARTER, "voltage", SensorDeviceClass.VOLTAGE, "measurement", 0),
        ("m³/h", QUARTER, "measurement", None, "measurement", None),
        ("", QUARTER, "measurement", None, "measurement", None),
    ],
)  # fmt: skip
def test_unit_mapping(
    unit: str,
    resolution: timedelta,
    key: str,
    device_class: SensorDeviceClass | None,
    state_class: str,
    precision: int | None,
) -> None:
    """Each FlexMeasures unit maps to the right kind, class and precision."""
    sensor = Sensor(id=1, name="x", unit=unit, resolution=resolution, asset_id=1)
    description = description_for(sensor)
    assert description.key == key
    assert description.translation_key == key
    assert description.device_class == device_class
    assert description.state_class == SensorStateClass(state_class)
    assert description.precision_fn(unit) == precision
    assert description.per_slot == (state_class == "total")


async def test_entities(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    """Every sensor is an entity on its asset's device showing its latest value."""
    assert entity_snapshot(hass, init_integration.entry_id) == snapshot

    entities = er.async_entries_for_config_entry(
        entity_registry, init_integration.entry_id
    )
    # One per FlexMeasures sensor, plus the uploader's diagnostic sensors.
    assert len(entities) == 11 + len(UPLOADER_SENSORS)
    devices = {
        device.id
        for device in dr.async_entries_for_config_entry(
            device_registry, init_integration.entry_id
        )
    }
    assert {entity.device_id for entity in entities} <= devices


@pytest.mark.parametrize(
    ("entity_id", "state", "event_start"),
    [
        # The current slot has no value yet: the one before it is the latest.
        ("sensor.home_battery_power", "2.5", "2026-11-02T09:45:00+00:00"),
        ("sensor.home_consumption_price", "131.06", "2026-11-02T10:00:00+00:00"),
        ("sensor.home_gas_flow", "1.1", "2026-11-02T08:00:00+00:00"),
        ("sensor.home_battery_state_of_energy", "8.42", "2026-11-02T10:05:00+00:00"),
        # No data at all is unknown, never 0.
        ("sensor.ev_charger_session_energy", STATE_UNKNOWN, None),
    ],
)
async def test_latest_value(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    entity_id: str,
    state: str,
    event_start: str | None,
) -> None:
    """The state is the latest non-null value of a started slot."""
    current = hass.states.get(entity_id)
    assert current is not None
    assert current.state == state
    if event_start is None:
        assert "event_start" not in current.attributes
    else:
        assert current.attributes["event_start"].isoformat() == event_start


async def test_energy_per_slot_resets_each_slot(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Energy per slot is a total whose statistics restart at the slot start."""
    state = hass.states.get("sensor.home_energy_consumption")
    assert state is not None
    assert state.state == "0.62"
    assert state.attributes["state_class"] == SensorStateClass.TOTAL
    assert state.attributes["last_reset"] == "2026-11-02T09:45:00+00:00"
    stored = hass.states.get("sensor.home_battery_state_of_energy")
    assert stored is not None
    assert "last_reset" not in stored.attributes


@pytest.mark.parametrize("name", ["", "  ", "Home battery", "home BATTERY "])
async def test_generic_name_is_translated(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    name: str,
) -> None:
    """A sensor named like its asset (or not at all) gets its kind's name."""
    fake_server.responses["GET /api/v3_0/sensors"][0]["name"] = name
    await setup_entry(hass, mock_config_entry)
    entity_id = entity_registry.async_get_entity_id(
        "sensor", DOMAIN, f"{UNIQUE_ID}_sensor_20"
    )
    assert entity_id == "sensor.home_battery_power"
    state = hass.states.get(entity_id)
    assert state is not None
    assert state.attributes["friendly_name"] == "Home battery Power"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (HTTPStatus.NOT_FOUND, {"message": "No sensor with id 21", "status": 404}),
        (HTTPStatus.FORBIDDEN, {}),
        (
            HTTPStatus.UNPROCESSABLE_ENTITY,
            {"message": {"json": {"unit": ["Unknown unit"]}}, "status": 422},
        ),
        (HTTPStatus.OK, {"values": "not a list"}),
    ],
)
async def test_unreadable_sensor_logged_once(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_server: FakeFlexMeasures,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
    status: HTTPStatus,
    body: dict[str, Any],
) -> None:
    """A sensor the server refuses is unavailable alone, logged once, and recovers."""
    path = "GET /api/v3_0/sensors/21/data"
    fake_server.handlers[path] = lambda *_: (status, body)
    for _ in range(2):
        freezer.tick(timedelta(minutes=5))
        async_fire_time_changed(hass)
        await hass.async_block_till_done(wait_background_tasks=True)
        assert hass.states.get("sensor.home_battery_state_of_charge").state == (  # type: ignore[union-attr]
            STATE_UNAVAILABLE
        )
        assert hass.states.get("sensor.home_battery_power").state == "2.5"  # type: ignore[union-attr]
    assert caplog.text.count("FlexMeasures sensor 21 (state of charge) cannot") == 1

    del fake_server.handlers[path]
    freezer.tick(timedelta(minutes=5))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get("sensor.home_battery_state_of_charge").state == "76.4"  # type: ignore[union-attr]
    assert caplog.text.count("FlexMeasures sensor 21 can be read again") == 1


async def test_new_sensor_appears_without_reload(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_server: FakeFlexMeasures,
) -> None:
    """A sensor added on the server becomes an entity after the inventory refresh."""
    fake_server.responses["GET /api/v3_0/sensors"].append(
        {
            "id": 40,
            "name": "heat pump power",
            "unit": "kW",
            "event_resolution": "PT15M",
            "generic_asset_id": 10,
        }
    )
    fake_server.responses["GET /api/v3_0/sensors/40/data"] = {
        "values": [1.25],
        "start": "2026-11-02T10:00:00+00:00",
        "duration": "PT15M",
        "unit": "kW",
    }
    await init_integration.runtime_data.inventory.async_refresh()
    await hass.async_block_till_done()

    state = hass.states.get("sensor.home_heat_pump_power")
    assert state is not None
    assert state.state == "1.25"
    assert fake_server.count("GET /api/v3_0/sensors/40/data") == 1


async def test_deleted_sensor_is_removed(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_server: FakeFlexMeasures,
    entity_registry: er.EntityRegistry,
) -> None:
    """A sensor deleted on the server disappears from Home Assistant."""
    sensors = fake_server.responses["GET /api/v3_0/sensors"]
    fake_server.responses["GET /api/v3_0/sensors"] = [
        sensor for sensor in sensors if sensor["id"] != 22
    ]
    await init_integration.runtime_data.inventory.async_refresh()
    await hass.async_block_till_done()

    assert hass.states.get("sensor.ev_charger_charging_power") is None
    assert entity_registry.async_get("sensor.ev_charger_charging_power") is None
    assert hass.states.get("sensor.ev_charger_session_energy") is not None

    # A sensor that comes back is added again.
    fake_server.responses["GET /api/v3_0/sensors"] = sensors
    await init_integration.runtime_data.inventory.async_refresh()
    await hass.async_block_till_done()
    assert hass.states.get("sensor.ev_charger_charging_power") is not None


async def test_failed_inventory_refresh_keeps_entities(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_server: FakeFlexMeasures,
) -> None:
    """A failed inventory refresh neither adds nor removes anything."""
    fake_server.statuses["GET /api/v3_0/sensors"] = HTTPStatus.INTERNAL_SERVER_ERROR
    await init_integration.runtime_data.inventory.async_refresh()
    await hass.async_block_till_done()
    assert not init_integration.runtime_data.inventory.last_update_success
    assert hass.states.get("sensor.home_battery_power").state == "2.5"  # type: ignore[union-attr]


# --- Scheduling: the sensors of a controlled device --------------------------

NOW = datetime.fromisoformat("2026-11-20T10:05:00+00:00")
START = datetime.fromisoformat("2026-11-20T10:00:00+00:00")


@pytest.fixture
def schedule_clock(freezer: FrozenDateTimeFactory, fast_polling: None) -> None:
    """Start at NOW, before the integration is set up; poll jobs without waiting."""
    freezer.move_to(NOW)


async def _plan(hass: HomeAssistant, **data: Any) -> Any:
    """Ask for a plan for the home battery and wait for it."""
    device = battery_device(hass)
    assert device is not None
    response = await hass.services.async_call(
        DOMAIN,
        "trigger_schedule",
        {"device_id": device.id, **data},
        blocking=True,
        return_response=True,
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    return response


def _state(hass: HomeAssistant, entity_id: str) -> str:
    """Return an entity's state."""
    state = hass.states.get(entity_id)
    assert state is not None
    return state.state


async def _at(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, moment: datetime
) -> None:
    """Move the clock to ``moment`` and run the timers that were due."""
    freezer.move_to(moment)
    async_fire_time_changed(hass)
    await hass.async_block_till_done()


@pytest.mark.usefixtures("schedule_clock")
async def test_schedule_sensors(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """Every entity of a controlled device, before and with a plan."""
    assert _state(hass, "sensor.home_battery_schedule_status") == "idle"
    assert _state(hass, "sensor.home_battery_planned_power") == STATE_UNKNOWN
    await _plan(
        hass,
        duration={"hours": 2},
        soc_targets=[{"datetime": "2026-11-20T11:00:00+00:00", "value": 60}],
    )
    await _at(hass, freezer, START)
    entities = {
        entity_id: entity
        for entity_id, entity in entity_snapshot(hass, init_battery.entry_id).items()
        if entity["unique_id"].startswith(BATTERY_SUBENTRY_ID)
    }
    assert entities == snapshot
    # Every entity belongs to the controlled device.
    device = battery_device(hass)
    assert device is not None
    assert device.name == "Home battery"
    assert device.model == "Battery"
    assert {entity["device"] for entity in entities.values()} == {"Home battery"}


@pytest.mark.usefixtures("schedule_clock")
async def test_planned_power_switches_at_slot_boundaries(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """Planned power has a value once the plan arrives, then switches at boundaries."""
    power = "sensor.home_battery_planned_power"
    assert _state(hass, power) == STATE_UNKNOWN
    await _plan(hass)
    # The plan starts with the current slot (10:00 at 10:05): a value for now.
    assert _state(hass, power) == "2.0"
    # Just before a boundary nothing changes: no polling, only time tracking.
    await _at(hass, freezer, START + 2 * QUARTER - timedelta(seconds=1))
    assert _state(hass, power) == "2.0"
    expected = {2: "0.0", 4: "-1.0", 5: "0.0"}
    for slot, value in expected.items():
        await _at(hass, freezer, START + slot * QUARTER)
        assert _state(hass, power) == value, slot
    await _at(hass, freezer, START + timedelta(hours=12))
    assert _state(hass, power) == STATE_UNKNOWN
    assert _state(hass, "sensor.home_battery_schedule_status") == "stale"


@pytest.mark.usefixtures("schedule_clock")
async def test_next_charging_window(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """Next charging start and end describe the ongoing or next window."""
    fake_scheduling.values = [0.0, 3.0, 3.0, 0.0, 1.0] + [0.0] * 43
    await _plan(hass)
    start, end = (
        "sensor.home_battery_next_charging_start",
        "sensor.home_battery_next_charging_end",
    )
    assert _state(hass, start) == (START + QUARTER).isoformat()
    assert _state(hass, end) == (START + 3 * QUARTER).isoformat()
    await _at(hass, freezer, START + 2 * QUARTER)
    assert _state(hass, start) == (START + QUARTER).isoformat()
    await _at(hass, freezer, START + 3 * QUARTER)
    assert _state(hass, start) == (START + 4 * QUARTER).isoformat()
    await _at(hass, freezer, START + 5 * QUARTER)
    assert _state(hass, start) == STATE_UNKNOWN


@pytest.mark.usefixtures("schedule_clock")
async def test_soc_sensors_in_kwh(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A device whose SoC is in kWh shows its planned SoC in kWh."""
    subentry = init_battery.subentries[BATTERY_SUBENTRY_ID]
    hass.config_entries.async_update_subentry(
        init_battery,
        subentry,
        data={**subentry.data, "soc_unit": "kwh", "soc_min": 1, "soc_max": 9},
    )
    await hass.async_block_till_done()
    hass.states.async_set(
        "sensor.home_battery_soc", "5", {"unit_of_measurement": "kWh"}
    )
    await _plan(hass)
    state = hass.states.get("sensor.home_battery_planned_state_of_charge_at_end")
    assert state is not None
    assert state.attributes["unit_of_measurement"] == "kWh"
    assert state.attributes["device_class"] == "energy_storage"
    assert float(state.state) == pytest.approx(5 + 1.0 * 0.9 - 0.25 / 0.9, abs=0.01)


@pytest.mark.usefixtures("schedule_clock")
async def test_recorded_attributes_stay_small(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    init_battery: MockConfigEntry,
) -> None:
    """A 48-hour, 15-minute plan keeps every recorded attribute set under 16 KB."""
    fake_scheduling.values = [round((i % 7 - 3) * 1.234567, 6) for i in range(192)]
    await _plan(hass, duration={"hours": 48})
    power = hass.states.get("sensor.home_battery_planned_power")
    assert power is not None
    assert len(power.attributes["schedule"]) == 192
    for state in hass.states.async_all():
        if not state.entity_id.startswith(
            (
                "sensor.home_battery",
                "binary_sensor.home_battery",
                "calendar.home_battery",
            )
        ):
            continue
        # What the recorder stores: the attributes minus the unrecorded ones.
        unrecorded = (
            state.state_info["unrecorded_attributes"]
            if state.state_info
            else frozenset()
        )
        recorded = {k: v for k, v in state.attributes.items() if k not in unrecorded}
        size = len(json.dumps(recorded, cls=JSONEncoder).encode())
        assert size < 16 * 1024, state.entity_id
    assert "schedule" in power.state_info["unrecorded_attributes"]  # type: ignore[index]


# --- Measurement uploads (issue 5) ------------------------------------------------

UPLOAD_START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PENDING = "sensor.home_pending_measurements"
LAST_UPLOAD = "sensor.home_last_measurement_upload"


async def test_uploader_sensors(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    linked_entry: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """The backlog and the last upload are diagnostic sensors; both survive reloads."""
    freezer.move_to(UPLOAD_START)
    hass.states.async_set(POWER_ENTITY, "2", {"unit_of_measurement": "kW"})
    linked_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(linked_entry.entry_id)
    await hass.async_block_till_done()
    assert entity_snapshot(hass, linked_entry.entry_id) == snapshot

    uploaded = UPLOAD_START + timedelta(minutes=15)
    freezer.move_to(uploaded)
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(PENDING).state == "0"  # type: ignore[union-attr]
    assert hass.states.get(LAST_UPLOAD).state == uploaded.isoformat()  # type: ignore[union-attr]

    assert await hass.config_entries.async_reload(linked_entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(LAST_UPLOAD).state == uploaded.isoformat()  # type: ignore[union-attr]


async def test_history_upload_progress_enabled(
    hass: HomeAssistant,
    entity_registry_enabled_by_default: None,
    linked_entry: MockConfigEntry,
) -> None:
    """Once enabled, the history upload progress follows the uploader."""
    linked_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(linked_entry.entry_id)
    await hass.async_block_till_done()
    progress = "sensor.home_history_upload_progress"
    assert hass.states.get(progress).state == STATE_UNKNOWN  # type: ignore[union-attr]

    uploader = linked_entry.runtime_data.uploader
    uploader.history_progress = 42.0
    uploader._notify()
    assert hass.states.get(progress).state == "42.0"  # type: ignore[union-attr]
