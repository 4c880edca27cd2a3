"""Setting up, reauthenticating and unloading against the real FlexMeasures server."""

from __future__ import annotations

from datetime import timedelta

from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import CONF_PASSWORD, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures.data import FlexMeasuresConfigEntry

from .conftest import LiveServer


async def test_setup_reads_the_seeded_inventory(
    hass: HomeAssistant, live_server: LiveServer, loaded_entry: FlexMeasuresConfigEntry
) -> None:
    """The entry loads and knows the account's assets and sensors, and only those."""
    data = loaded_entry.runtime_data
    assert data.server.account_id == live_server.home.account_id
    assert data.server.account_name == live_server.home.account_name
    assert data.server.version == live_server.version

    inventory = data.inventory.data
    assert set(live_server.assets.values()) <= set(inventory.assets)
    assert not live_server.other_asset_ids & set(inventory.assets)
    battery = inventory.assets[live_server.assets["battery"]]
    assert battery.parent_id == live_server.assets["site"]
    assert battery.flex_model == live_server.battery_flex_model
    site = inventory.assets[live_server.assets["site"]]
    assert site.flex_context == live_server.site_flex_context

    for key, sensor_id in live_server.sensors.items():
        assert inventory.sensors[sensor_id].unit == live_server.units[key]
    power = inventory.sensors[live_server.sensors["battery_power"]]
    assert power.asset_id == live_server.assets["battery"]
    assert power.resolution == timedelta(minutes=15)


async def test_entities_are_available(
    hass: HomeAssistant,
    entity_registry: er.EntityRegistry,
    loaded_entry: FlexMeasuresConfigEntry,
) -> None:
    """Every enabled entity the entry creates has a state from the real server."""
    entries = er.async_entries_for_config_entry(entity_registry, loaded_entry.entry_id)
    states = {
        entity.entity_id: hass.states.get(entity.entity_id)
        for entity in entries
        if entity.disabled_by is None  # disabled by default: no state, by design
    }
    unavailable = {
        entity_id
        for entity_id, state in states.items()
        if state is None or state.state == STATE_UNAVAILABLE
    }
    assert unavailable == set()
    assert loaded_entry.state is ConfigEntryState.LOADED


async def test_unload(
    hass: HomeAssistant, loaded_entry: FlexMeasuresConfigEntry
) -> None:
    """A loaded entry unloads cleanly."""
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.NOT_LOADED


async def test_changed_password_leads_to_reauth(
    hass: HomeAssistant, live_server: LiveServer, live_entry: MockConfigEntry
) -> None:
    """A refused password stops set-up and asks for a new one, which then works."""
    hass.config_entries.async_update_entry(
        live_entry, data={**live_entry.data, CONF_PASSWORD: "an-old-password"}
    )
    await hass.config_entries.async_setup(live_entry.entry_id)
    await hass.async_block_till_done()
    assert live_entry.state is ConfigEntryState.SETUP_ERROR

    flows = hass.config_entries.flow.async_progress_by_handler(
        live_entry.domain, match_context={"source": SOURCE_REAUTH}
    )
    assert len(flows) == 1
    result = await hass.config_entries.flow.async_configure(
        flows[0]["flow_id"], {CONF_PASSWORD: live_server.home.password}
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert live_entry.state is ConfigEntryState.LOADED  # type: ignore[comparison-overlap]
