"""One FlexMeasures sensor both measured and planned, and the subentry id migration."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import (
    SOURCE_USER,
    ConfigEntryState,
    ConfigSubentryDataWithId,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures.const import (
    CONFIG_ENTRY_MINOR_VERSION,
    DOMAIN,
    SUBENTRY_CONTROLLED_DEVICE,
    SUBENTRY_MEASUREMENT_LINK,
)

from .conftest import (
    BATTERY_DATA,
    BATTERY_SENSOR_ID,
    ENTRY_DATA,
    LINK_DATA,
    OLD_UNIQUE_ID,
    POWER_ENTITY,
    SERVER_URL,
    SOC_ENTITY,
    FakeFlexMeasures,
    FakeScheduling,
)

KW = {"unit_of_measurement": "kW", "state_class": "measurement"}
DEVICE_INPUT: dict[str, Any] = {
    "name": "Home battery",
    "kind": "battery",
    "power_sensor": str(BATTERY_SENSOR_ID),
    "soc_entity": SOC_ENTITY,
    "soc_unit": "percent",
    "capacity": 10,
    "soc_min": 10,
    "soc_max": 90,
    "charge_power": 5,
    "discharge_power": 5,
    "consumption_price_sensor": "30",
    "horizon": 24,
    "auto_reschedule": {},
    "s2": {},
}
LINK_FORM: dict[str, Any] = {
    "sensor": str(BATTERY_SENSOR_ID),
    "invert": False,
    "aggregation": "mean",
    "upload_interval": {"hours": 0, "minutes": 5, "seconds": 0},
}


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> MockConfigEntry:
    """Set the entry up with the battery's SoC and power entities present."""
    hass.states.async_set(SOC_ENTITY, "50", {"unit_of_measurement": "%"})
    hass.states.async_set(POWER_ENTITY, "1.0", KW)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


def _by_type(entry: MockConfigEntry) -> dict[str, list[str | None]]:
    """Return the unique ids of the entry's subentries per type."""
    result: dict[str, list[str | None]] = {}
    for subentry in entry.subentries.values():
        result.setdefault(subentry.subentry_type, []).append(subentry.unique_id)
    return result


async def test_planned_sensor_can_also_be_measured(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    battery_entry: MockConfigEntry,
) -> None:
    """A measurement link to the controlled device's power sensor is created."""
    entry = await _setup(hass, battery_entry)
    fake_scheduling.server.responses[
        f"POST /api/v3_0/sensors/{BATTERY_SENSOR_ID}/data"
    ] = {"status": "PROCESSED"}
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_MEASUREMENT_LINK), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"entity_id": POWER_ENTITY}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], LINK_FORM
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert _by_type(entry) == {
        SUBENTRY_CONTROLLED_DEVICE: [f"controlled_device_{BATTERY_SENSOR_ID}"],
        SUBENTRY_MEASUREMENT_LINK: [f"measurement_link_{BATTERY_SENSOR_ID}"],
    }
    assert entry.state is ConfigEntryState.LOADED
    assert len(entry.runtime_data.uploader.links) == 1


async def test_measured_sensor_can_also_be_planned(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    linked_entry: MockConfigEntry,
) -> None:
    """A controlled device on the power sensor a link already sends to is created."""
    entry = await _setup(hass, linked_entry)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CONTROLLED_DEVICE), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], DEVICE_INPUT
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert _by_type(entry) == {
        SUBENTRY_MEASUREMENT_LINK: [f"measurement_link_{BATTERY_SENSOR_ID}"],
        SUBENTRY_CONTROLLED_DEVICE: [f"controlled_device_{BATTERY_SENSOR_ID}"],
    }
    assert entry.state is ConfigEntryState.LOADED


async def test_same_type_twice_is_still_refused(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    battery_entry: MockConfigEntry,
) -> None:
    """A second controlled device on the same power sensor is refused on its field."""
    entry = await _setup(hass, battery_entry)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CONTROLLED_DEVICE), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**DEVICE_INPUT, "name": "Second battery"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"power_sensor": "already_configured"}


def _old_entry(*subentries: ConfigSubentryDataWithId, version: int = 1) -> Any:
    """Return an entry as version 1.1 stored it."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=f"Home ({SERVER_URL})",
        unique_id=OLD_UNIQUE_ID,
        data=dict(ENTRY_DATA),
        version=version,
        minor_version=1,
        subentries_data=list(subentries),
    )


def _subentry(
    subentry_id: str, subentry_type: str, data: dict[str, Any], unique_id: str | None
) -> ConfigSubentryDataWithId:
    """Return stored subentry data."""
    return ConfigSubentryDataWithId(
        data=data,
        subentry_id=subentry_id,
        subentry_type=subentry_type,
        title=subentry_id,
        unique_id=unique_id,
    )


async def test_migrate_subentry_unique_ids(
    hass: HomeAssistant, fake_scheduling: FakeScheduling
) -> None:
    """Version 1.1 ids (bare sensor ids) become type-prefixed ids on set-up."""
    fake_scheduling.server.responses["POST /api/v3_0/sensors/22/data"] = {
        "status": "PROCESSED"
    }
    entry = _old_entry(
        _subentry("battery", SUBENTRY_CONTROLLED_DEVICE, dict(BATTERY_DATA), "20"),
        _subentry(
            "link22", SUBENTRY_MEASUREMENT_LINK, {**LINK_DATA, "sensor_id": 22}, "22"
        ),
        # Without a unique id: the first gets one, the second (same sensor) cannot.
        _subentry("linka", SUBENTRY_MEASUREMENT_LINK, dict(LINK_DATA), None),
        _subentry("linkb", SUBENTRY_MEASUREMENT_LINK, dict(LINK_DATA), None),
        # A type this version does not know is left as it is.
        _subentry("other", "something_else", {"sensor_id": 5}, "5"),
    )
    await _setup(hass, entry)

    assert entry.state is ConfigEntryState.LOADED
    assert (entry.version, entry.minor_version) == (1, CONFIG_ENTRY_MINOR_VERSION)
    assert {key: sub.unique_id for key, sub in entry.subentries.items()} == {
        "battery": "controlled_device_20",
        "link22": "measurement_link_22",
        "linka": "measurement_link_20",
        "linkb": None,
        "other": "5",
    }


async def test_migrated_entry_accepts_a_shared_sensor(
    hass: HomeAssistant, fake_scheduling: FakeScheduling
) -> None:
    """After migration, a link to the old controlled device's sensor is created."""
    entry = _old_entry(
        _subentry("battery", SUBENTRY_CONTROLLED_DEVICE, dict(BATTERY_DATA), "20")
    )
    await _setup(hass, entry)
    fake_scheduling.server.responses["POST /api/v3_0/sensors/20/data"] = {
        "status": "PROCESSED"
    }
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_MEASUREMENT_LINK), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"entity_id": POWER_ENTITY}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], LINK_FORM
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.usefixtures("fake_server")
async def test_newer_version_is_not_migrated(hass: HomeAssistant) -> None:
    """An entry stored by a newer major version is left alone and not set up."""
    entry = _old_entry(version=2)
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.MIGRATION_ERROR
    assert entry.version == 2


async def test_current_version_is_not_touched(
    hass: HomeAssistant, fake_server: FakeFlexMeasures, linked_entry: MockConfigEntry
) -> None:
    """An entry at the current version loads without migration."""
    await _setup(hass, linked_entry)
    assert linked_entry.minor_version == CONFIG_ENTRY_MINOR_VERSION
    assert _by_type(linked_entry) == {
        SUBENTRY_MEASUREMENT_LINK: [f"measurement_link_{BATTERY_SENSOR_ID}"]
    }
