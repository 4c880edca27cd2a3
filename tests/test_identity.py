"""Stable identity: ids without the server URL, and the migration to them."""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.config_entries import ConfigSubentryDataWithId
from homeassistant.const import CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
)
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures import async_migrate_entry
from custom_components.flexmeasures.const import CONFIG_ENTRY_MINOR_VERSION, DOMAIN
from custom_components.flexmeasures.identity import (
    account_unique_id,
    asset_id_of,
    asset_identifier,
    controlled_device_identifier,
    controlled_device_subentry_id,
    sensor_id_of,
    sensor_unique_id,
)

from .conftest import (
    BATTERY_ASSET_ID,
    BATTERY_SENSOR_ID,
    BATTERY_SUBENTRY_ID,
    ENTRY_DATA,
    OLD_UNIQUE_ID,
    SERVER_URL,
    SOC_ENTITY,
    UNIQUE_ID,
    FakeScheduling,
)


@dataclass(frozen=True)
class _Device:
    """A device as far as its identifiers go."""

    identifiers: set[tuple[str, str]]


def _entry(
    unique_id: str | None,
    url: str = SERVER_URL,
    minor_version: int = CONFIG_ENTRY_MINOR_VERSION,
) -> MockConfigEntry:
    """Return an entry with this unique id, at this address and minor version."""
    return MockConfigEntry(
        domain=DOMAIN,
        unique_id=unique_id,
        data={**ENTRY_DATA, CONF_URL: url},
        version=1,
        minor_version=minor_version,
    )


def test_ids_are_built_and_read_back() -> None:
    """Every id names the account or the subentry and reads back; others do not."""
    entry = _entry(UNIQUE_ID)
    other = _entry(f"{UNIQUE_ID}_2")
    assert account_unique_id(3) == UNIQUE_ID
    assert account_unique_id(3, {UNIQUE_ID, None}) == f"{UNIQUE_ID}_2"
    assert account_unique_id(3, {UNIQUE_ID, f"{UNIQUE_ID}_2"}) == f"{UNIQUE_ID}_3"

    assert sensor_id_of(entry, sensor_unique_id(entry, 20)) == 20
    assert sensor_id_of(entry, sensor_unique_id(other, 20)) is None
    assert sensor_id_of(entry, f"{UNIQUE_ID}_sensor_x") is None
    assert sensor_id_of(entry, f"{UNIQUE_ID}_pending_measurements") is None

    def device(*identifiers: tuple[str, str]) -> _Device:
        return _Device(identifiers=set(identifiers))

    assert asset_id_of(entry, device(asset_identifier(entry, 11))) == 11
    assert asset_id_of(entry, device(asset_identifier(other, 11))) is None
    assert asset_id_of(entry, device(("other", f"{UNIQUE_ID}_asset_11"))) is None
    assert controlled_device_subentry_id(
        device(("other", "x"), controlled_device_identifier("abc"))
    ) == "abc"  # fmt: skip
    assert controlled_device_subentry_id(device(asset_identifier(entry, 11))) is None
    # An entry without unique id (none was ever created so) keys on its entry id.
    assert sensor_unique_id(_entry(None), 5).endswith("_sensor_5")


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_migration_keeps_entity_ids_names_areas_and_devices(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    battery_subentry: ConfigSubentryDataWithId,
    entity_registry: er.EntityRegistry,
    device_registry: dr.DeviceRegistry,
    area_registry: ar.AreaRegistry,
) -> None:
    """A registry written by version 1.2 (URL in the ids) keeps what users made."""
    hass.states.async_set(SOC_ENTITY, "50", {"unit_of_measurement": "%"})
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"Home ({SERVER_URL})",
        unique_id=OLD_UNIQUE_ID,
        data=dict(ENTRY_DATA),
        version=1,
        minor_version=2,
        subentries_data=[battery_subentry],
    )
    entry.add_to_hass(hass)
    garage = area_registry.async_create("Garage")
    shed = area_registry.async_create("Shed")

    # What version 1.2 registered: devices and entities keyed on the URL.
    asset = device_registry.async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, f"{OLD_UNIQUE_ID}_asset_{BATTERY_ASSET_ID}")},
        name="Home battery",
    )
    device_registry.async_update_device(
        asset.id, name_by_user="Garage battery", area_id=garage.id
    )
    account = device_registry.async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, OLD_UNIQUE_ID)},
        name="Home",
    )
    controlled = device_registry.async_get_or_create(
        config_entry_id=entry.entry_id,
        config_subentry_id=BATTERY_SUBENTRY_ID,
        identifiers={controlled_device_identifier(BATTERY_SUBENTRY_ID)},
        name="Home battery",
    )
    power = entity_registry.async_get_or_create(
        "sensor",
        DOMAIN,
        f"{OLD_UNIQUE_ID}_sensor_{BATTERY_SENSOR_ID}",
        config_entry=entry,
        device_id=asset.id,
        suggested_object_id="my_battery_power",
    )
    entity_registry.async_update_entity(
        power.entity_id, name="Battery (mine)", area_id=shed.id
    )
    pending = entity_registry.async_get_or_create(
        "sensor",
        DOMAIN,
        f"{OLD_UNIQUE_ID}_pending_measurements",
        config_entry=entry,
        device_id=account.id,
        suggested_object_id="home_pending",
    )
    planned = entity_registry.async_get_or_create(
        "sensor",
        DOMAIN,
        f"{BATTERY_SUBENTRY_ID}_planned_power",
        config_entry=entry,
        config_subentry_id=BATTERY_SUBENTRY_ID,
        device_id=controlled.id,
        suggested_object_id="my_planned_power",
    )
    assert power.entity_id == "sensor.my_battery_power"

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert (entry.version, entry.minor_version) == (1, CONFIG_ENTRY_MINOR_VERSION)
    assert entry.unique_id == UNIQUE_ID
    # Entity ids, names, areas and device links are kept, on the new ids.
    migrated = entity_registry.async_get(power.entity_id)
    assert migrated is not None
    assert migrated.id == power.id
    assert migrated.unique_id == f"{UNIQUE_ID}_sensor_{BATTERY_SENSOR_ID}"
    assert (migrated.name, migrated.area_id) == ("Battery (mine)", shed.id)
    assert migrated.device_id == asset.id
    assert hass.states.get(power.entity_id) is not None
    pending_now = entity_registry.async_get(pending.entity_id)
    assert pending_now is not None
    assert pending_now.unique_id == f"{UNIQUE_ID}_pending_measurements"
    assert pending_now.device_id == account.id
    planned_now = entity_registry.async_get(planned.entity_id)
    assert planned_now is not None
    assert planned_now.unique_id == planned.unique_id
    assert planned_now.device_id == controlled.id

    asset_now = device_registry.async_get(asset.id)
    assert asset_now is not None
    assert asset_now.identifiers == {asset_identifier(entry, BATTERY_ASSET_ID)}
    assert (asset_now.name_by_user, asset_now.area_id) == ("Garage battery", garage.id)
    account_now = device_registry.async_get(account.id)
    assert account_now is not None
    assert account_now.identifiers == {(DOMAIN, UNIQUE_ID)}

    # Set-up found its entities on the migrated ids: none was added twice.
    entities = er.async_entries_for_config_entry(entity_registry, entry.entry_id)
    assert not [entity for entity in entities if entity.entity_id.endswith("_2")]
    assert len({entity.unique_id for entity in entities}) == len(entities)
    devices = dr.async_entries_for_config_entry(device_registry, entry.entry_id)
    ids = [entity.unique_id for entity in entities] + [
        identifier for device in devices for _, identifier in device.identifiers
    ]
    assert len(ids) > 10
    for identifier in ids:
        assert "example" not in identifier
        assert "://" not in identifier


async def test_migration_numbers_accounts_of_two_servers(hass: HomeAssistant) -> None:
    """Two 1.2 entries for account 3 (two servers, or one twice) stay apart."""
    first = _entry(OLD_UNIQUE_ID, minor_version=2)
    second = _entry("http://127.0.0.1:5000_3", "http://127.0.0.1:5000", 2)
    for entry in (first, second):
        entry.add_to_hass(hass)
    device_registry = dr.async_get(hass)
    for entry in (first, second):
        device_registry.async_get_or_create(
            config_entry_id=entry.entry_id,
            identifiers={(DOMAIN, f"{entry.unique_id}_asset_11")},
        )
    for entry in (first, second):
        assert await async_migrate_entry(hass, entry)
    assert (first.unique_id, second.unique_id) == (UNIQUE_ID, f"{UNIQUE_ID}_2")
    for entry in (first, second):
        (device,) = dr.async_entries_for_config_entry(device_registry, entry.entry_id)
        assert asset_id_of(entry, device) == 11
    assert SERVER_URL not in str(first.unique_id)
