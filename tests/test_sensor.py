"""Tests for the FlexMeasures sensors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from syrupy.assertion import SnapshotAssertion

from .conftest import POWER_ENTITY, entity_snapshot

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PENDING = "sensor.home_pending_measurements"
LAST_UPLOAD = "sensor.home_last_measurement_upload"


async def test_uploader_sensors(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    linked_entry: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """The backlog and the last upload are diagnostic sensors; both survive reloads."""
    freezer.move_to(START)
    hass.states.async_set(POWER_ENTITY, "2", {"unit_of_measurement": "kW"})
    linked_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(linked_entry.entry_id)
    await hass.async_block_till_done()
    assert entity_snapshot(hass, linked_entry.entry_id) == snapshot

    uploaded = START + timedelta(minutes=15)
    freezer.move_to(uploaded)
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert hass.states.get(PENDING).state == "0"  # type: ignore[union-attr]
    assert hass.states.get(LAST_UPLOAD).state == uploaded.isoformat()  # type: ignore[union-attr]

    assert await hass.config_entries.async_reload(linked_entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(LAST_UPLOAD).state == uploaded.isoformat()  # type: ignore[union-attr]
