"""Tests for the S2 entities of controlled devices."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.flexmeasures.const import DOMAIN

from . import s2_helpers
from .conftest import entity_snapshot

# Logs at debug level, asserted free of the password, token and e-mail.
pytestmark = pytest.mark.usefixtures("no_secrets_logged")

# The S2 entry's fixtures (s2_integration sets up this mock_config_entry,
# not the one of conftest.py).
fake_s2_server = s2_helpers.fake_s2_server
mock_config_entry = s2_helpers.mock_config_entry
s2_integration = s2_helpers.s2_integration


async def test_entities(
    hass: HomeAssistant,
    s2_integration: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """S2-enabled controlled devices get the S2 entities, on their own device."""
    assert entity_snapshot(hass, s2_integration.entry_id) == snapshot
    s2_entities = [
        entity
        for entity in er.async_entries_for_config_entry(
            er.async_get(hass), s2_integration.entry_id
        )
        if (entity.translation_key or "").startswith("s2_")
    ]
    assert sorted({str(entity.config_subentry_id) for entity in s2_entities}) == [
        "battery",
        "heat_pump",
    ]
    # The last-instruction time is a diagnostic, disabled until the user wants it.
    assert {entity.translation_key for entity in s2_entities if entity.disabled_by} == {
        "s2_last_instruction"
    }
    for entity in s2_entities:
        device = dr.async_get(hass).async_get(entity.device_id or "")
        assert device is not None
        assert entity.config_subentry_id is not None
        assert entity.unique_id.startswith(entity.config_subentry_id)
        assert (
            DOMAIN,
            f"controlled_device_{entity.config_subentry_id}",
        ) in device.identifiers
