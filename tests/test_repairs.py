"""Tests for the repair flow that discards measurements FlexMeasures refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from custom_components.flexmeasures.const import DOMAIN
from custom_components.flexmeasures.uploader import issue_id_for

from .conftest import POWER_ENTITY, FakeFlexMeasures

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PATH = "POST /api/v3_0/sensors/20/data"


@pytest.fixture
async def refused(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
) -> str:
    """Let the server refuse the link's first slot; return the issue id."""
    assert await async_setup_component(hass, "repairs", {})
    freezer.move_to(START)
    hass.states.async_set(POWER_ENTITY, "2", {"unit_of_measurement": "kW"})
    fake_server.statuses[PATH] = 403
    fake_server.responses[PATH] = {"message": "No permission", "status": 403}
    linked_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(linked_entry.entry_id)
    await hass.async_block_till_done()
    freezer.move_to(START + timedelta(minutes=15))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    return issue_id_for(next(iter(linked_entry.subentries)))


async def start_fix(hass: HomeAssistant, issue_id: str) -> Any:
    """Start the issue's fix flow."""
    manager = hass.data["repairs"]["flow_manager"]
    return await manager.async_init(DOMAIN, data={"issue_id": issue_id})


async def test_discard_pending(
    hass: HomeAssistant,
    linked_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    refused: str,
) -> None:
    """Confirming the fix throws the link's pending values away."""
    uploader = linked_entry.runtime_data.uploader
    assert uploader.pending_count == 1
    result = await start_fix(hass, refused)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "confirm"
    assert result["description_placeholders"]["count"] == "1"
    assert "No permission" in result["description_placeholders"]["error"]

    manager = hass.data["repairs"]["flow_manager"]
    result = await manager.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert uploader.pending_count == 0
    assert issue_registry.async_get_issue(DOMAIN, refused) is None
    assert not next(iter(uploader.links.values())).rejected


async def test_link_gone(
    hass: HomeAssistant, linked_entry: MockConfigEntry, refused: str
) -> None:
    """A fix for a link that no longer runs aborts."""
    assert await hass.config_entries.async_unload(linked_entry.entry_id)
    await hass.async_block_till_done()
    result = await start_fix(hass, refused)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "link_not_found"


async def test_discard_unknown_link(
    hass: HomeAssistant, linked_entry: MockConfigEntry, refused: str
) -> None:
    """Discarding a link that does not exist discards nothing."""
    assert linked_entry.runtime_data.uploader.async_discard("nope") == 0
