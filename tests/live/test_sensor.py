"""Sensor entities of the seeded FlexMeasures sensors, on the real server."""

from __future__ import annotations

from datetime import timedelta
import random
from typing import Final

from homeassistant.const import ATTR_UNIT_OF_MEASUREMENT
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.util import dt as dt_util
import pytest

from custom_components.flexmeasures.const import DOMAIN
from custom_components.flexmeasures.data import FlexMeasuresConfigEntry
from custom_components.flexmeasures.identity import asset_identifier, sensor_unique_id

from .conftest import LiveServer, quarter_floor, until_stored

# A power sensor nothing plans (the test creates it on first use).
MEASURED_ONLY: Final = "live measured-only power"


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
    """A value posted for the current slot is the entity's state after a refresh.

    On a sensor of its own: the seeded power sensors are also planned (device
    and site plans, the recordings), and FlexMeasures 1.0.1 may answer a plan's
    belief for the current slot instead of a measurement.
    """
    data = loaded_entry.runtime_data
    sensor = next(
        (
            known
            for known in data.inventory.data.sensors.values()
            if known.name == MEASURED_ONLY
            and known.asset_id == live_server.assets["ev_charger"]
        ),
        None,
    )
    if sensor is None:
        sensor = await data.api.async_add_sensor(
            asset_id=live_server.assets["ev_charger"],
            name=MEASURED_ONLY,
            unit="kW",
            resolution=timedelta(minutes=15),
            timezone="Europe/Amsterdam",
        )
        # A new sensor becomes an entity with the next inventory refresh.
        await data.inventory.async_refresh()
        await hass.async_block_till_done()
    sensor_id = sensor.id
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
