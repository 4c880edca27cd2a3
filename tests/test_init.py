"""Tests for setting up and unloading a FlexMeasures entry."""

from __future__ import annotations

from datetime import timedelta
import logging
from types import MappingProxyType

from aiohttp import ClientConnectionError
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState, ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures import async_remove_config_entry_device
from custom_components.flexmeasures.const import (
    CONF_SCAN_INTERVAL,
    DOMAIN,
    SUBENTRY_MEASUREMENT_LINK,
)

from .conftest import UNIQUE_ID, FakeFlexMeasures, find_device, link_subentry

# Logs at debug level, asserted free of the password, token and e-mail.
pytestmark = pytest.mark.usefixtures("no_secrets_logged")


async def test_setup_and_unload(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """The entry loads with the server's inventory and unloads cleanly."""
    entry = init_integration
    assert entry.state is ConfigEntryState.LOADED
    data = entry.runtime_data
    assert data.server.version == "1.0.1"
    assert data.server.account_name == "Home"
    assert set(data.inventory.data.assets) == {10, 11, 12}
    assert data.inventory.data.sensors[20].unit == "kW"

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED  # type: ignore[comparison-overlap]


@pytest.mark.parametrize(
    ("failure", "state"),
    [
        (ClientConnectionError("refused"), ConfigEntryState.SETUP_RETRY),
        (TimeoutError(), ConfigEntryState.SETUP_RETRY),
    ],
)
async def test_setup_unreachable(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
    failure: BaseException,
    state: ConfigEntryState,
) -> None:
    """An unreachable server makes Home Assistant retry later."""
    fake_server.errors["*"] = failure
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is state
    assert "Error while talking to FlexMeasures" in str(mock_config_entry.reason)


async def test_setup_server_too_old(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
) -> None:
    """A server that is too old is retried and the reason names its version."""
    fake_server.responses["GET /api/"]["flexmeasures_version"] = "0.20.0"
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.SETUP_RETRY
    assert "0.20.0" in str(mock_config_entry.reason)


async def test_setup_bad_credentials_starts_reauth(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
) -> None:
    """A refused password at start-up asks the user to log in again."""
    fake_server.password = "changed on the server"  # noqa: S105
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert mock_config_entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]


async def test_runtime_401_starts_reauth(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_server: FakeFlexMeasures,
) -> None:
    """Expired token plus changed password at runtime leads to the re-login form."""
    fake_server.unauthorized_requests = 1
    fake_server.password = "changed on the server"  # noqa: S105
    await init_integration.runtime_data.inventory.async_refresh()
    await hass.async_block_till_done()

    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]
    assert not init_integration.runtime_data.inventory.last_update_success


async def test_runtime_token_renewal_is_silent(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_server: FakeFlexMeasures,
) -> None:
    """An expired token is renewed without bothering the user."""
    logins = fake_server.count("POST /api/requestAuthToken")
    fake_server.unauthorized_requests = 1
    await init_integration.runtime_data.inventory.async_refresh()
    await hass.async_block_till_done()

    assert fake_server.count("POST /api/requestAuthToken") == logins + 1
    assert init_integration.runtime_data.inventory.last_update_success
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (ClientConnectionError("refused"), "Error while talking to FlexMeasures"),
        ("bad_payload", "could not read"),
    ],
)
async def test_runtime_outage_logged_once_and_recovers(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_server: FakeFlexMeasures,
    caplog: pytest.LogCaptureFixture,
    failure: BaseException | str,
    message: str,
) -> None:
    """A failing refresh is logged once, not per attempt, and recovery once."""
    coordinator = init_integration.runtime_data.inventory
    good = fake_server.responses["GET /api/v3_0/assets"]
    if isinstance(failure, BaseException):
        fake_server.errors["*"] = failure
    else:
        fake_server.responses["GET /api/v3_0/assets"] = [{"no": "id"}]
    for _ in range(3):
        await coordinator.async_refresh()
    assert not coordinator.last_update_success
    assert _errors_mentioning(caplog, message) == 1

    fake_server.errors.clear()
    fake_server.responses["GET /api/v3_0/assets"] = good
    await init_integration.runtime_data.inventory.async_refresh()
    await hass.async_block_till_done()
    assert coordinator.last_update_success
    assert caplog.text.count("Fetching flexmeasures inventory data recovered") == 1


# --- Outages and entry updates (issue 9) -------------------------------------------

INTERNAL_ERROR = {"errors": ["An internal error has occurred."], "status": 500}


async def test_runtime_database_outage_is_not_a_reauth(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_server: FakeFlexMeasures,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Tokens refused and login failing with 500 (no database): an outage, no reauth."""
    coordinator = init_integration.runtime_data.sensor_values
    answers = dict(fake_server.responses)
    fake_server.unauthorized_requests = 10_000
    fake_server.statuses["POST /api/requestAuthToken"] = 500
    fake_server.responses["POST /api/requestAuthToken"] = INTERNAL_ERROR
    for _ in range(3):
        await coordinator.async_refresh()
    await hass.async_block_till_done()
    assert not coordinator.last_update_success
    assert not hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert _errors_mentioning(caplog, "HTTP 500") == 1

    fake_server.unauthorized_requests = 0
    fake_server.statuses.clear()
    fake_server.responses.update(answers)
    await coordinator.async_refresh()
    assert coordinator.last_update_success
    assert caplog.text.count("Fetching flexmeasures sensor values data recovered") == 1


def _value_reads(fake_server: FakeFlexMeasures) -> int:
    """Return how many sensor values were read."""
    return sum(
        1
        for method, path, _ in fake_server.calls
        if method == "GET" and path.startswith("/api/v3_0/sensors/")
    )


async def test_only_changed_options_refresh_the_values(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_server: FakeFlexMeasures,
) -> None:
    """Entry changes other than options (a subentry, the title) read nothing."""
    entry = init_integration
    reads = _value_reads(fake_server)
    hass.config_entries.async_update_entry(entry, title="Renamed")
    hass.config_entries.async_add_subentry(
        entry,
        ConfigSubentry(
            data=MappingProxyType(link_subentry()["data"]),
            subentry_type=SUBENTRY_MEASUREMENT_LINK,
            title="A link",
            unique_id=None,
        ),
    )
    await hass.async_block_till_done()
    assert _value_reads(fake_server) == reads

    hass.config_entries.async_update_entry(entry, options={CONF_SCAN_INTERVAL: 2})
    await hass.async_block_till_done()
    assert _value_reads(fake_server) > reads
    assert entry.runtime_data.sensor_values.period == timedelta(minutes=2)


def _errors_mentioning(caplog: pytest.LogCaptureFixture, text: str) -> int:
    """Count log records at warning level or above that mention ``text``."""
    return sum(
        1
        for record in caplog.records
        if record.levelno >= logging.WARNING and text in record.getMessage()
    )


# --- Device removal (issue 4) --------------------------------------------------


@pytest.mark.parametrize(
    ("identifier", "on_server", "allowed"),
    [
        (f"{UNIQUE_ID}_asset_12", True, False),
        (f"{UNIQUE_ID}_asset_12", False, True),
        (f"{UNIQUE_ID}_something_else", False, False),
    ],
)
async def test_remove_device(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_server: FakeFlexMeasures,
    device_registry: dr.DeviceRegistry,
    identifier: str,
    on_server: bool,
    allowed: bool,
) -> None:
    """A device can be removed by hand only once its asset is gone from the server."""
    device = device_registry.async_get_or_create(
        config_entry_id=init_integration.entry_id,
        identifiers={(DOMAIN, identifier)},
    )
    if not on_server:
        fake_server.responses["GET /api/v3_0/assets"] = [
            asset
            for asset in fake_server.responses["GET /api/v3_0/assets"]
            if asset["id"] != 12
        ]
    assert (
        await async_remove_config_entry_device(hass, init_integration, device)
        is allowed
    )


async def test_remove_device_server_unreachable(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    fake_server: FakeFlexMeasures,
    device_registry: dr.DeviceRegistry,
) -> None:
    """Whether the asset still exists cannot be checked: a translated error."""
    device = find_device(
        hass, init_integration.entry_id, (DOMAIN, f"{UNIQUE_ID}_asset_12")
    )
    assert device is not None
    fake_server.errors["*"] = ClientConnectionError("refused")
    with pytest.raises(HomeAssistantError) as excinfo:
        await async_remove_config_entry_device(hass, init_integration, device)
    assert excinfo.value.translation_key == "communication_error"


@pytest.mark.parametrize("failure", ["unauthorized", "server_error", "connection"])
async def test_refresh_failure_logs_no_secrets(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    init_integration: MockConfigEntry,
    failure: str,
) -> None:
    """A refresh against a failing server fails; its debug logs hold no secret."""
    if failure == "unauthorized":
        fake_server.unauthorized_requests = 10
    elif failure == "server_error":
        fake_server.handlers["GET /api/v3_0/assets"] = lambda *_: (500, {})
    else:
        fake_server.errors["*"] = ClientConnectionError("refused")
    inventory = init_integration.runtime_data.inventory
    await inventory.async_refresh()
    assert not inventory.last_update_success
