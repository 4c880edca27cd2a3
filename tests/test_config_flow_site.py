"""The site subentry flow: devices planned together, their asset, grid and prices."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigSubentryDataWithId
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures.const import (
    CONFIG_ENTRY_MINOR_VERSION,
    DOMAIN,
    SUBENTRY_SITE,
)

from .conftest import (
    BATTERY_DATA,
    BATTERY_SUBENTRY_ID,
    ENTRY_DATA,
    EV_DATA,
    EV_SOC_ENTITY,
    EV_SUBENTRY_ID,
    SERVER_URL,
    SITE_SUBENTRY_ID,
    SOC_ENTITY,
    UNIQUE_ID,
    FakeScheduling,
    FakeSiteScheduling,
    ev_subentry,
    setup_entry,
)
from .flow_helpers import changed, start_flow, suggested

SITE_INPUT: dict[str, Any] = {
    "name": "Home site",
    "devices": [BATTERY_SUBENTRY_ID, EV_SUBENTRY_ID],
    "site_power_capacity": 10,
    "consumption_price_sensor": "30",
    "inflexible_sensors": ["31"],
    "replan_on_prices": True,
}


def _entry(*subentries: ConfigSubentryDataWithId) -> MockConfigEntry:
    """Return an entry with these subentries."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"Home ({SERVER_URL})",
        unique_id=UNIQUE_ID,
        data=dict(ENTRY_DATA),
        version=1,
        minor_version=CONFIG_ENTRY_MINOR_VERSION,
        subentries_data=list(subentries),
    )


def _device(subentry_id: str, data: dict[str, Any]) -> ConfigSubentryDataWithId:
    """Return a controlled-device subentry."""
    return ConfigSubentryDataWithId(
        data=data,
        subentry_id=subentry_id,
        subentry_type="controlled_device",
        title=data["name"],
        unique_id=f"controlled_device_{data['power_sensor']}",
    )


@pytest.fixture
async def two_devices(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    fake_site: FakeSiteScheduling,
    battery_subentry: ConfigSubentryDataWithId,
) -> MockConfigEntry:
    """Return a loaded entry with the battery and the EV charger, no site."""
    hass.states.async_set(SOC_ENTITY, "50", {"unit_of_measurement": "%"})
    hass.states.async_set(EV_SOC_ENTITY, "12", {"unit_of_measurement": "kWh"})
    return await setup_entry(hass, _entry(battery_subentry, ev_subentry()))


async def test_site_user_flow(
    hass: HomeAssistant, two_devices: MockConfigEntry
) -> None:
    """A site of both devices: the common parent asset is found, the site set up."""
    result = await start_flow(hass, two_devices, SUBENTRY_SITE)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], SITE_INPUT
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {
        "name": "Home site",
        "devices": [BATTERY_SUBENTRY_ID, EV_SUBENTRY_ID],
        "asset_id": 10,
        "site_power_capacity": 10.0,
        "consumption_price_sensor": 30,
        "inflexible_sensors": [31],
        "replan_on_prices": True,
    }
    await hass.async_block_till_done()
    (site,) = two_devices.runtime_data.sites.values()
    assert site.config.asset_id == 10
    assert [device.name for device in site.devices] == ["Home battery", "EV charger"]


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"devices": [BATTERY_SUBENTRY_ID]}, {"devices": "too_few_devices"}),
        ({"asset_id": "11"}, {"asset_id": "asset_not_ancestor"}),
        (
            {"inflexible_sensors": ["20"]},
            {"inflexible_sensors": "inflexible_is_device"},
        ),
        (
            {"consumption_price_sensor": None},
            {"replan_on_prices": "replan_needs_prices"},
        ),
    ],
)
async def test_site_user_flow_errors(
    hass: HomeAssistant,
    two_devices: MockConfigEntry,
    change: dict[str, Any],
    errors: dict[str, str],
) -> None:
    """Each inconsistency is shown at its field; fixed, the site is created."""
    result = await start_flow(hass, two_devices, SUBENTRY_SITE)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], changed(SITE_INPUT, change)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**SITE_INPUT, "asset_id": "10"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()


async def test_device_in_another_site(
    hass: HomeAssistant, init_site: MockConfigEntry
) -> None:
    """A device belongs to one site only."""
    result = await start_flow(hass, init_site, SUBENTRY_SITE)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], SITE_INPUT
    )
    assert result["errors"] == {"devices": "device_in_other_site"}


async def test_no_common_asset(
    hass: HomeAssistant, fake_scheduling: FakeScheduling
) -> None:
    """Devices the inventory does not know leave the site asset to choose."""
    entry = await setup_entry(
        hass,
        _entry(
            _device("unknown01", {**BATTERY_DATA, "power_sensor": 998}),
            _device("unknown02", {**EV_DATA, "power_sensor": 999}),
        ),
    )
    result = await start_flow(hass, entry, SUBENTRY_SITE)
    devices = {"devices": ["unknown01", "unknown02"], "replan_on_prices": False}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "Site", **devices}
    )
    assert result["errors"] == {"asset_id": "no_common_asset"}
    # Any asset then: the inventory cannot say it does not hold them.
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "Site", **devices, "asset_id": "12"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["asset_id"] == 12
    await hass.async_block_till_done()


async def test_site_reconfigure(
    hass: HomeAssistant, init_site: MockConfigEntry
) -> None:
    """The form shows the site as stored; a change is saved and reloads."""
    result = await start_flow(hass, init_site, SUBENTRY_SITE, SITE_SUBENTRY_ID)
    assert result["step_id"] == "reconfigure"
    schema = result["data_schema"]
    assert schema is not None
    values = suggested(schema)
    assert values["asset_id"] == "10"
    assert values["inflexible_sensors"] == ["31"]
    assert values["consumption_price_sensor"] == "30"
    assert values["site_power_capacity"] == 10.0
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {**SITE_INPUT, "asset_id": "10", "site_power_capacity": 12},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    site = init_site.runtime_data.sites[SITE_SUBENTRY_ID]
    assert site.config.site_power_capacity_kva == 12.0


async def test_site_needs_a_loaded_entry_and_two_devices(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    battery_subentry: ConfigSubentryDataWithId,
) -> None:
    """Without a loaded entry, or with one device, there is no site to make."""
    hass.states.async_set(SOC_ENTITY, "50", {"unit_of_measurement": "%"})
    entry = _entry(battery_subentry)
    entry.add_to_hass(hass)
    result = await start_flow(hass, entry, SUBENTRY_SITE)
    assert result["reason"] == "entry_not_loaded"
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    result = await start_flow(hass, entry, SUBENTRY_SITE)
    assert result["reason"] == "too_few_controlled_devices"
