"""Tests for FlexMeasures asset devices."""

from __future__ import annotations

from typing import Any

from homeassistant.const import CONF_EMAIL, CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures.api import Asset
from custom_components.flexmeasures.const import DOMAIN
from custom_components.flexmeasures.coordinator import Inventory
from custom_components.flexmeasures.entity import async_sync_devices

from .conftest import EMAIL, SERVER_URL, UNIQUE_ID, FakeFlexMeasures, find_device

pytestmark = pytest.mark.freeze_time("2026-11-02T10:07:30+00:00")


def _find(hass: HomeAssistant, asset_id: int) -> dr.DeviceEntry | None:
    """Return the device of an asset, if any."""
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    return find_device(hass, entry.entry_id, (DOMAIN, f"{UNIQUE_ID}_asset_{asset_id}"))


def _device(hass: HomeAssistant, asset_id: int) -> dr.DeviceEntry:
    """Return the device of an asset."""
    device = _find(hass, asset_id)
    assert device is not None
    return device


async def test_asset_devices(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    device_registry: dr.DeviceRegistry,
) -> None:
    """Each asset is a device with its type, its parent and its page."""
    home = _device(hass, 10)
    battery = _device(hass, 11)
    charger = _device(hass, 12)
    assert (home.name, home.model, home.manufacturer) == (
        "Home",
        "building",
        "FlexMeasures",
    )
    assert home.configuration_url == f"{SERVER_URL}/assets/10"
    assert home.via_device_id is None
    assert (battery.name, battery.model) == ("Home battery", "battery")
    assert battery.via_device_id == home.id
    assert charger.via_device_id == home.id
    assert (
        len(
            [
                device
                for device in dr.async_entries_for_config_entry(
                    device_registry, init_integration.entry_id
                )
                # The account's own device holds the uploader's diagnostic sensors.
                if device.entry_type is None
            ]
        )
        == 3
    )


async def test_asset_without_sensors_is_a_device(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_server: FakeFlexMeasures,
    device_registry: dr.DeviceRegistry,
) -> None:
    """A new asset appears as a device without a reload, renamed assets follow."""
    assets = fake_server.responses["GET /api/v3_0/assets"]
    assets[0]["name"] = "Our home"
    assets.append(
        {
            "id": 13,
            "name": "Heat pump",
            "account_id": 3,
            "generic_asset_type": {"id": 4, "name": "heat pump"},
            "parent_asset_id": 10,
        }
    )
    await init_integration.runtime_data.inventory.async_refresh()
    await hass.async_block_till_done()

    heat_pump = _device(hass, 13)
    assert heat_pump.name == "Heat pump"
    assert heat_pump.via_device_id == _device(hass, 10).id
    assert _device(hass, 10).name == "Our home"


async def test_deleted_asset_device_removed(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_server: FakeFlexMeasures,
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
) -> None:
    """An asset deleted on the server takes its device and entities along."""
    fake_server.responses["GET /api/v3_0/assets"] = [
        asset for asset in fake_server.responses["GET /api/v3_0/assets"]
        if asset["id"] != 12
    ]  # fmt: skip
    fake_server.responses["GET /api/v3_0/sensors"] = [
        sensor for sensor in fake_server.responses["GET /api/v3_0/sensors"]
        if sensor["generic_asset_id"] != 12
    ]  # fmt: skip
    # A device of this entry that is not an asset is left alone.
    other = device_registry.async_get_or_create(
        config_entry_id=init_integration.entry_id,
        identifiers={(DOMAIN, f"{UNIQUE_ID}_something_else")},
    )
    await init_integration.runtime_data.inventory.async_refresh()
    await hass.async_block_till_done()

    assert _find(hass, 12) is None
    assert device_registry.async_get(other.id) is not None
    assert entity_registry.async_get("sensor.ev_charger_charging_power") is None
    assert hass.states.get("sensor.ev_charger_charging_power") is None
    assert hass.states.get("sensor.home_battery_power") is not None


async def test_parents_created_first_and_cycles_end(
    hass: HomeAssistant,
    device_registry: dr.DeviceRegistry,
) -> None:
    """Children listed before parents still get their hub; a cycle does not hang."""
    entry = MockConfigEntry(
        domain=DOMAIN, unique_id=UNIQUE_ID, data={"url": SERVER_URL}
    )
    entry.add_to_hass(hass)

    def asset(asset_id: int, parent_id: int | None) -> Asset:
        return Asset(
            id=asset_id,
            name=f"a{asset_id}",
            account_id=3,
            asset_type=None,
            parent_id=parent_id,
        )

    inventory = Inventory(
        assets={
            3: asset(3, 2),
            2: asset(2, 1),
            1: asset(1, None),
            5: asset(5, 6),
            6: asset(6, 5),
            7: asset(7, 99),
            8: asset(8, 8),
        },
        sensors={},
    )
    async_sync_devices(hass, entry, inventory)
    assert _device(hass, 3).via_device_id == _device(hass, 2).id
    assert _device(hass, 2).via_device_id == _device(hass, 1).id
    assert _device(hass, 7).via_device_id is None
    assert _device(hass, 8).via_device_id is None
    assert {
        _device(hass, 5).via_device_id,
        _device(hass, 6).via_device_id,
    } <= {None, _device(hass, 5).id, _device(hass, 6).id}


async def test_reconfigure_new_url_keeps_devices_and_entities(
    hass: HomeAssistant,
    init_battery: MockConfigEntry,
) -> None:
    """A server that moved keeps every device, entity and id, unchanged."""
    entity_registry = er.async_get(hass)
    device_registry = dr.async_get(hass)

    def registry() -> tuple[set[tuple[str, str, str | None]], dict[str, Any]]:
        entities = {
            (entity.entity_id, entity.unique_id, entity.name)
            for entity in er.async_entries_for_config_entry(
                entity_registry, init_battery.entry_id
            )
        }
        devices = {
            device.id: device.identifiers
            for device in dr.async_entries_for_config_entry(
                device_registry, init_battery.entry_id
            )
        }
        return entities, devices

    renamed = er.async_entries_for_config_entry(entity_registry, init_battery.entry_id)[
        0
    ].entity_id
    entity_registry.async_update_entity(renamed, name="My name")
    before = registry()
    # Controlled devices (keyed by their subentry) are among them.
    assert any(
        entity.config_subentry_id
        for entity in er.async_entries_for_config_entry(
            entity_registry, init_battery.entry_id
        )
    )

    result = await init_battery.start_reconfigure_flow(hass)
    new_url = "https://flexmeasures.example.org"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: new_url, CONF_EMAIL: EMAIL}
    )
    await hass.async_block_till_done()
    assert result["reason"] == "reconfigure_successful"
    assert init_battery.data[CONF_URL] == new_url
    assert init_battery.unique_id == UNIQUE_ID

    assert registry() == before
    ids = [unique_id for _, unique_id, _ in before[0]] + [
        identifier
        for identifiers in before[1].values()
        for _, identifier in identifiers
    ]
    assert ids
    for identifier in ids:
        assert "example" not in identifier
        assert "://" not in identifier
    for entity_id, _, _ in before[0]:
        state = hass.states.get(entity_id)
        assert state is None or state.state != "unavailable", entity_id
