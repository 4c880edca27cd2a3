"""Tests for FlexMeasures diagnostics."""

from __future__ import annotations

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion

from .conftest import (
    EMAIL,
    PASSWORD,
    RECORDED_AT,
    TOKEN,
    FakeFlexMeasures,
    setup_entry,
)


async def test_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    mock_config_entry: MockConfigEntry,
    fake_server: FakeFlexMeasures,
    freezer: FrozenDateTimeFactory,
    snapshot: SnapshotAssertion,
) -> None:
    """Diagnostics describe the server, account and sensors and hide every secret."""
    freezer.move_to(RECORDED_AT)
    init_integration = await setup_entry(hass, mock_config_entry)
    diagnostics = await get_diagnostics_for_config_entry(
        hass, hass_client, init_integration
    )
    assert diagnostics == snapshot
    text = str(diagnostics)
    for secret in (PASSWORD, EMAIL, TOKEN):
        assert secret not in text
