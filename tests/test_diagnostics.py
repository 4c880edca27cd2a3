"""Tests for FlexMeasures diagnostics."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigSubentryDataWithId
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
    get_diagnostics_for_device,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from custom_components.flexmeasures.const import DOMAIN
from custom_components.flexmeasures.identity import site_identifier
from custom_components.flexmeasures.s2 import s2_path

from .conftest import (
    BATTERY_SENSOR_ID,
    BATTERY_SUBENTRY_ID,
    EMAIL,
    PASSWORD,
    SITE_SUBENTRY_ID,
    TOKEN,
    UNIQUE_ID,
    battery_device,
    find_device,
    load_fixture,
)

# Logs at debug level, asserted free of the password, token and e-mail.
pytestmark = pytest.mark.usefixtures("no_secrets_logged")


async def test_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_integration: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """Diagnostics describe the server and account and hide every secret."""
    diagnostics = await get_diagnostics_for_config_entry(
        hass, hass_client, init_integration
    )
    assert diagnostics == snapshot
    text = str(diagnostics)
    for secret in (PASSWORD, EMAIL, TOKEN):
        assert secret not in text


@pytest.fixture
def battery_subentry(
    battery_subentry: ConfigSubentryDataWithId,
) -> ConfigSubentryDataWithId:
    """Return the home battery with S2 enabled."""
    data = {**battery_subentry["data"], "s2": {"s2_enabled": True}}
    return ConfigSubentryDataWithId(**{**battery_subentry, "data": data})


async def test_diagnostics_with_controlled_device(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_battery: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """Diagnostics list the controlled devices' schedule and S2 status."""
    diagnostics: dict[str, Any] = await get_diagnostics_for_config_entry(
        hass, hass_client, init_battery
    )
    s2_device = diagnostics["s2"]["devices"][BATTERY_SUBENTRY_ID]
    # The path holds the entry id, which differs per run.
    assert s2_device.pop("path") == s2_path(init_battery.entry_id, BATTERY_SUBENTRY_ID)
    assert {
        "controlled_devices": diagnostics["controlled_devices"],
        "s2": diagnostics["s2"],
    } == snapshot
    assert diagnostics["measurement_uploads"]["links"] == 0


async def test_device_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_battery: MockConfigEntry,
) -> None:
    """A device's diagnostics describe its asset or controlled device, no secret."""
    battery = await get_diagnostics_for_device(
        hass, hass_client, init_battery, battery_device(hass)
    )
    assert battery["asset"] is None
    controlled = battery["controlled_device"]
    assert isinstance(controlled, dict)
    assert controlled["sensor_id"] == BATTERY_SENSOR_ID
    assert battery["s2"] is not None
    asset = find_device(hass, init_battery.entry_id, (DOMAIN, f"{UNIQUE_ID}_asset_11"))
    assert asset is not None
    home_battery = await get_diagnostics_for_device(
        hass, hass_client, init_battery, asset
    )
    sensors = [
        item for item in load_fixture("sensors.json") if item["generic_asset_id"] == 11
    ]
    assert home_battery["asset"] == {
        "id": 11,
        "asset_type": "battery",
        "sensors": len(sensors),
    }
    assert home_battery["controlled_device"] is None
    for secret in (PASSWORD, EMAIL, TOKEN):
        assert secret not in f"{battery}{home_battery}"


async def test_site_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    init_site: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """The entry's and the site device's diagnostics describe the site."""
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, init_site)
    sites = diagnostics["sites"]
    assert isinstance(sites, dict)
    assert sites == snapshot
    site = find_device(hass, init_site.entry_id, site_identifier(SITE_SUBENTRY_ID))
    assert site is not None
    device = await get_diagnostics_for_device(hass, hass_client, init_site, site)
    assert device["site"] == sites[SITE_SUBENTRY_ID]
    assert device["controlled_device"] is None
