"""Scheduling a controlled device (issue 6) against the real server."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from homeassistant.components.calendar import CalendarEntity
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.entity_component import async_update_entity
from homeassistant.util import dt as dt_util
import pytest

from custom_components.flexmeasures.const import (
    DOMAIN,
    EVENT_SCHEDULE_UPDATED,
    SUBENTRY_CONTROLLED_DEVICE,
)
from custom_components.flexmeasures.data import FlexMeasuresConfigEntry

from .conftest import LiveServer, quarter_floor, simulate_soc

SOC_ENTITY = "sensor.live_battery_soc"
CAPACITY_KWH = 10.0
SOC_MIN, SOC_MAX, SOC_NOW, SOC_TARGET = 10.0, 90.0, 30.0, 80.0  # %
POWER_KW = 5.0
EFFICIENCY = 0.9
TOLERANCE_PCT = 0.1  # % of 10 kWh = 0.01 kWh
SOC_ATTRIBUTES = {"unit_of_measurement": "%", "device_class": "battery"}
EVENT_TIMEOUT = 90.0  # seconds; a 12-hour battery schedule takes a few seconds


def _entity_id(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry, subentry_id: str, key: str
) -> str:
    """Return the entity id of a controlled device's entity by translation key."""
    (entity_id,) = (
        entity.entity_id
        for entity in er.async_entries_for_config_entry(
            er.async_get(hass), entry.entry_id
        )
        if entity.config_subentry_id == subentry_id and entity.translation_key == key
    )
    return entity_id


async def _add_battery(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry, live_server: LiveServer
) -> str:
    """Add the seeded battery through the real subentry flow; return its id."""
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CONTROLLED_DEVICE), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            "name": "Live battery",
            "kind": "battery",
            "power_sensor": str(live_server.sensors["battery_power"]),
            "soc_entity": SOC_ENTITY,
            "soc_unit": "percent",
            "capacity": CAPACITY_KWH,
            "soc_min": SOC_MIN,
            "soc_max": SOC_MAX,
            "charge_power": POWER_KW,
            "discharge_power": POWER_KW,
            "roundtrip_efficiency": EFFICIENCY * 100,
            "consumption_price_sensor": str(live_server.sensors["price"]),
            "horizon": 12,
            "auto_reschedule": {},
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    # A new controlled device reloads the entry to add its entities.
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    (subentry_id,) = (
        subentry.subentry_id
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_CONTROLLED_DEVICE
    )
    assert subentry_id in entry.runtime_data.schedulers
    return subentry_id


def device_id_of(
    hass: HomeAssistant, entry: FlexMeasuresConfigEntry, identifier: tuple[str, str]
) -> str:
    """Return the device registry id of an entry's device with this identifier."""
    (device_id,) = (
        device.id
        for device in dr.async_entries_for_config_entry(
            dr.async_get(hass), entry.entry_id
        )
        if identifier in device.identifiers
    )
    return device_id


async def test_trigger_schedule_end_to_end(
    hass: HomeAssistant, live_server: LiveServer, loaded_entry: FlexMeasuresConfigEntry
) -> None:
    """A schedule for the seeded battery meets its target and reaches every entity."""
    hass.states.async_set(SOC_ENTITY, str(SOC_NOW), SOC_ATTRIBUTES)
    subentry_id = await _add_battery(hass, loaded_entry, live_server)
    scheduler = loaded_entry.runtime_data.schedulers[subentry_id]
    device_id = device_id_of(hass, loaded_entry, scheduler.device_identifier)

    start = quarter_floor(dt_util.utcnow())
    target_at = start + timedelta(hours=8)
    response: Any = await hass.services.async_call(
        DOMAIN,
        "trigger_schedule",
        {
            "device_id": device_id,
            "start": start,
            "duration": timedelta(hours=12),
            "soc_targets": [{"datetime": target_at, "value": SOC_TARGET}],
            "force": True,
        },
        blocking=True,
        return_response=True,
    )

    assert response["status"] == "ready"
    assert response["unit"] == "kW"
    assert response["soc_unit"] == "%"
    resolution = timedelta(minutes=15)
    assert response["resolution"] in ("PT15M", "0:15:00")
    assert datetime.fromisoformat(response["start"]) == start
    values: list[float] = response["values"]
    assert len(values) == 48
    assert all(abs(value) <= POWER_KW + 1e-6 for value in values)
    assert any(value > 0 for value in values)
    socs: list[float] = response["soc"]
    assert response["soc_at_start"] == pytest.approx(SOC_NOW)
    low, high = SOC_MIN - TOLERANCE_PCT, SOC_MAX + TOLERANCE_PCT
    assert all(low <= soc <= high for soc in socs)
    target_index = int((target_at - start) / resolution) - 1  # SoC at slot ends
    assert socs[target_index] >= SOC_TARGET - TOLERANCE_PCT

    # Independently of the integration: simulate from the returned power values.
    kwh = simulate_soc(
        soc_at_start=SOC_NOW / 100 * CAPACITY_KWH,
        power_kw=values,
        resolution=resolution,
        roundtrip_efficiency=EFFICIENCY,
    )
    low_kwh, high_kwh = SOC_MIN / 100 * CAPACITY_KWH, SOC_MAX / 100 * CAPACITY_KWH
    assert all(low_kwh - 0.01 <= soc <= high_kwh + 0.01 for soc in kwh)
    assert kwh[target_index + 1] >= SOC_TARGET / 100 * CAPACITY_KWH - 0.01
    assert [soc / CAPACITY_KWH * 100 for soc in kwh[1:]] == pytest.approx(
        socs, abs=1e-3
    )

    # The entities follow the schedule.
    await hass.async_block_till_done()
    status = hass.states.get(
        _entity_id(hass, loaded_entry, subentry_id, "schedule_status")
    )
    assert status is not None
    assert status.state == "ready"
    power_entity = _entity_id(hass, loaded_entry, subentry_id, "planned_power")
    before = dt_util.utcnow()
    await async_update_entity(hass, power_entity)
    after = dt_util.utcnow()
    planned = hass.states.get(power_entity)
    assert planned is not None
    # The current slot's value (either one, should a slot boundary pass meanwhile).
    current = {values[int((moment - start) / resolution)] for moment in (before, after)}
    assert any(
        float(planned.state) == pytest.approx(value, abs=1e-3) for value in current
    ), (planned.state, current)

    calendar_id = _entity_id(hass, loaded_entry, subentry_id, "plan")
    calendar: CalendarEntity = next(
        entity
        for entity in hass.data["calendar"].entities
        if entity.entity_id == calendar_id
    )
    events = await calendar.async_get_events(hass, start, start + timedelta(hours=12))
    charging = [event for event in events if event.summary == "Charging"]
    assert charging
    # Each charging window covers exactly the slots with positive power.
    charging_slots = {
        start + resolution * index for index, value in enumerate(values) if value > 0
    }
    covered: set[datetime] = set()
    for event in charging:
        assert isinstance(event.start, datetime)
        assert isinstance(event.end, datetime)
        steps = int((event.end - event.start) / resolution)
        covered.update(event.start + resolution * step for step in range(steps))
    assert covered == charging_slots

    # Without a response: returns once the job is queued, the event follows.
    updated: list[Event] = []
    fired = asyncio.Event()

    @callback
    def _updated(event: Event) -> None:
        updated.append(event)
        fired.set()

    hass.bus.async_listen(EVENT_SCHEDULE_UPDATED, _updated)
    assert (
        await hass.services.async_call(
            DOMAIN,
            "trigger_schedule",
            {
                "device_id": device_id,
                "start": start,
                "duration": timedelta(hours=12),
                "soc_targets": [{"datetime": target_at, "value": SOC_TARGET}],
                "force": True,
            },
            blocking=True,
        )
        is None
    )
    assert not updated  # the call did not wait for the schedule
    async with asyncio.timeout(EVENT_TIMEOUT):
        await fired.wait()
    (fired_event,) = updated
    assert fired_event.data["device_id"] == device_id
    assert fired_event.data["summary"]["charging_windows"] == len(charging)
    assert fired_event.data["summary"]["soc_at_end"] >= SOC_MIN


async def test_planned_power_from_the_moment_the_plan_arrives(
    hass: HomeAssistant, live_server: LiveServer, loaded_entry: FlexMeasuresConfigEntry
) -> None:
    """A plan asked for without a start covers now: planned power is a number at once.

    FlexMeasures 1.0.1 accepts a start at the beginning of the current slot; the
    entities have their value when the plan's event fires, not a slot later.
    """
    hass.states.async_set(SOC_ENTITY, str(SOC_NOW), SOC_ATTRIBUTES)
    subentry_id = await _add_battery(hass, loaded_entry, live_server)
    scheduler = loaded_entry.runtime_data.schedulers[subentry_id]
    device_id = device_id_of(hass, loaded_entry, scheduler.device_identifier)
    power_entity = _entity_id(hass, loaded_entry, subentry_id, "planned_power")
    charging_entity = _entity_id(hass, loaded_entry, subentry_id, "charging_planned")
    states = hass.states.get(power_entity), hass.states.get(charging_entity)
    assert [state.state if state else None for state in states] == ["unknown"] * 2

    seen: dict[str, Any] = {}
    fired = asyncio.Event()

    @callback
    def _updated(event: Event) -> None:
        # The entities as they are when the plan is announced.
        now = dt_util.utcnow()
        power, charging = (
            hass.states.get(power_entity),
            hass.states.get(charging_entity),
        )
        seen.update(
            now=now,
            power=power.state if power else None,
            charging=charging.state if charging else None,
            start=event.data["start"],
        )
        fired.set()

    hass.bus.async_listen(EVENT_SCHEDULE_UPDATED, _updated)
    asked = dt_util.utcnow()
    await hass.services.async_call(
        DOMAIN,
        "trigger_schedule",
        {"device_id": device_id, "duration": timedelta(hours=12), "force": True},
        blocking=True,
    )
    async with asyncio.timeout(EVENT_TIMEOUT):
        await fired.wait()

    schedule = scheduler.schedule
    assert schedule is not None
    # The plan starts at the beginning of the slot the request was made in.
    assert datetime.fromisoformat(seen["start"]) == quarter_floor(asked)
    assert schedule.start == quarter_floor(asked)
    planned_now = schedule.power_at(seen["now"])
    assert planned_now is not None
    assert float(seen["power"]) == pytest.approx(planned_now, abs=1e-3)
    assert seen["charging"] == ("on" if planned_now > 0.001 else "off")
