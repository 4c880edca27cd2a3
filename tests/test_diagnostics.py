"""Tests for FlexMeasures diagnostics."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigSubentryDataWithId
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from custom_components.flexmeasures.s2 import s2_path

from .conftest import BATTERY_SUBENTRY_ID, EMAIL, PASSWORD, TOKEN

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
