"""Tests for the FlexMeasures config flow."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus
from types import MappingProxyType, SimpleNamespace
from typing import Any
from unittest.mock import patch

from aiohttp import ClientConnectionError
from homeassistant.config_entries import SOURCE_USER, ConfigSubentry
from homeassistant.const import CONF_EMAIL, CONF_PASSWORD, CONF_URL, CONF_VERIFY_SSL
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from yarl import URL

from custom_components.flexmeasures import async_setup_entry as real_async_setup_entry
from custom_components.flexmeasures.api import Asset, Sensor
from custom_components.flexmeasures.const import (
    CONF_ACCOUNT_ID,
    DOMAIN,
    SUBENTRY_CONTROLLED_DEVICE,
)
from custom_components.flexmeasures.coordinator import Inventory
from custom_components.flexmeasures.s2 import S2DeviceConfig

from .conftest import (
    ACCOUNT_ID,
    EMAIL,
    ENTRY_DATA,
    PASSWORD,
    RECORDED_AT,
    SERVER_URL,
    UNIQUE_ID,
    FakeFlexMeasures,
    load_fixture,
    setup_entry,
)
from .flow_helpers import changed, select_options, start_flow, suggested

# Logs at debug level, asserted free of the password, token and e-mail.
pytestmark = pytest.mark.usefixtures("mock_setup_entry", "no_secrets_logged")

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
        # FlexMeasures 1.0.1 answers an unknown e-mail with 404 (recorded).
        ({CONF_EMAIL: "nobody@example.com"}, {"base": "invalid_auth"}),
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
    values = suggested(schema)
    assert CONF_PASSWORD not in values
    assert values[CONF_URL] == {**USER_INPUT, **change}[CONF_URL]

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
        ("garbage", "unexpected_response"),
        ("not_flexmeasures", "unexpected_response"),
        ("bug", "unknown"),
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
    elif failure == "not_flexmeasures":
        # Another JSON API at this address (a proxy's status page, say).
        fake_server.responses["GET /api/"] = {"status": "ok", "name": "router"}
    elif failure == "bug":
        fake_server.errors["GET /api/"] = RuntimeError("a bug")
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
    assert result["errors"] == {"base": "unexpected_response"}


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


async def test_user_flow_same_account_other_address(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
) -> None:
    """The same account reached through another address is not added again."""
    mock_config_entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_USER},
        data={**USER_INPUT, CONF_URL: "http://fm.example.com:5000"},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    # Both servers were asked for the account's assets, each with its own login.
    assert fake_server.count("GET /api/v3_0/assets") == 2
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1


def _other_server_assets(fake_server: FakeFlexMeasures, host: str) -> None:
    """Make the server at ``host`` another server: its account 3 has other assets."""
    assets = fake_server.responses["GET /api/v3_0/assets"]

    def answer(method: str, url: URL, data: Any) -> tuple[int, Any]:
        if url.host == host:
            return HTTPStatus.OK, [{**asset, "name": "Elsewhere"} for asset in assets]
        return HTTPStatus.OK, assets

    fake_server.handlers["GET /api/v3_0/assets"] = answer


async def test_user_flow_other_server_same_account_id(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
) -> None:
    """Another server whose account has the same id is another entry."""
    mock_config_entry.add_to_hass(hass)
    _other_server_assets(fake_server, "fm.elsewhere.net")
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_USER},
        data={**USER_INPUT, CONF_URL: "https://fm.elsewhere.net"},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == f"{UNIQUE_ID}_2"
    assert result["data"][CONF_ACCOUNT_ID] == ACCOUNT_ID


async def test_user_flow_other_entry_server_down(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
) -> None:
    """An entry with the same account id whose server is down cannot be compared."""
    mock_config_entry.add_to_hass(hass)

    def versions(method: str, url: URL, data: Any) -> tuple[int, Any]:
        if url.host == "fm.example.com":
            raise ClientConnectionError("refused")
        return HTTPStatus.OK, load_fixture("versions.json")

    fake_server.handlers["GET /api/"] = versions
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_USER},
        data={**USER_INPUT, CONF_URL: "https://fm.elsewhere.net"},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "account_not_comparable"
    assert result["description_placeholders"] == {"entry": mock_config_entry.title}


def _assets_fail_at(fake_server: FakeFlexMeasures, host: str) -> None:
    """Make the server at ``host`` drop the connection on the asset list."""
    assets = fake_server.responses["GET /api/v3_0/assets"]

    def answer(method: str, url: URL, data: Any) -> tuple[int, Any]:
        if url.host == host:
            raise ClientConnectionError("reset")
        return HTTPStatus.OK, assets

    fake_server.handlers["GET /api/v3_0/assets"] = answer


async def test_user_flow_new_server_fails_while_comparing(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
) -> None:
    """The new address failing during the comparison is a form error, then fine."""
    mock_config_entry.add_to_hass(hass)
    _assets_fail_at(fake_server, "fm.example.net")
    user_input = {**USER_INPUT, CONF_URL: "https://fm.example.net"}
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}, data=user_input
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}

    del fake_server.handlers["GET /api/v3_0/assets"]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reconfigure_new_server_fails_while_comparing(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
) -> None:
    """The same in reconfigure, beside another server's entry for account 3."""
    mock_config_entry.add_to_hass(hass)
    MockConfigEntry(
        domain=DOMAIN,
        unique_id=f"{UNIQUE_ID}_2",
        data={**ENTRY_DATA, CONF_URL: "https://fm.elsewhere.net"},
    ).add_to_hass(hass)
    _assets_fail_at(fake_server, "fm.local")
    new_input = {CONF_URL: "http://fm.local:5000", CONF_EMAIL: EMAIL}
    result = await mock_config_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], new_input
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}

    _other_server_assets(fake_server, "fm.elsewhere.net")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], new_input
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert mock_config_entry.unique_id == UNIQUE_ID


async def test_user_flow_other_account(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
) -> None:
    """A second account on the same server can be added."""
    mock_config_entry.add_to_hass(hass)
    fake_server.responses["GET /api/v3_0/users"] = [
        {"id": 9, "username": "other", "email": EMAIL, "account_id": 4}
    ]
    fake_server.responses["GET /api/v3_0/accounts/4"] = {"id": 4, "name": "Office"}
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}, data=USER_INPUT
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["result"].unique_id == "account_4"
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
    assert mock_config_entry.unique_id == UNIQUE_ID
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
        unique_id=f"{UNIQUE_ID}_2",
        data={**ENTRY_DATA, CONF_URL: "http://fm.local:5000"},
    ).add_to_hass(hass)
    result = await mock_config_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: "http://fm.local:5000", CONF_EMAIL: EMAIL}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reconfigure_beside_other_server_same_account_id(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
) -> None:
    """An entry of another server's account with the same id does not block a move."""
    mock_config_entry.add_to_hass(hass)
    MockConfigEntry(
        domain=DOMAIN,
        unique_id=f"{UNIQUE_ID}_2",
        data={**ENTRY_DATA, CONF_URL: "https://fm.elsewhere.net"},
    ).add_to_hass(hass)
    _other_server_assets(fake_server, "fm.elsewhere.net")
    result = await mock_config_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: "http://fm.local:5000", CONF_EMAIL: EMAIL}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert mock_config_entry.unique_id == UNIQUE_ID
    assert mock_config_entry.data[CONF_URL] == "http://fm.local:5000"


# --- Options flow (issue 4) ----------------------------------------------------

ARROW = "\N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK}"


@pytest.fixture
async def loaded_entry(
    hass: HomeAssistant, fake_server: FakeFlexMeasures
) -> MockConfigEntry:
    """Set the entry up for real, despite this module's mock_setup_entry."""
    entry = MockConfigEntry(
        domain=DOMAIN, unique_id=UNIQUE_ID, data=dict(ENTRY_DATA), version=1
    )
    with patch(
        "custom_components.flexmeasures.async_setup_entry", real_async_setup_entry
    ):
        await setup_entry(hass, entry)
    return entry


@pytest.mark.freeze_time(RECORDED_AT)
async def test_options_flow(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    fake_server: FakeFlexMeasures,
) -> None:
    """Deselected sensors disappear, the interval changes, and both can be undone."""
    result = await hass.config_entries.options.async_init(loaded_entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"
    schema = result["data_schema"]
    assert schema is not None
    choices = select_options(schema, "sensors")
    assert len(choices) == 11
    assert choices[0] == {
        "value": "22",
        "label": f"EV charger {ARROW} charging power (kW)",
    }
    assert {
        "value": "20",
        "label": f"Home battery {ARROW} power (kW)",
    } in choices
    assert [choice["label"] for choice in choices] == sorted(
        (choice["label"] for choice in choices), key=str.casefold
    )
    # Default: every sensor, polled every 5 minutes.
    assert sorted(suggested(schema)["sensors"], key=int) == [
        "20", "21", "22", "23", "24", "30", "31", "32", "33", "34", "35"
    ]  # fmt: skip
    assert suggested(schema)["scan_interval"] == 5
    # FlexMeasures' fallback plans drive the devices unless switched off.
    assert suggested(schema)["use_fallback_plans"] is True

    keep = [
        choice["value"] for choice in choices if choice["value"] not in {"21", "35"}
    ]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {"sensors": keep, "scan_interval": 15, "use_fallback_plans": False},
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert loaded_entry.options == {
        "excluded_sensors": [21, 35],
        "scan_interval": 15,
        "use_fallback_plans": False,
    }
    assert hass.states.get("sensor.home_battery_state_of_charge") is None
    assert hass.states.get("sensor.home_gas_flow") is None
    assert hass.states.get("sensor.home_battery_power") is not None
    coordinator = loaded_entry.runtime_data.sensor_values
    assert coordinator.period == timedelta(minutes=15)
    assert coordinator.update_interval == timedelta(minutes=7, seconds=40)
    assert {sensor.id for sensor in coordinator.exposed} == {
        20, 22, 23, 24, 30, 31, 32, 33, 34
    }  # fmt: skip

    # The form shows the current choice; selecting everything brings them back.
    result = await hass.config_entries.options.async_init(loaded_entry.entry_id)
    schema = result["data_schema"]
    assert schema is not None
    assert "21" not in suggested(schema)["sensors"]
    assert suggested(schema)["scan_interval"] == 15
    assert suggested(schema)["use_fallback_plans"] is False
    before = fake_server.count("GET /api/v3_0/sensors/21/data")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "sensors": [choice["value"] for choice in choices],
            "scan_interval": 5,
            "use_fallback_plans": True,
        },
    )
    await hass.async_block_till_done()
    assert loaded_entry.options == {
        "excluded_sensors": [],
        "scan_interval": 5,
        "use_fallback_plans": True,
    }
    state = hass.states.get("sensor.home_battery_state_of_charge")
    assert state is not None
    assert state.state == "76.4"
    assert fake_server.count("GET /api/v3_0/sensors/21/data") == before + 1


async def test_options_flow_labels(
    hass: HomeAssistant, fake_server: FakeFlexMeasures
) -> None:
    """A sensor without unit has a plain label; one on an unseen asset is left out."""
    fake_server.responses["GET /api/v3_0/sensors"] += [
        {"id": 99, "name": "hidden", "unit": "kW", "generic_asset_id": 77},
        {"id": 98, "name": "count", "unit": "", "generic_asset_id": 10},
    ]
    entry = MockConfigEntry(
        domain=DOMAIN, unique_id=UNIQUE_ID, data=dict(ENTRY_DATA), version=1
    )
    with patch(
        "custom_components.flexmeasures.async_setup_entry", real_async_setup_entry
    ):
        await setup_entry(hass, entry)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    schema = result["data_schema"]
    assert schema is not None
    choices = select_options(schema, "sensors")
    assert "99" not in [choice["value"] for choice in choices]
    assert {"value": "98", "label": f"Home {ARROW} count"} in choices
    assert len(choices) == 12


async def test_options_flow_not_loaded(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """Without a connection there is no list of sensors to choose from."""
    mock_config_entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(mock_config_entry.entry_id)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_loaded"


# --- Scheduling: the controlled-device subentry flow -------------------------

DEVICE_INPUT: dict[str, Any] = {
    "name": "Home battery",
    "kind": "battery",
    "power_sensor": "20",
    "soc_entity": "sensor.home_battery_soc",
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


async def _loaded(
    hass: HomeAssistant, entry: MockConfigEntry, sensors: list[dict[str, Any]]
) -> MockConfigEntry:
    """Load ``entry`` with an inventory of the recorded assets and ``sensors``."""
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    inventory = Inventory(
        assets={
            asset.id: asset
            for asset in map(Asset.from_json, load_fixture("assets.json"))
        },
        sensors={sensor.id: sensor for sensor in map(Sensor.from_json, sensors)},
    )
    entry.runtime_data = SimpleNamespace(inventory=SimpleNamespace(data=inventory))
    return entry


async def _device_form(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> tuple[MockConfigEntry, Any]:
    """Load the entry with the recorded sensors and open the controlled-device form."""
    entry = await _loaded(hass, mock_config_entry, load_fixture("sensors.json"))
    result = await start_flow(hass, entry, SUBENTRY_CONTROLLED_DEVICE)
    return entry, result


async def test_subentry_user_flow(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """A controlled device is added with sensor dropdowns from the inventory."""
    entry, result = await _device_form(hass, mock_config_entry)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    # Power sensors only, by id; prices only in the price dropdowns.
    assert select_options(result["data_schema"], "power_sensor") == [
        {"value": "20", "label": "Home battery \u203a power (kW)"},
        {"value": "22", "label": "EV charger \u203a charging power (kW)"},
        {"value": "31", "label": "Home \u203a grid connection (MW)"},
        {"value": "32", "label": "Home \u203a solar production (W)"},
    ]
    assert select_options(result["data_schema"], "consumption_price_sensor") == [
        {"value": "30", "label": "Home \u203a consumption price (EUR/MWh)"}
    ]

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], DEVICE_INPUT
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (subentry,) = entry.subentries.values()
    assert subentry.title == "Home battery"
    assert subentry.unique_id == "controlled_device_20"
    assert subentry.data["power_sensor"] == 20
    assert subentry.data["consumption_price_sensor"] == 30
    assert subentry.data["auto_reschedule"] == {"interval": 0, "soc_drift": 0}


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"capacity": None}, {"capacity": "capacity_required"}),
        ({"soc_min": 90, "soc_max": 90}, {"soc_max": "soc_min_above_max"}),
        ({"soc_max": 101}, {"soc_max": "soc_above_100"}),
        (
            {"soc_unit": "kwh", "capacity": 10, "soc_min": 1, "soc_max": 12},
            {"soc_max": "soc_above_capacity"},
        ),
        ({"power_sensor": "22"}, {"power_sensor": "already_configured"}),
    ],
)
async def test_subentry_user_flow_errors(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    change: dict[str, Any],
    errors: dict[str, str],
) -> None:
    """Inconsistent settings are refused per field and can be fixed."""
    entry = await _loaded(hass, mock_config_entry, load_fixture("sensors.json"))
    hass.config_entries.async_add_subentry(
        entry,
        ConfigSubentry(
            data=MappingProxyType({**DEVICE_INPUT, "power_sensor": 22}),
            subentry_type="controlled_device",
            title="EV charger",
            unique_id="controlled_device_22",
        ),
    )
    result = await start_flow(hass, entry, SUBENTRY_CONTROLLED_DEVICE)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], changed(DEVICE_INPUT, change)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], DEVICE_INPUT
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_subentry_reconfigure(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """A controlled device can be changed; the form shows its settings."""
    entry, result = await _device_form(hass, mock_config_entry)
    await hass.config_entries.subentries.async_configure(
        result["flow_id"], DEVICE_INPUT
    )
    (subentry,) = entry.subentries.values()

    result = await start_flow(
        hass, entry, SUBENTRY_CONTROLLED_DEVICE, subentry.subentry_id
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    schema = result["data_schema"]
    assert schema is not None
    values = suggested(schema)
    assert values["power_sensor"] == "20"
    assert values["consumption_price_sensor"] == "30"

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**DEVICE_INPUT, "name": "Garage battery", "soc_max": 80}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert subentry.title == "Garage battery"
    assert entry.subentries[subentry.subentry_id].data["soc_max"] == 80


S2_INPUT: dict[str, Any] = {
    "s2_enabled": True,
    "s2_power_sensor": "20",
    "s2_fill_level_sensor": "21",
    "s2_usage_forecast_sensor": "30",
}


def _section_options(result: Any, section_key: str, key: str) -> list[dict[str, str]]:
    """Return the options of a dropdown inside a section of a shown form."""
    (found,) = (
        value
        for marker, value in result["data_schema"].schema.items()
        if marker == section_key
    )
    return select_options(found.schema, key)


async def test_subentry_s2(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """S2 is enabled in its section; sensor ids are stored as numbers, nested."""
    entry, result = await _device_form(hass, mock_config_entry)
    sensors = load_fixture("sensors.json")
    # Measured power from power sensors; the other S2 values from any sensor.
    assert _section_options(result, "s2", "s2_power_sensor") == select_options(
        result["data_schema"], "power_sensor"
    )
    assert [
        option["value"]
        for option in _section_options(result, "s2", "s2_fill_level_sensor")
    ] == sorted((str(sensor["id"]) for sensor in sensors), key=int)

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**DEVICE_INPUT, "s2": S2_INPUT}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    (subentry,) = entry.subentries.values()
    assert subentry.data["s2"] == {
        "s2_enabled": True,
        "s2_power_sensor": 20,
        "s2_fill_level_sensor": 21,
        "s2_usage_forecast_sensor": 30,
    }
    s2 = S2DeviceConfig.from_subentry(subentry)
    assert (s2.enabled, s2.power_sensor, s2.schedule_sensor) == (True, 20, 20)

    # Reconfiguring shows the S2 settings and can turn S2 off again.
    result = await start_flow(
        hass, entry, SUBENTRY_CONTROLLED_DEVICE, subentry.subentry_id
    )
    schema = result["data_schema"]
    assert schema is not None
    (s2_section,) = (value for key, value in schema.schema.items() if key == "s2")
    assert [
        suggested(s2_section.schema)[key]
        for key in ("s2_enabled", "s2_power_sensor", "s2_fill_level_sensor")
    ] == [True, "20", "21"]
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {**DEVICE_INPUT, "s2": {"s2_enabled": False, "s2_power_sensor": "22"}},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.subentries[subentry.subentry_id].data["s2"] == {
        "s2_enabled": False,
        "s2_power_sensor": 22,
    }
    assert not S2DeviceConfig.from_subentry(
        entry.subentries[subentry.subentry_id]
    ).enabled


async def test_subentry_needs_loaded_entry(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """Without a loaded connection there is no inventory to choose from."""
    mock_config_entry.add_to_hass(hass)
    result = await start_flow(hass, mock_config_entry, SUBENTRY_CONTROLLED_DEVICE)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "entry_not_loaded"


async def test_subentry_needs_power_sensor(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """An account without power sensors has nothing to plan."""
    prices = [s for s in load_fixture("sensors.json") if s["unit"] == "EUR/MWh"]
    entry = await _loaded(hass, mock_config_entry, prices)
    result = await start_flow(hass, entry, SUBENTRY_CONTROLLED_DEVICE)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_power_sensors"
