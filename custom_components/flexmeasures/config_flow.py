"""Config flow for FlexMeasures: set-up, re-login and reconfiguration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import ConfigFlow, ConfigFlowResult
from homeassistant.const import CONF_EMAIL, CONF_PASSWORD, CONF_URL, CONF_VERIFY_SSL
from homeassistant.helpers.selector import (
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)

from .api import (
    FlexMeasuresAuthenticationError,
    FlexMeasuresConnectionError,
    FlexMeasuresInvalidUrlError,
    FlexMeasuresServerTooOldError,
    ServerInfo,
    async_create_api,
)
from .compat import vol
from .const import CONF_ACCOUNT_ID, DOMAIN, LOGGER

PASSWORD_SELECTOR = TextSelector(
    TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="current-password")
)


def _connection_schema(*, password_required: bool) -> vol.Schema:
    """Return the server-and-credentials form; reconfigure may keep the password."""
    password_key = vol.Required if password_required else vol.Optional
    return vol.Schema(
        {
            vol.Required(CONF_URL): TextSelector(
                TextSelectorConfig(type=TextSelectorType.URL)
            ),
            vol.Required(CONF_EMAIL): TextSelector(
                TextSelectorConfig(type=TextSelectorType.EMAIL, autocomplete="username")
            ),
            password_key(CONF_PASSWORD): PASSWORD_SELECTOR,
            vol.Required(CONF_VERIFY_SSL, default=True): bool,
        }
    )


USER_SCHEMA = _connection_schema(password_required=True)
RECONFIGURE_SCHEMA = _connection_schema(password_required=False)

REAUTH_SCHEMA = vol.Schema({vol.Required(CONF_PASSWORD): PASSWORD_SELECTOR})


def unique_id_for(server: ServerInfo) -> str:
    """Return the entry's unique id: one entry per account per server."""
    return f"{server.url}_{server.account_id}"


class FlexMeasuresConfigFlow(ConfigFlow, domain=DOMAIN):
    """Handle a config flow for FlexMeasures."""

    VERSION = 1

    async def _async_connect(
        self, data: Mapping[str, Any]
    ) -> tuple[ServerInfo | None, dict[str, str]]:
        """Test the connection; return what was learned or the form errors."""
        errors: dict[str, str] = {}
        try:
            server = await async_create_api(self.hass, data).async_connect()
        except FlexMeasuresInvalidUrlError:
            errors[CONF_URL] = "invalid_url"
        except FlexMeasuresAuthenticationError:
            errors["base"] = "invalid_auth"
        except FlexMeasuresServerTooOldError:
            errors["base"] = "server_too_old"
        except FlexMeasuresConnectionError:
            errors["base"] = "cannot_connect"
        except Exception:  # noqa: BLE001
            LOGGER.exception("Unexpected error while connecting to FlexMeasures")
            errors["base"] = "unknown"
        else:
            return server, errors
        return None, errors

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the server and the credentials."""
        errors: dict[str, str] = {}
        if user_input is not None:
            server, errors = await self._async_connect(user_input)
            if server is not None:
                await self.async_set_unique_id(unique_id_for(server))
                self._abort_if_unique_id_configured()
                return self.async_create_entry(
                    title=f"{server.account_name} ({server.url})",
                    data=_entry_data(user_input, server),
                )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(
                USER_SCHEMA, _without_password(user_input)
            ),
            errors=errors,
        )

    async def async_step_reauth(
        self, entry_data: Mapping[str, Any]
    ) -> ConfigFlowResult:
        """Start a re-login after the server refused the credentials."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the new password."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {**entry.data, **user_input}
            server, errors = await self._async_connect(data)
            if server is not None:
                await self.async_set_unique_id(unique_id_for(server))
                self._abort_if_unique_id_mismatch(reason="wrong_account")
                return self.async_update_reload_and_abort(entry, data=data)
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=REAUTH_SCHEMA,
            errors=errors,
            description_placeholders={
                CONF_EMAIL: entry.data[CONF_EMAIL],
                CONF_URL: entry.data[CONF_URL],
            },
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the server address or credentials of an existing entry."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            user_input = {CONF_PASSWORD: entry.data[CONF_PASSWORD], **user_input}
            server, errors = await self._async_connect(user_input)
            if server is not None:
                if server.account_id != entry.data[CONF_ACCOUNT_ID]:
                    return self.async_abort(reason="wrong_account")
                new_unique_id = unique_id_for(server)
                if new_unique_id != entry.unique_id:
                    await self.async_set_unique_id(new_unique_id)
                    self._abort_if_unique_id_configured()
                return self.async_update_reload_and_abort(
                    entry,
                    unique_id=new_unique_id,
                    data=_entry_data(user_input, server),
                )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                RECONFIGURE_SCHEMA, _without_password(user_input or entry.data)
            ),
            errors=errors,
        )


def _without_password(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return form defaults: what the user typed, never the password."""
    return {key: value for key, value in (data or {}).items() if key != CONF_PASSWORD}


def _entry_data(user_input: Mapping[str, Any], server: ServerInfo) -> dict[str, Any]:
    """Return what an entry stores: the normalized URL and the account it belongs to."""
    return {**user_input, CONF_URL: server.url, CONF_ACCOUNT_ID: server.account_id}
