"""Sensor entities of the seeded FlexMeasures sensors, on the real server."""

from __future__ import annotations

import random

from homeassistant.const import ATTR_UNIT_OF_MEASUREMENT
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.util import dt as dt_util
import pytest

from custom_components.flexmeasures.const import DOMAIN
from custom_components.flexmeasures.data import FlexMeasuresConfigEntry
from custom_components.flexmeasures.identity import asset_identifier, sensor_unique_id

from .conftest import LiveServer, quarter_floor, until_stored


async def test_seeded_sensors_are_entities_on_their_asset_devices(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
    live_server: LiveServer,
    loaded_entry: FlexMeasuresConfigEntry,
) -> None:
    """Each seeded sensor has an entity on the device of its asset, in its unit."""
    inventory = loaded_entry.runtime_data.inventory.data
    for key, sensor_id in live_server.sensors.items():
        entity_id = entity_registry.async_get_entity_id(
            "sensor", DOMAIN, sensor_unique_id(loaded_entry, sensor_id)
        )
        assert entity_id is not None, key
        entity = entity_registry.async_get(entity_id)
        assert entity is not None
        asset_id = inventory.sensors[sensor_id].asset_id
        assert entity.device_id is not None, key
        device = device_registry.async_get(entity.device_id)
        assert device is not None
        assert asset_identifier(loaded_entry, asset_id) in device.identifiers
        if live_server.units[key] in ("kW", "%"):
            state = hass.states.get(entity_id)
            assert state is not None
            assert state.attributes[ATTR_UNIT_OF_MEASUREMENT] == live_server.units[key]

    for sensor_id in live_server.other_sensor_ids:
        unique_id = sensor_unique_id(loaded_entry, sensor_id)
        assert entity_registry.async_get_entity_id("sensor", DOMAIN, unique_id) is None


async def test_posted_measurement_becomes_the_state(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    live_server: LiveServer,
    loaded_entry: FlexMeasuresConfigEntry,
) -> None:
    """A value posted for the current slot is the entity's state after a refresh."""
    data = loaded_entry.runtime_data
    sensor_id = live_server.sensors["ev_charger_power"]
    sensor = data.inventory.data.sensors[sensor_id]
    value = round(random.uniform(0.5, 11.0), 3)  # noqa: S311
    job = await data.api.async_post_sensor_data(
        sensor_id,
        start=quarter_floor(dt_util.utcnow()),
        resolution=sensor.resolution,
        values=[value],
        unit="kW",
    )
    await until_stored(data.api, job)

    await data.sensor_values.async_refresh()
    await hass.async_block_till_done()

    entity_id = entity_registry.async_get_entity_id(
        "sensor", DOMAIN, sensor_unique_id(loaded_entry, sensor_id)
    )
    assert entity_id is not None
    state = hass.states.get(entity_id)
    assert state is not None
    assert float(state.state) == pytest.approx(value)
