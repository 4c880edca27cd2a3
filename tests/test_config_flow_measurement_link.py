"""Tests for the measurement link subentry flow (add, change, create a sensor)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any
from unittest.mock import patch

from aiohttp import ClientConnectionError
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures.config_flow import ARROW, SEPARATOR
from custom_components.flexmeasures.const import SUBENTRY_MEASUREMENT_LINK

from .conftest import POWER_ENTITY, FakeFlexMeasures, link_subentry, setup_entry
from .flow_helpers import configure, select_values, start_flow, suggested

KW = {"unit_of_measurement": "kW", "state_class": "measurement"}
LINK_FORM = {
    "sensor": "20",
    "invert": True,
    "aggregation": "mean",
    "upload_interval": {"hours": 0, "minutes": 10, "seconds": 0},
}
NEW_SENSOR = {
    "id": 40,
    "name": "grid power",
    "unit": "kW",
    "event_resolution": "PT5M",
    "generic_asset_id": 10,
}


POWER = {"W", "kW", "MW"}
ENERGY = {"Wh", "kWh", "MWh"}


def units_in(entry: MockConfigEntry, units: set[str]) -> set[str]:
    """Return the ids of the fixture's sensors with one of these units."""
    sensors = entry.runtime_data.inventory.data.sensors.values()
    return {str(sensor.id) for sensor in sensors if sensor.unit in units}


@pytest.fixture
async def entry(hass: HomeAssistant, linked_entry: MockConfigEntry) -> MockConfigEntry:
    """Return a loaded entry that links sensor.battery_power to sensor 20."""
    hass.states.async_set(POWER_ENTITY, "1.0", KW)
    hass.states.async_set("sensor.charger_power", "2.0", KW)
    return await setup_entry(hass, linked_entry)


@pytest.mark.parametrize("measurement_links", [[]])
async def test_add_link(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """A link is added in two steps; only compatible sensors are offered."""
    result = await start_flow(hass, entry, SUBENTRY_MEASUREMENT_LINK)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"

    result = await configure(hass, result["flow_id"], {"entity_id": POWER_ENTITY})
    assert result["step_id"] == "sensor"
    assert select_values(result, "sensor")[-1] == "new"
    assert set(select_values(result, "sensor")) == units_in(entry, POWER) | {"new"}

    result = await configure(hass, result["flow_id"], LINK_FORM)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"battery power{ARROW}Home battery{SEPARATOR}power (kW)"
    assert result["data"] == {
        "entity_id": POWER_ENTITY,
        "sensor_id": 20,
        "sensor_unit": "kW",
        "sensor_resolution": 900,
        "invert": True,
        "aggregation": "mean",
        "upload_interval": {"hours": 0, "minutes": 10, "seconds": 0},
    }
    (subentry,) = entry.subentries.values()
    assert subentry.unique_id == "measurement_link_20"
    assert set(entry.runtime_data.uploader.links) == {subentry.subentry_id}


@pytest.mark.parametrize(
    ("entity_id", "state", "attributes"),
    [
        ("sensor.switchy", "on", {}),
        ("sensor.missing", None, {}),
    ],
)
async def test_entity_must_report_numbers(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    entity_id: str,
    state: str | None,
    attributes: dict[str, str],
) -> None:
    """An entity without numbers is refused; a numeric one is accepted next."""
    if state is not None:
        hass.states.async_set(entity_id, state, attributes)
    result = await start_flow(hass, entry, SUBENTRY_MEASUREMENT_LINK)
    result = await configure(hass, result["flow_id"], {"entity_id": entity_id})
    assert result["errors"] == {"entity_id": "not_numeric"}

    hass.states.async_set("sensor.plain_number", "12.5")
    result = await configure(
        hass, result["flow_id"], {"entity_id": "sensor.plain_number"}
    )
    assert result["step_id"] == "sensor"
    # Without a unit, only sensors without a unit fit; none here.
    assert select_values(result, "sensor") == ["new"]


async def test_sensor_step_errors(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """A linked sensor and a too short interval are refused, then fixed."""
    result = await start_flow(hass, entry, SUBENTRY_MEASUREMENT_LINK)
    result = await configure(
        hass, result["flow_id"], {"entity_id": "sensor.charger_power"}
    )
    result = await configure(hass, result["flow_id"], LINK_FORM)
    assert result["errors"] == {"sensor": "already_linked"}

    short = {**LINK_FORM, "sensor": "22", "upload_interval": {"seconds": 30}}
    result = await configure(hass, result["flow_id"], short)
    assert result["errors"] == {"upload_interval": "interval_too_short"}

    result = await configure(hass, result["flow_id"], {**LINK_FORM, "sensor": "22"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["sensor_id"] == 22


async def test_meter_defaults_to_difference(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """A total_increasing entity suggests the meter difference."""
    hass.states.async_set(
        "sensor.meter",
        "100",
        {"unit_of_measurement": "kWh", "state_class": "total_increasing"},
    )
    result = await start_flow(hass, entry, SUBENTRY_MEASUREMENT_LINK)
    result = await configure(hass, result["flow_id"], {"entity_id": "sensor.meter"})
    values = suggested(result["data_schema"])
    assert values["aggregation"] == "difference"
    assert values["invert"] is False
    assert set(select_values(result, "sensor")) == units_in(entry, ENERGY) | {"new"}


@pytest.mark.parametrize("measurement_links", [[]])
async def test_create_a_new_sensor(
    hass: HomeAssistant, entry: MockConfigEntry, fake_server: FakeFlexMeasures
) -> None:
    """Choosing "create a new sensor" makes one on the chosen asset and links it."""
    result = await start_flow(hass, entry, SUBENTRY_MEASUREMENT_LINK)
    result = await configure(hass, result["flow_id"], {"entity_id": POWER_ENTITY})
    result = await configure(hass, result["flow_id"], {**LINK_FORM, "sensor": "new"})
    assert result["step_id"] == "new_sensor"
    assert select_values(result, "asset") == ["10", "12", "11"]

    fake_server.statuses["POST /api/v3_0/sensors"] = 201
    fake_server.responses["POST /api/v3_0/sensors"] = NEW_SENSOR
    result = await configure(
        hass,
        result["flow_id"],
        {
            "asset": "10",
            "name": " grid power ",
            "unit_of_measurement": "kW",
            "resolution": {"hours": 0, "minutes": 5, "seconds": 0},
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"battery power{ARROW}Home{SEPARATOR}grid power (kW)"
    assert result["data"]["sensor_id"] == 40
    assert result["data"]["sensor_resolution"] == 300
    created = [
        data
        for method, path, data in fake_server.calls
        if path.endswith("/sensors") and method == "POST"
    ]
    assert created[0]["name"] == "grid power"
    assert created[0]["generic_asset_id"] == 10


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        ({"unit_of_measurement": "°C"}, {"unit_of_measurement": "incompatible_unit"}),
        # FlexMeasures would answer a 500 for a second sensor of that name.
        ({"name": " charging power "}, {"name": "sensor_name_taken"}),
        ({"status": 422}, {"base": "sensor_rejected"}),
        ({"raise": ClientConnectionError("refused")}, {"base": "cannot_connect"}),
        ({"crash": RuntimeError("boom")}, {"base": "unknown"}),
    ],
)
async def test_create_a_new_sensor_errors(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    fake_server: FakeFlexMeasures,
    setup: dict[str, Any],
    error: dict[str, str],
) -> None:
    """Each failure to create a sensor shows on the form; a retry succeeds."""
    result = await start_flow(hass, entry, SUBENTRY_MEASUREMENT_LINK)
    result = await configure(
        hass, result["flow_id"], {"entity_id": "sensor.charger_power"}
    )
    result = await configure(hass, result["flow_id"], {**LINK_FORM, "sensor": "new"})
    form = {
        "asset": "12",
        "name": setup.get("name", "charging power 2"),
        "unit_of_measurement": setup.get("unit_of_measurement", "kW"),
        "resolution": {"hours": 0, "minutes": 5, "seconds": 0},
    }
    path = "POST /api/v3_0/sensors"
    if "status" in setup:
        fake_server.statuses[path] = setup["status"]
        fake_server.responses[path] = {"message": "Not allowed", "status": 422}
    if "raise" in setup:
        fake_server.errors[path] = setup["raise"]
    crash = (
        patch(
            "custom_components.flexmeasures.api.FlexMeasuresApi.async_add_sensor",
            side_effect=setup["crash"],
        )
        if "crash" in setup
        else nullcontext()
    )
    with crash:
        result = await configure(hass, result["flow_id"], form)
    assert result["errors"] == error

    fake_server.errors.clear()
    fake_server.statuses[path] = 201
    fake_server.responses[path] = {**NEW_SENSOR, "generic_asset_id": 12}
    result = await configure(
        hass,
        result["flow_id"],
        {**form, "name": "charging power 2", "unit_of_measurement": "W"},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_reconfigure_link(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Changing a link keeps its id and may keep its own sensor."""
    (subentry,) = entry.subentries.values()
    result = await start_flow(
        hass, entry, SUBENTRY_MEASUREMENT_LINK, subentry.subentry_id
    )
    assert result["step_id"] == "reconfigure"
    result = await configure(
        hass, result["flow_id"], {"entity_id": "sensor.charger_power"}
    )
    assert result["step_id"] == "sensor"
    hass.states.async_remove("sensor.charger_power")
    result = await configure(
        hass, result["flow_id"], {**LINK_FORM, "aggregation": "last"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.subentries[subentry.subentry_id].data["aggregation"] == "last"
    assert entry.subentries[subentry.subentry_id].title == (
        f"sensor.charger_power{ARROW}Home battery{SEPARATOR}power (kW)"
    )


@pytest.mark.parametrize(
    "measurement_links", [[link_subentry(), link_subentry(sensor_id=22)]]
)
async def test_reconfigure_to_a_linked_sensor(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """A link cannot move to a sensor another link sends to."""
    subentry = next(
        item for item in entry.subentries.values() if item.data["sensor_id"] == 22
    )
    result = await start_flow(
        hass, entry, SUBENTRY_MEASUREMENT_LINK, subentry.subentry_id
    )
    result = await configure(hass, result["flow_id"], {"entity_id": POWER_ENTITY})
    result = await configure(hass, result["flow_id"], LINK_FORM)
    assert result["errors"] == {"sensor": "already_linked"}


async def test_entry_not_loaded(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Links need the loaded entry's inventory."""
    assert await hass.config_entries.async_unload(entry.entry_id)
    result = await start_flow(hass, entry, SUBENTRY_MEASUREMENT_LINK)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "entry_not_loaded"


async def test_labels_without_asset_or_unit(
    hass: HomeAssistant, entry: MockConfigEntry, fake_server: FakeFlexMeasures
) -> None:
    """A sensor without a known asset or unit is still labelled sensibly."""
    inventory = entry.runtime_data.inventory
    inventory.data.sensors[50] = type(inventory.data.sensors[20])(
        id=50,
        name="orphan",
        unit="",
        resolution=inventory.data.sensors[20].resolution,
        asset_id=99,
    )
    hass.states.async_set("sensor.ratio", "0.5")
    result = await start_flow(hass, entry, SUBENTRY_MEASUREMENT_LINK)
    result = await configure(hass, result["flow_id"], {"entity_id": "sensor.ratio"})
    assert select_values(result, "sensor") == ["50", "new"]
    result = await configure(hass, result["flow_id"], {**LINK_FORM, "sensor": "50"})
    assert result["title"] == f"ratio{ARROW}orphan"
