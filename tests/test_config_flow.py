"""Tests for the FlexMeasures config flow."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientConnectionError
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import CONF_EMAIL, CONF_PASSWORD, CONF_URL, CONF_VERIFY_SSL
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures.const import CONF_ACCOUNT_ID, DOMAIN

from .conftest import (
    ACCOUNT_ID,
    EMAIL,
    ENTRY_DATA,
    PASSWORD,
    SERVER_URL,
    UNIQUE_ID,
    FakeFlexMeasures,
)

pytestmark = pytest.mark.usefixtures("mock_setup_entry")

USER_INPUT: dict[str, Any] = {
    CONF_URL: "fm.example.com/",
    CONF_EMAIL: EMAIL,
    CONF_PASSWORD: PASSWORD,
    CONF_VERIFY_SSL: True,
}


async def test_user_flow(hass: HomeAssistant, fake_server: FakeFlexMeasures) -> None:
    """A bare host is completed to https and the entry names the account."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], USER_INPUT
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"Home ({SERVER_URL})"
    assert result["data"] == ENTRY_DATA
    assert result["result"].unique_id == UNIQUE_ID
    assert fake_server.count("POST /api/requestAuthToken") == 1


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({CONF_URL: "ftp://fm.example.com"}, {CONF_URL: "invalid_url"}),
        ({CONF_URL: "https://fm.example.com/some/path"}, {CONF_URL: "invalid_url"}),
        ({CONF_URL: "   "}, {CONF_URL: "invalid_url"}),
        ({CONF_PASSWORD: "wrong"}, {"base": "invalid_auth"}),
        ({CONF_EMAIL: "not-an-email"}, {"base": "invalid_auth"}),
    ],
)
async def test_user_flow_input_errors(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    change: dict[str, Any],
    errors: dict[str, str],
) -> None:
    """Bad input gets a specific error, keeps what was typed, and can be fixed."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**USER_INPUT, **change}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    # What was typed is offered again, the password never.
    schema = result["data_schema"]
    assert schema is not None
    suggested = {
        str(key): key.description["suggested_value"]
        for key in schema.schema
        if key.description and "suggested_value" in key.description
    }
    assert CONF_PASSWORD not in suggested
    assert suggested[CONF_URL] == {**USER_INPUT, **change}[CONF_URL]

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], USER_INPUT
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        ("connection", "cannot_connect"),
        ("timeout", "cannot_connect"),
        ("server_error", "cannot_connect"),
        ("old_server", "server_too_old"),
        ("wrong_api", "server_too_old"),
        ("garbage", "unknown"),
    ],
)
async def test_user_flow_server_errors(
    hass: HomeAssistant, fake_server: FakeFlexMeasures, failure: str, error: str
) -> None:
    """Each server failure is reported distinctly, then the flow recovers."""
    versions = fake_server.responses["GET /api/"]
    if failure == "connection":
        fake_server.errors["*"] = ClientConnectionError("refused")
    elif failure == "timeout":
        fake_server.errors["*"] = TimeoutError()
    elif failure == "server_error":
        fake_server.statuses["GET /api/"] = 502
        fake_server.responses["GET /api/"] = None
    elif failure == "old_server":
        fake_server.responses["GET /api/"] = {
            **versions,
            "flexmeasures_version": "0.32.9",
        }
    elif failure == "wrong_api":
        fake_server.responses["GET /api/"] = {**versions, "versions": ["v2_0"]}
    else:
        fake_server.responses["GET /api/v3_0/users"] = {"unexpected": True}

    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], USER_INPUT
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}

    fake_server.errors.clear()
    fake_server.statuses.clear()
    fake_server.responses.update(
        {
            "GET /api/": versions,
            "GET /api/v3_0/users": FakeFlexMeasures().responses["GET /api/v3_0/users"],
        }
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], USER_INPUT
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.parametrize(
    "response",
    [
        [],
        [{"id": 2, "email": EMAIL}],
    ],
)
async def test_user_flow_unexpected_user_or_account(
    hass: HomeAssistant, fake_server: FakeFlexMeasures, response: Any
) -> None:
    """A server that does not say who we are is an unexpected answer."""
    fake_server.responses["GET /api/v3_0/users"] = response
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}, data=USER_INPUT
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "unknown"}


async def test_user_flow_duplicate(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
) -> None:
    """The same account on the same server cannot be added twice."""
    mock_config_entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_USER},
        data={**USER_INPUT, CONF_URL: "https://FM.example.com:443"},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_user_flow_other_account_or_server(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
) -> None:
    """A second account on the same server, or another server, can be added."""
    mock_config_entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_USER},
        data={**USER_INPUT, CONF_URL: "http://fm.example.com:5000"},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == "http://fm.example.com:5000_3"

    fake_server.responses["GET /api/v3_0/users"] = [
        {"id": 9, "username": "other", "email": EMAIL, "account_id": 4}
    ]
    fake_server.responses["GET /api/v3_0/accounts/4"] = {"id": 4, "name": "Office"}
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}, data=USER_INPUT
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == f"{SERVER_URL}_4"
    assert result["data"][CONF_ACCOUNT_ID] == 4


async def test_reauth(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
) -> None:
    """A wrong new password is refused; the right one updates the entry."""
    mock_config_entry.add_to_hass(hass)
    fake_server.password = "new password"  # noqa: S105
    result = await mock_config_entry.start_reauth_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reauth_confirm"
    placeholders = result["description_placeholders"]
    assert placeholders is not None
    assert placeholders[CONF_EMAIL] == EMAIL
    assert placeholders[CONF_URL] == SERVER_URL

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PASSWORD: "still wrong"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PASSWORD: "new password"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert mock_config_entry.data[CONF_PASSWORD] == "new password"


async def test_reauth_wrong_account(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
) -> None:
    """Re-login must not switch the entry to another account."""
    mock_config_entry.add_to_hass(hass)
    fake_server.responses["GET /api/v3_0/users"] = [
        {"id": 9, "username": "other", "email": EMAIL, "account_id": 4}
    ]
    fake_server.responses["GET /api/v3_0/accounts/4"] = {"id": 4, "name": "Office"}
    result = await mock_config_entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PASSWORD: PASSWORD}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_account"


async def test_reconfigure(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
) -> None:
    """A new address with the stored password moves the entry; errors recover."""
    mock_config_entry.add_to_hass(hass)
    result = await mock_config_entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"

    new_input = {
        CONF_URL: "https://flexmeasures.example.org",
        CONF_EMAIL: EMAIL,
        CONF_VERIFY_SSL: False,
    }
    fake_server.errors["*"] = ClientConnectionError("refused")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], new_input
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}

    fake_server.errors.clear()
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], new_input
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert (
        mock_config_entry.unique_id == f"https://flexmeasures.example.org_{ACCOUNT_ID}"
    )
    assert mock_config_entry.data == {
        **new_input,
        CONF_PASSWORD: PASSWORD,
        CONF_ACCOUNT_ID: ACCOUNT_ID,
    }


async def test_reconfigure_new_password_same_server(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
) -> None:
    """Typing a password in reconfigure replaces the stored one."""
    mock_config_entry.add_to_hass(hass)
    fake_server.password = "rotated"  # noqa: S105
    result = await mock_config_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_URL: SERVER_URL, CONF_EMAIL: EMAIL, CONF_PASSWORD: "rotated"},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert mock_config_entry.data[CONF_PASSWORD] == "rotated"
    assert mock_config_entry.unique_id == UNIQUE_ID


async def test_reconfigure_wrong_account(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
) -> None:
    """Reconfigure refuses credentials of another account."""
    mock_config_entry.add_to_hass(hass)
    fake_server.responses["GET /api/v3_0/users"] = [
        {"id": 9, "username": "other", "email": EMAIL, "account_id": 4}
    ]
    fake_server.responses["GET /api/v3_0/accounts/4"] = {"id": 4, "name": "Office"}
    result = await mock_config_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: SERVER_URL, CONF_EMAIL: EMAIL}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_account"


async def test_reconfigure_to_address_of_other_entry(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
) -> None:
    """Reconfigure cannot make two entries point at the same account."""
    mock_config_entry.add_to_hass(hass)
    MockConfigEntry(
        domain=DOMAIN,
        unique_id=f"http://fm.local:5000_{ACCOUNT_ID}",
        data={**ENTRY_DATA, CONF_URL: "http://fm.local:5000"},
    ).add_to_hass(hass)
    result = await mock_config_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: "http://fm.local:5000", CONF_EMAIL: EMAIL}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
