"""Config flow against the real FlexMeasures server."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_PASSWORD, CONF_URL
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures.const import CONF_ACCOUNT_ID, DOMAIN

from .conftest import LiveServer


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
