"""Tests for the measurement actions: upload_history and post_measurements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

from aiohttp import ClientConnectionError
from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)

from custom_components.flexmeasures.const import DOMAIN

from .conftest import POWER_ENTITY, FakeFlexMeasures, posted

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KW = {"unit_of_measurement": "kW"}


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(
    recorder_mock: Any, enable_custom_integrations: None
) -> None:
    """Run every test here with the recorder (set up before Home Assistant)."""


@pytest.fixture
async def entry(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, linked_entry: MockConfigEntry
) -> MockConfigEntry:
    """Return the loaded entry with its battery power link, set up at START."""
    freezer.move_to(START)
    hass.states.async_set(POWER_ENTITY, "1", KW)
    linked_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(linked_entry.entry_id)
    await hass.async_block_till_done()
    return linked_entry


async def test_upload_history(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
) -> None:
    """The recorded history is aggregated, queued and sent in order."""
    history = ((0, "1"), (5, "3"), (15, "5"), (20, "unavailable"), (40, "2"))
    for minute, value in history:
        freezer.move_to(START + timedelta(minutes=minute))
        hass.states.async_set(POWER_ENTITY, value, KW)
        await async_wait_recording_done(hass)
    # The link is added a day later.
    freezer.move_to(START + timedelta(days=1))
    linked_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(linked_entry.entry_id)
    await hass.async_block_till_done()

    response = await hass.services.async_call(
        DOMAIN,
        "upload_history",
        {
            "config_entry": linked_entry.entry_id,
            "entity_id": POWER_ENTITY,
            "start": START.isoformat(),
            "end": (START + timedelta(hours=1, minutes=5)).isoformat(),
        },
        blocking=True,
        return_response=True,
    )
    assert response == {"queued": {"20": 4}, "pending": 0}
    (body,) = posted(fake_server, 20)
    assert body["start"] == START.isoformat()
    # 1 kW for 5 minutes then 3 kW; 5 kW, then a gap; 2 kW from 12:40 on.
    assert body["values"] == pytest.approx([(5 + 30) / 15, 5.0, 2.0, 2.0])
    assert linked_entry.runtime_data.uploader.history_progress is None


@pytest.mark.parametrize(
    ("data", "translation_key"),
    [
        ({"config_entry": "nope"}, "entry_not_found"),
        ({"entity_id": "sensor.other"}, "link_not_found"),
        ({"start": "2026-11-26T13:00:00+00:00"}, "invalid_period"),
        ({"start": "2026-05-01T00:00:00+00:00"}, "period_too_long"),
        ({"recorder": False}, "recorder_not_available"),
    ],
)
async def test_upload_history_validation(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    data: dict[str, Any],
    translation_key: str,
) -> None:
    """Bad input is refused with a translated reason."""
    components = set(hass.config.components)
    if data.pop("recorder", True) is False:
        components.discard("recorder")
    call = {
        "config_entry": entry.entry_id,
        "entity_id": POWER_ENTITY,
        "start": "2026-11-26T10:00:00+00:00",
        "end": "2026-11-26T12:00:00+00:00",
        **data,
    }
    with (
        patch.object(hass.config, "components", components),
        pytest.raises(ServiceValidationError) as err,
    ):
        await hass.services.async_call(
            DOMAIN, "upload_history", call, blocking=True, return_response=True
        )
    assert err.value.translation_key == translation_key


async def test_entry_not_loaded(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """An unloaded entry cannot take actions."""
    assert await hass.config_entries.async_unload(entry.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "post_measurements",
            {
                "config_entry": entry.entry_id,
                "sensor_id": 20,
                "start": START.isoformat(),
                "resolution": "00:15:00",
                "values": [1],
            },
            blocking=True,
        )
    assert err.value.translation_key == "entry_not_loaded"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"resolution": "00:15:00", "values": [1, 2.5]},
            {"duration": timedelta(minutes=30), "values": [1.0, 2.5], "unit": "kW"},
        ),
        (
            {"duration": {"hours": 1}, "values": [1, 2, 3, 4], "unit": "W"},
            {"duration": timedelta(hours=1), "values": [1, 2, 3, 4], "unit": "W"},
        ),
        (
            {"resolution": 0, "values": 7},
            {"duration": timedelta(0), "values": [7.0], "unit": "kW"},
        ),
    ],
)
async def test_post_measurements(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    entry: MockConfigEntry,
    data: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    """Values are posted as given; a time without offset is local time."""
    await hass.config.async_set_time_zone("Europe/Amsterdam")
    await hass.services.async_call(
        DOMAIN,
        "post_measurements",
        {
            "config_entry": entry.entry_id,
            "sensor_id": 20,
            "start": "2026-11-26 13:00:00",
            **data,
        },
        blocking=True,
    )
    (body,) = posted(fake_server, 20)
    assert datetime.fromisoformat(body["start"]) == START
    assert dt_util.parse_duration(body["duration"]) == expected["duration"]
    assert body["values"] == expected["values"]
    assert body["unit"] == expected["unit"]


@pytest.mark.parametrize(
    ("data", "translation_key"),
    [
        ({"sensor_id": 99}, "unknown_sensor"),
        ({"unit": "°C"}, "incompatible_unit"),
        ({"resolution": None}, "resolution_or_duration"),
        ({"duration": "01:00:00"}, "resolution_or_duration"),
        ({"resolution": 0}, "invalid_resolution"),
        ({"resolution": "-00:15:00"}, "invalid_resolution"),
    ],
)
async def test_post_measurements_validation(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    entry: MockConfigEntry,
    data: dict[str, Any],
    translation_key: str,
) -> None:
    """Bad input is refused with a translated reason and nothing is sent."""
    call = {
        "config_entry": entry.entry_id,
        "sensor_id": 20,
        "start": START.isoformat(),
        "resolution": "00:15:00",
        "values": [1, 2],
        **data,
    }
    call = {key: value for key, value in call.items() if value is not None}
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "post_measurements", call, blocking=True)
    assert err.value.translation_key == translation_key
    assert posted(fake_server, 20) == []


@pytest.mark.parametrize(
    ("failure", "translation_key"),
    [
        ({"status": 422}, "post_rejected"),
        ({"error": ClientConnectionError("refused")}, "communication_error"),
    ],
)
async def test_post_measurements_server_errors(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    entry: MockConfigEntry,
    failure: dict[str, Any],
    translation_key: str,
) -> None:
    """Server failures become translated errors without a traceback."""
    path = "POST /api/v3_0/sensors/20/data"
    if "status" in failure:
        fake_server.statuses[path] = failure["status"]
        fake_server.responses[path] = {"message": "Unit mismatch", "status": 422}
    else:
        fake_server.errors[path] = failure["error"]
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN,
            "post_measurements",
            {
                "config_entry": entry.entry_id,
                "sensor_id": 20,
                "start": START.isoformat(),
                "resolution": "00:15:00",
                "values": [1],
            },
            blocking=True,
        )
    assert err.value.translation_key == translation_key
