"""The README names only what a running instance has (issue 13, README truth).

Home Assistant is set up as the README describes it, against the real server:
a controlled device *Home battery* (the dashboard examples) and one named
*Demo battery* (the demo's), a measurement link, and the reader's own entities
the examples use. Then every entity id the README names must exist, every
action field it names must be a field of that action, and every response it
shows must have the keys it lists.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.service import async_get_all_descriptions
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from custom_components.flexmeasures.const import (
    DOMAIN,
    SUBENTRY_CONTROLLED_DEVICE,
    SUBENTRY_MEASUREMENT_LINK,
)
from custom_components.flexmeasures.data import FlexMeasuresConfigEntry
from tests.readme_check import readme_names

from .conftest import LiveServer

# The reader's own entities in the README's examples (a battery's measured
# power and SoC; the demo's template sensors): set here as states, unless the
# integration has them already (the seeded asset is a *Home battery* with a
# power and a state of charge sensor, as a reader's FlexMeasures may have).
OWN_ENTITIES: Final = {
    "sensor.home_battery_power": ("1.5", {"unit_of_measurement": "kW"}),
    "sensor.home_battery_state_of_charge": (
        "50",
        {"unit_of_measurement": "%", "device_class": "battery"},
    ),
    "sensor.demo_battery_state_of_charge": (
        "40",
        {"unit_of_measurement": "%", "device_class": "battery"},
    ),
    "sensor.demo_charger_power": ("0", {"unit_of_measurement": "kW"}),
    "sensor.demo_car_state_of_charge": (
        "20",
        {"unit_of_measurement": "%", "device_class": "battery"},
    ),
    # The demo's day-ahead price stand-in (a list of slots in an attribute).
    "sensor.demo_day_ahead_price": ("0.135", {"unit_of_measurement": "EUR/kWh"}),
}
# Actions whose response the README shows, with what gets it here.
RESPONSES: Final = {"trigger_schedule", "upload_history"}


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(request: pytest.FixtureRequest) -> None:
    """Start the recorder before Home Assistant, then enable the integration."""
    request.getfixturevalue("recorder_mock")
    request.getfixturevalue("enable_custom_integrations")


async def _add_device(
    hass: HomeAssistant,
    entry: FlexMeasuresConfigEntry,
    *,
    name: str,
    power_sensor: int,
    soc_entity: str,
    price_sensor: int,
) -> None:
    """Add a controlled device through the real subentry flow."""
    flows = hass.config_entries.subentries
    result = await flows.async_init(
        (entry.entry_id, SUBENTRY_CONTROLLED_DEVICE), context={"source": SOURCE_USER}
    )
    result = await flows.async_configure(
        result["flow_id"],
        {
            "name": name,
            "kind": "battery",
            "power_sensor": str(power_sensor),
            "soc_entity": soc_entity,
            "soc_unit": "percent",
            "capacity": 10.0,
            "soc_min": 10.0,
            "soc_max": 90.0,
            "charge_power": 5.0,
            "discharge_power": 5.0,
            "roundtrip_efficiency": 90.0,
            "consumption_price_sensor": str(price_sensor),
            "horizon": 12,
            "auto_reschedule": {},
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()


async def _add_link(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry, entity_id: str, sensor: int
) -> None:
    """Link an entity to an existing FlexMeasures sensor (last value)."""
    flows = hass.config_entries.subentries
    result = await flows.async_init(
        (entry.entry_id, SUBENTRY_MEASUREMENT_LINK), context={"source": SOURCE_USER}
    )
    result = await flows.async_configure(result["flow_id"], {"entity_id": entity_id})
    result = await flows.async_configure(
        result["flow_id"],
        {
            "sensor": str(sensor),
            "invert": False,
            "aggregation": "last",
            "upload_interval": {"hours": 0, "minutes": 5, "seconds": 0},
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()


async def test_readme_names_what_exists(
    hass: HomeAssistant, live_server: LiveServer, loaded_entry: FlexMeasuresConfigEntry
) -> None:
    """Entity ids, action fields and response keys of the README all exist."""
    names = readme_names()
    registry = er.async_get(hass)
    for entity_id, (state, attributes) in OWN_ENTITIES.items():
        if registry.async_get(entity_id) is None:
            hass.states.async_set(entity_id, state, attributes)
    await async_wait_recording_done(hass)
    await _add_device(
        hass,
        loaded_entry,
        name="Home battery",
        power_sensor=live_server.sensors["battery_power"],
        soc_entity="sensor.home_battery_state_of_charge",
        price_sensor=live_server.sensors["price"],
    )
    await _add_device(
        hass,
        loaded_entry,
        name="Demo battery",
        power_sensor=live_server.sensors["ev_charger_power"],
        soc_entity="sensor.demo_battery_state_of_charge",
        price_sensor=live_server.sensors["price"],
    )
    await _add_link(
        hass,
        loaded_entry,
        "sensor.demo_battery_state_of_charge",
        live_server.sensors["battery_soc"],
    )

    # Entity ids: the integration's own exist as its entities, with a state.
    ours = names.entity_ids - set(OWN_ENTITIES)
    assert set(OWN_ENTITIES) <= names.entity_ids
    missing = {
        entity_id
        for entity_id in ours
        if (entity := registry.async_get(entity_id)) is None
        or entity.platform != DOMAIN
        or hass.states.get(entity_id) is None
    }
    assert not missing, f"the README names entities that do not exist: {missing}"

    # Action fields: each one a field of the action, as the instance describes it.
    descriptions = (await async_get_all_descriptions(hass))[DOMAIN]
    assert names.action_fields
    for action, fields in names.action_fields.items():
        assert action in descriptions, action
        unknown = fields - set(descriptions[action]["fields"])
        assert not unknown, f"{action} has no fields {unknown}"

    # Responses: every key the README lists is in a real answer.
    assert set(names.response_keys) == RESPONSES
    (device,) = (
        device
        for device in dr.async_entries_for_config_entry(
            dr.async_get(hass), loaded_entry.entry_id
        )
        if device.name == "Home battery"
        and any(
            value.startswith("controlled_device_") for _, value in device.identifiers
        )
    )
    answers: dict[str, Any] = {
        "trigger_schedule": await hass.services.async_call(
            DOMAIN,
            "trigger_schedule",
            {
                "device_id": device.id,
                "duration": timedelta(hours=4),
                "soc_at_start": 50,
            },
            blocking=True,
            return_response=True,
        ),
        "upload_history": await hass.services.async_call(
            DOMAIN,
            "upload_history",
            {
                "config_entry": loaded_entry.entry_id,
                "entity_id": "sensor.demo_battery_state_of_charge",
                "start": dt_util.utcnow() - timedelta(hours=1),
            },
            blocking=True,
            return_response=True,
        ),
    }
    assert answers["trigger_schedule"]["status"] == "ready", answers
    get_schedule = await hass.services.async_call(
        DOMAIN,
        "get_schedule",
        {"device_id": device.id},
        blocking=True,
        return_response=True,
    )
    for action, keys in names.response_keys.items():
        assert keys <= set(answers[action]), (action, answers[action])
    assert names.response_keys["trigger_schedule"] <= set(get_schedule or {})
