"""Config flow against the real FlexMeasures server."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures.const import CONF_ACCOUNT_ID, DOMAIN

from .conftest import LiveServer
from .proxy import FaultProxy


async def _start_user_flow(hass: HomeAssistant) -> str:
    """Open the user step and return the flow id."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    return str(result["flow_id"])


async def test_user_flow_creates_a_working_entry(
    hass: HomeAssistant, live_server: LiveServer
) -> None:
    """The real server accepts the seeded user; the new entry loads."""
    flow_id = await _start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, live_server.user_input()
    )
    await hass.async_block_till_done()

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == live_server.entry_data()
    assert result["title"] == f"{live_server.home.account_name} ({live_server.url})"
    entry = result["result"]
    assert entry.unique_id == live_server.unique_id
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.server.version == live_server.version


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({CONF_PASSWORD: "not-the-password"}, "invalid_auth"),
        ({CONF_URL: None}, "cannot_connect"),
    ],
    ids=["wrong_password", "stopped_server"],
)
async def test_user_flow_errors_then_recovery(
    hass: HomeAssistant,
    live_server: LiveServer,
    closed_port_url: str,
    change: dict[str, Any],
    error: str,
) -> None:
    """A wrong password or a server that is not running are told apart, then fixed."""
    flow_id = await _start_user_flow(hass)
    bad_input = {
        **live_server.user_input(),
        **{key: value or closed_port_url for key, value in change.items()},
    }
    result = await hass.config_entries.flow.async_configure(flow_id, bad_input)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}
    assert hass.config_entries.async_entries(DOMAIN) == []

    result = await hass.config_entries.flow.async_configure(
        flow_id, live_server.user_input()
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_ACCOUNT_ID] == live_server.home.account_id


async def test_other_account_is_a_separate_entry(
    hass: HomeAssistant, live_server: LiveServer
) -> None:
    """Another account on the same server gets its own entry; a repeat aborts."""
    entries = {}
    for account in (live_server.home, live_server.other):
        result = await hass.config_entries.flow.async_configure(
            await _start_user_flow(hass), live_server.user_input(account)
        )
        await hass.async_block_till_done()
        assert result["type"] is FlowResultType.CREATE_ENTRY
        entries[account.account_id] = result["result"]

    assert set(entries) == {live_server.home.account_id, live_server.other.account_id}
    assert len({entry.unique_id for entry in entries.values()}) == 2
    for account_id, entry in entries.items():
        assert entry.state is ConfigEntryState.LOADED
        assert entry.runtime_data.server.account_id == account_id

    result = await hass.config_entries.flow.async_configure(
        await _start_user_flow(hass), live_server.user_input(live_server.other)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


@pytest.mark.usefixtures("loaded_entry")
async def test_reconfigure_to_other_account_aborts(
    hass: HomeAssistant, live_server: LiveServer, live_entry: MockConfigEntry
) -> None:
    """Reconfiguring an entry with another account's credentials is refused."""
    result = await live_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], live_server.user_input(live_server.other)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_account"
    assert live_entry.data[CONF_ACCOUNT_ID] == live_server.home.account_id
    assert live_entry.state is ConfigEntryState.LOADED


def _registry(hass: HomeAssistant, entry_id: str) -> tuple[set[Any], set[Any]]:
    """Return the entry's entities and devices with every id they carry."""
    entities = {
        (entity.id, entity.entity_id, entity.unique_id, entity.device_id)
        for entity in er.async_entries_for_config_entry(er.async_get(hass), entry_id)
    }
    devices = {
        (device.id, frozenset(device.identifiers))
        for device in dr.async_entries_for_config_entry(dr.async_get(hass), entry_id)
    }
    return entities, devices


async def test_same_account_through_another_address_aborts(
    hass: HomeAssistant,
    live_server: LiveServer,
    loaded_entry: MockConfigEntry,
    proxy: FaultProxy,
) -> None:
    """The account already set up, reached through another address, is refused."""
    assert proxy.url != live_server.url
    result = await hass.config_entries.flow.async_configure(
        await _start_user_flow(hass),
        {**live_server.user_input(), CONF_URL: proxy.url},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert hass.config_entries.async_entries(DOMAIN) == [loaded_entry]


async def test_reconfigure_to_another_address_keeps_every_id(
    hass: HomeAssistant,
    live_server: LiveServer,
    loaded_entry: MockConfigEntry,
    proxy: FaultProxy,
) -> None:
    """Moving the entry to another address of its server changes no id."""
    before = _registry(hass, loaded_entry.entry_id)
    assert before[0]
    assert before[1]
    result = await loaded_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            key: value
            for key, value in live_server.user_input().items()
            if key != CONF_PASSWORD
        }
        | {CONF_URL: proxy.url},
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert loaded_entry.state is ConfigEntryState.LOADED
    assert loaded_entry.data[CONF_URL] == proxy.url
    assert loaded_entry.unique_id == live_server.unique_id
    assert _registry(hass, loaded_entry.entry_id) == before
    ids = [unique_id for _, _, unique_id, _ in before[0]] + [
        identifier for _, identifiers in before[1] for _, identifier in identifiers
    ]
    assert not [identifier for identifier in ids if "127.0.0.1" in identifier]


async def test_entry_with_url_ids_migrates_in_place(
    hass: HomeAssistant, live_server: LiveServer
) -> None:
    """An entry as version 1.2 stored it loads with the new ids and the user's names."""
    old = f"{live_server.url}_{live_server.home.account_id}"
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"{live_server.home.account_name} ({live_server.url})",
        unique_id=old,
        data=live_server.entry_data(),
        version=1,
        minor_version=2,
    )
    entry.add_to_hass(hass)
    battery = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, f"{old}_asset_{live_server.assets['battery']}")},
        name="battery",
    )
    dr.async_get(hass).async_update_device(battery.id, name_by_user="Garage battery")
    power = er.async_get(hass).async_get_or_create(
        "sensor",
        DOMAIN,
        f"{old}_sensor_{live_server.sensors['battery_power']}",
        config_entry=entry,
        device_id=battery.id,
        suggested_object_id="my_battery_power",
    )
    er.async_get(hass).async_update_entity(power.entity_id, name="Mine")

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    assert entry.unique_id == live_server.unique_id
    migrated = er.async_get(hass).async_get(power.entity_id)
    assert migrated is not None
    assert migrated.unique_id == (
        f"{live_server.unique_id}_sensor_{live_server.sensors['battery_power']}"
    )
    assert (migrated.name, migrated.device_id) == ("Mine", battery.id)
    assert hass.states.get(power.entity_id) is not None
    device = dr.async_get(hass).async_get(battery.id)
    assert device is not None
    assert device.name_by_user == "Garage battery"
    entities, devices = _registry(hass, entry.entry_id)
    # Set-up found the migrated entity: the battery power has one, not two.
    suffix = f"_sensor_{live_server.sensors['battery_power']}"
    assert [uid for _, _, uid, _ in entities if uid.endswith(suffix)] == [
        migrated.unique_id
    ]
    ids = [unique_id for _, _, unique_id, _ in entities] + [
        identifier for _, identifiers in devices for _, identifier in identifiers
    ]
    assert not [identifier for identifier in ids if "127.0.0.1" in identifier]
