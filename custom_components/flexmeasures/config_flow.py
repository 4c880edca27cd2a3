"""Config flow for FlexMeasures: set-up, re-login and reconfiguration."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, ClassVar, Final, cast

from homeassistant.components.sensor import (
    ATTR_STATE_CLASS,
    DOMAIN as SENSOR_DOMAIN,
    SensorStateClass,
)
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentry,
    ConfigSubentryFlow,
    OptionsFlow,
    SubentryFlowResult,
)
from homeassistant.const import (
    ATTR_UNIT_OF_MEASUREMENT,
    CONF_EMAIL,
    CONF_ENTITY_ID,
    CONF_NAME,
    CONF_PASSWORD,
    CONF_UNIT_OF_MEASUREMENT,
    CONF_URL,
    CONF_VERIFY_SSL,
)
from homeassistant.core import State, callback
from homeassistant.data_entry_flow import AbortFlow, section
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.selector import (
    BooleanSelector,
    DurationSelector,
    EntitySelector,
    EntitySelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    Selector,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.util import dt as dt_util

from .aggregation import Aggregation, parse_number, units_compatible
from .api import (
    Asset,
    FlexMeasuresApi,
    FlexMeasuresError,
    FlexMeasuresRejectedError,
    Sensor,
    ServerInfo,
    async_create_api,
)
from .compat import vol
from .const import (
    CONF_ACCOUNT_ID,
    CONF_AGGREGATION,
    CONF_ASSET_ID,
    CONF_AUTO_ENTITIES,
    CONF_AUTO_INTERVAL,
    CONF_AUTO_RESCHEDULE,
    CONF_AUTO_SOC_DRIFT,
    CONF_CAPACITY,
    CONF_CHARGE_POWER,
    CONF_CONSUMPTION_PRICE_SENSOR,
    CONF_DISCHARGE_POWER,
    CONF_EXCLUDED_SENSORS,
    CONF_HORIZON,
    CONF_INFLEXIBLE_SENSORS,
    CONF_INVERT,
    CONF_KIND,
    CONF_POWER_SENSOR,
    CONF_PRODUCTION_PRICE_SENSOR,
    CONF_REPLAN_ON_PRICES,
    CONF_ROUNDTRIP_EFFICIENCY,
    CONF_S2,
    CONF_S2_ACTUATOR_STATUS_SENSOR,
    CONF_S2_ENABLED,
    CONF_S2_FILL_LEVEL_SENSOR,
    CONF_S2_POWER_SENSOR,
    CONF_S2_USAGE_FORECAST_SENSOR,
    CONF_SCAN_INTERVAL,
    CONF_SENSOR_ID,
    CONF_SENSOR_RESOLUTION,
    CONF_SENSOR_UNIT,
    CONF_SITE_DEVICES,
    CONF_SITE_POWER_CAPACITY,
    CONF_SOC_ENTITY,
    CONF_SOC_MAX,
    CONF_SOC_MIN,
    CONF_SOC_UNIT,
    CONF_SOURCE_ATTRIBUTE,
    CONF_SOURCE_ENTITY,
    CONF_SOURCE_ENTRY,
    CONF_SOURCE_SHAPE,
    CONF_SOURCE_TYPE,
    CONF_SOURCE_UNIT,
    CONF_UPLOAD_INTERVAL,
    CONF_USE_FALLBACK_PLANS,
    CONFIG_ENTRY_MINOR_VERSION,
    DEFAULT_UPLOAD_INTERVAL,
    DEFAULT_USE_FALLBACK_PLANS,
    DOMAIN,
    LOGGER,
    MAX_SCAN_INTERVAL_MINUTES,
    MIN_SCAN_INTERVAL_MINUTES,
    SOURCE_ACTION,
    SOURCE_ATTRIBUTE,
    SOURCE_SOLAR_FORECAST,
    SUBENTRY_CONTROLLED_DEVICE,
    SUBENTRY_FORECAST_LINK,
    SUBENTRY_MEASUREMENT_LINK,
    SUBENTRY_SITE,
)
from .coordinator import Inventory, exposed_sensors, scan_interval
from .data import ErrorKind, FlexMeasuresConfigEntry, error_kind
from .forecasts import sources
from .forecasts.convert import ConversionError, rate_converter
from .forecasts.model import SourceSeries
from .forecasts.shapes import (
    Shape,
    UnreadableShapeError,
    detect_shape,
    read_series,
    slot_lists,
)
from .identity import account_unique_id
from .scheduling import DeviceKind, SocUnit
from .util import selector_seconds

# The form error a failed log-in shows (an invalid URL is shown at the URL field).
_FORM_ERRORS: Final = {
    ErrorKind.AUTHENTICATION: "invalid_auth",
    ErrorKind.SERVER_TOO_OLD: "server_too_old",
    ErrorKind.INVALID_URL: "invalid_url",
    # Something answers in JSON, but not as FlexMeasures does to a log-in.
    ErrorKind.REJECTED: "unexpected_response",
    ErrorKind.CONNECTION: "cannot_connect",
    ErrorKind.RESPONSE: "unexpected_response",
}

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


type AccountFingerprint = tuple[str, frozenset[tuple[int, str]]]


async def _async_account_fingerprint(
    api: FlexMeasuresApi, server: ServerInfo
) -> AccountFingerprint:
    """Return what tells two servers' accounts with the same id apart.

    FlexMeasures numbers accounts per server (every fresh server has an
    account 1) and has no server id of its own, so two entries for one account
    id are the same account when the account's name and its assets (ids and
    names) are the same.
    """
    assets = await api.async_get_assets()
    return server.account_name, frozenset(
        (asset.id, asset.name)
        for asset in assets
        if asset.account_id in (None, server.account_id)
    )


def subentry_unique_id(subentry_type: str, sensor_id: int | str) -> str:
    """Return a subentry's unique id: its type and FlexMeasures sensor.

    Home Assistant refuses a unique id twice within an entry whatever the
    subentry type, so the type is part of it: one sensor can be both measured
    (a measurement link) and planned (a controlled device).
    """
    return f"{subentry_type}_{sensor_id}"


class FlexMeasuresConfigFlow(ConfigFlow, domain=DOMAIN):
    """Handle a config flow for FlexMeasures."""

    VERSION = 1
    MINOR_VERSION = CONFIG_ENTRY_MINOR_VERSION

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> FlexMeasuresOptionsFlow:
        """Return the options flow."""
        return FlexMeasuresOptionsFlow()

    @classmethod
    @callback
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Return the subentries an entry can have: devices to plan, links to send."""
        return {
            SUBENTRY_CONTROLLED_DEVICE: ControlledDeviceSubentryFlow,
            SUBENTRY_MEASUREMENT_LINK: MeasurementLinkSubentryFlow,
            SUBENTRY_FORECAST_LINK: ForecastLinkSubentryFlow,
            SUBENTRY_SITE: SiteSubentryFlow,
        }

    _api: FlexMeasuresApi

    async def _async_connect(
        self, data: Mapping[str, Any]
    ) -> tuple[ServerInfo | None, dict[str, str]]:
        """Test the connection; return what was learned or the form errors."""
        errors: dict[str, str] = {}
        try:
            self._api = async_create_api(self.hass, data)
            server = await self._api.async_connect()
        except FlexMeasuresError as err:
            kind = error_kind(err)
            LOGGER.debug("No FlexMeasures log-in at %s: %s", data[CONF_URL], err)
            errors[CONF_URL if kind is ErrorKind.INVALID_URL else "base"] = (
                _FORM_ERRORS[kind]
            )
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
                errors = await self._async_check_account(server)
            if server is not None and not errors:
                await self.async_set_unique_id(
                    account_unique_id(
                        server.account_id,
                        {entry.unique_id for entry in self._async_current_entries()},
                    )
                )
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
                if server.account_id != entry.data[CONF_ACCOUNT_ID]:
                    return self.async_abort(reason="wrong_account")
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
                errors = await self._async_check_account(server, entry)
            if server is not None and not errors:
                # The unique id, and so every device and entity id, stays.
                return self.async_update_reload_and_abort(
                    entry, data=_entry_data(user_input, server)
                )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                RECONFIGURE_SCHEMA, _without_password(user_input or entry.data)
            ),
            errors=errors,
        )

    async def _async_check_account(
        self, server: ServerInfo, this_entry: ConfigEntry | None = None
    ) -> dict[str, str]:
        """Abort if another entry holds this account, whatever its address.

        An entry with the same account id at the same address is the same
        account; at another address, both servers are asked (each with its
        own entry's credentials) and compared. Another entry's server that
        does not answer cannot be compared, which aborts too; ours failing
        now is a form error.
        """
        others = [
            entry
            for entry in self._async_current_entries(include_ignore=False)
            if entry.data.get(CONF_ACCOUNT_ID) == server.account_id
            and entry is not this_entry
        ]
        if any(entry.data[CONF_URL] == server.url for entry in others):
            raise AbortFlow("already_configured")
        if not others:
            return {}
        try:
            ours = await _async_account_fingerprint(self._api, server)
        except FlexMeasuresError as err:
            LOGGER.debug("No assets from %s: %s", server.url, err)
            return {"base": "cannot_connect"}
        for entry in others:
            api = async_create_api(self.hass, entry.data)
            try:
                theirs = await _async_account_fingerprint(
                    api, await api.async_connect()
                )
            except FlexMeasuresError as err:
                LOGGER.debug("Cannot compare with %s: %s", entry.title, err)
                raise AbortFlow(
                    "account_not_comparable",
                    description_placeholders={"entry": entry.title},
                ) from err
            if theirs == ours:
                raise AbortFlow("already_configured")
        return {}


def _without_password(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return form defaults: what the user typed, never the password."""
    return {key: value for key, value in (data or {}).items() if key != CONF_PASSWORD}


def _entry_data(user_input: Mapping[str, Any], server: ServerInfo) -> dict[str, Any]:
    """Return what an entry stores: the normalized URL and the account it belongs to."""
    return {**user_input, CONF_URL: server.url, CONF_ACCOUNT_ID: server.account_id}


# --- Options: exposed sensors and polling interval (issue 4) ---------------------

CONF_SENSORS = "sensors"
LABEL_SEPARATOR = " \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK} "


def _sensor_options(inventory: Inventory) -> list[SelectOptionDict]:
    """Return a choice per sensor, labelled "Asset > sensor (unit)", sorted."""
    choices = []
    for sensor in inventory.sensors.values():
        asset = inventory.assets.get(sensor.asset_id)
        if asset is None:
            continue
        label = f"{asset.name}{LABEL_SEPARATOR}{sensor.name}"
        if sensor.unit:
            label += f" ({sensor.unit})"
        choices.append(SelectOptionDict(value=str(sensor.id), label=label))
    return sorted(choices, key=lambda choice: choice["label"].casefold())


class FlexMeasuresOptionsFlow(OptionsFlow):
    """Choose the exposed sensors, their polling interval and fallback plans."""

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show the sensors of the account and the polling interval."""
        entry = self.config_entry
        if entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="not_loaded")
        inventory: Inventory = entry.runtime_data.inventory.data
        if user_input is not None:
            selected = {int(sensor_id) for sensor_id in user_input[CONF_SENSORS]}
            return self.async_create_entry(
                data={
                    **entry.options,
                    CONF_EXCLUDED_SENSORS: sorted(set(inventory.sensors) - selected),
                    CONF_SCAN_INTERVAL: int(user_input[CONF_SCAN_INTERVAL]),
                    CONF_USE_FALLBACK_PLANS: bool(user_input[CONF_USE_FALLBACK_PLANS]),
                }
            )
        schema = vol.Schema(
            {
                vol.Required(CONF_SENSORS): SelectSelector(
                    SelectSelectorConfig(
                        options=_sensor_options(inventory),
                        multiple=True,
                        mode=SelectSelectorMode.LIST,
                    )
                ),
                vol.Required(CONF_SCAN_INTERVAL): NumberSelector(
                    NumberSelectorConfig(
                        min=MIN_SCAN_INTERVAL_MINUTES,
                        max=MAX_SCAN_INTERVAL_MINUTES,
                        step=1,
                        mode=NumberSelectorMode.BOX,
                        unit_of_measurement="min",
                    )
                ),
                vol.Required(CONF_USE_FALLBACK_PLANS): BooleanSelector(),
            }
        )
        defaults = {
            CONF_SENSORS: [
                str(sensor.id) for sensor in exposed_sensors(inventory, entry.options)
            ],
            CONF_SCAN_INTERVAL: scan_interval(entry.options).total_seconds() // 60,
            CONF_USE_FALLBACK_PLANS: entry.options.get(
                CONF_USE_FALLBACK_PLANS, DEFAULT_USE_FALLBACK_PLANS
            ),
        }
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(schema, defaults),
        )


# --- Scheduling: controlled devices (subentry flow) ---------------------------

POWER_UNITS = frozenset({"W", "kW", "MW", "VA", "kVA", "MVA"})


def _is_price_unit(unit: str) -> bool:
    """Return whether a unit is a price per energy, such as EUR/MWh."""
    return "/" in unit and unit.rsplit("/", 1)[1] in {"Wh", "kWh", "MWh"}


def _number(
    minimum: float, maximum: float | None = None, unit: str | None = None
) -> NumberSelector:
    """Return a box to type a number in."""
    config = NumberSelectorConfig(min=minimum, step="any", mode=NumberSelectorMode.BOX)
    if maximum is not None:
        config["max"] = maximum
    if unit is not None:
        config["unit_of_measurement"] = unit
    return NumberSelector(config)


def _dropdown(options: Sequence[SelectOptionDict] | Sequence[str]) -> SelectSelector:
    """Return a dropdown of these options."""
    return SelectSelector(
        SelectSelectorConfig(options=options, mode=SelectSelectorMode.DROPDOWN)
    )


def _device_schema(
    power_options: list[SelectOptionDict],
    price_options: list[SelectOptionDict],
    all_options: list[SelectOptionDict],
) -> vol.Schema:
    """Return the controlled-device form."""
    return vol.Schema(
        {
            vol.Required(CONF_NAME): TextSelector(),
            vol.Required(CONF_KIND, default=DeviceKind.BATTERY.value): SelectSelector(
                SelectSelectorConfig(
                    options=[kind.value for kind in DeviceKind],
                    translation_key="device_kind",
                    mode=SelectSelectorMode.DROPDOWN,
                )
            ),
            vol.Required(CONF_POWER_SENSOR): _dropdown(power_options),
            vol.Required(CONF_SOC_ENTITY): EntitySelector(
                EntitySelectorConfig(domain="sensor")
            ),
            vol.Required(CONF_SOC_UNIT, default=SocUnit.PERCENT.value): SelectSelector(
                SelectSelectorConfig(
                    options=[unit.value for unit in SocUnit],
                    translation_key="soc_unit",
                    mode=SelectSelectorMode.LIST,
                )
            ),
            vol.Optional(CONF_CAPACITY): _number(0, unit="kWh"),
            vol.Required(CONF_SOC_MIN, default=10): _number(0),
            vol.Required(CONF_SOC_MAX, default=90): _number(0),
            vol.Required(CONF_CHARGE_POWER): _number(0, unit="kW"),
            vol.Required(CONF_DISCHARGE_POWER, default=0): _number(0, unit="kW"),
            vol.Optional(CONF_ROUNDTRIP_EFFICIENCY): _number(1, 100, "%"),
            vol.Optional(CONF_CONSUMPTION_PRICE_SENSOR): _dropdown(price_options),
            vol.Optional(CONF_PRODUCTION_PRICE_SENSOR): _dropdown(price_options),
            vol.Required(CONF_HORIZON, default=24): _number(1, 168, "h"),
            vol.Required(CONF_AUTO_RESCHEDULE): section(
                vol.Schema(
                    {
                        vol.Required(CONF_AUTO_INTERVAL, default=0): _number(
                            0, 1440, "min"
                        ),
                        vol.Required(CONF_AUTO_SOC_DRIFT, default=0): _number(0),
                        vol.Optional(CONF_AUTO_ENTITIES): EntitySelector(
                            EntitySelectorConfig(multiple=True)
                        ),
                    }
                ),
                {"collapsed": True},
            ),
            # The frontend submits a section only with its required fields set.
            vol.Optional(CONF_S2, default={CONF_S2_ENABLED: False}): section(
                vol.Schema(
                    {
                        vol.Required(CONF_S2_ENABLED, default=False): BooleanSelector(),
                        vol.Optional(CONF_S2_POWER_SENSOR): _dropdown(power_options),
                        vol.Optional(CONF_S2_FILL_LEVEL_SENSOR): _dropdown(all_options),
                        vol.Optional(CONF_S2_USAGE_FORECAST_SENSOR): _dropdown(
                            all_options
                        ),
                        vol.Optional(CONF_S2_ACTUATOR_STATUS_SENSOR): _dropdown(
                            all_options
                        ),
                    }
                ),
                {"collapsed": True},
            ),
        }
    )


def _validate_device(data: dict[str, Any]) -> dict[str, str]:
    """Return form errors for inconsistent SoC settings."""
    errors: dict[str, str] = {}
    percent = data[CONF_SOC_UNIT] == SocUnit.PERCENT
    capacity = data.get(CONF_CAPACITY)
    if percent and not capacity:
        errors[CONF_CAPACITY] = "capacity_required"
    if data[CONF_SOC_MIN] >= data[CONF_SOC_MAX]:
        errors[CONF_SOC_MAX] = "soc_min_above_max"
    elif percent and data[CONF_SOC_MAX] > 100:
        errors[CONF_SOC_MAX] = "soc_above_100"
    elif not percent and capacity and data[CONF_SOC_MAX] > capacity:
        errors[CONF_SOC_MAX] = "soc_above_capacity"
    return errors


class _FlexMeasuresSubentryFlow(ConfigSubentryFlow, ABC):
    """Add or change a subentry; its forms need the loaded entry's inventory."""

    @property
    def _entry(self) -> FlexMeasuresConfigEntry:
        """Return the FlexMeasures entry this subentry belongs to."""
        return cast("FlexMeasuresConfigEntry", self._get_entry())

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Add a subentry."""
        return await self._async_step_loaded("user", user_input)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Change a subentry."""
        return await self._async_step_loaded("reconfigure", user_input)

    async def _async_step_loaded(
        self, step_id: str, user_input: dict[str, Any] | None
    ) -> SubentryFlowResult:
        """Abort unless the entry is loaded; otherwise show the first form."""
        if self._entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="entry_not_loaded")
        return await self._async_step_first(step_id, user_input)

    @abstractmethod
    async def _async_step_first(
        self, step_id: str, user_input: dict[str, Any] | None
    ) -> SubentryFlowResult:
        """Show and handle the first form (step ``user`` or ``reconfigure``)."""


class ControlledDeviceSubentryFlow(_FlexMeasuresSubentryFlow):
    """Add or change a device whose schedule FlexMeasures computes."""

    async def _async_step_first(
        self, step_id: str, user_input: dict[str, Any] | None
    ) -> SubentryFlowResult:
        """Show, validate and save the controlled-device form."""
        entry = self._entry
        inventory = entry.runtime_data.inventory.data
        power_options: list[SelectOptionDict] = []
        price_options: list[SelectOptionDict] = []
        all_options: list[SelectOptionDict] = []
        for sensor in sorted(inventory.sensors.values(), key=lambda item: item.id):
            asset = inventory.assets.get(sensor.asset_id)
            option = SelectOptionDict(
                value=str(sensor.id),
                label=f"{asset.name if asset else sensor.asset_id}"
                f"{LABEL_SEPARATOR}{sensor.name} ({sensor.unit})",
            )
            all_options.append(option)
            if sensor.unit in POWER_UNITS:
                power_options.append(option)
            elif _is_price_unit(sensor.unit):
                price_options.append(option)
        if not power_options:
            return self.async_abort(reason="no_power_sensors")

        reconfiguring = step_id == "reconfigure"
        subentry = self._get_reconfigure_subentry() if reconfiguring else None
        errors: dict[str, str] = {}
        if user_input is not None:
            errors = _validate_device(user_input)
            unique_id = subentry_unique_id(
                SUBENTRY_CONTROLLED_DEVICE, user_input[CONF_POWER_SENSOR]
            )
            if any(
                other.unique_id == unique_id
                and other.subentry_type == SUBENTRY_CONTROLLED_DEVICE
                and (subentry is None or other.subentry_id != subentry.subentry_id)
                for other in entry.subentries.values()
            ):
                errors[CONF_POWER_SENSOR] = "already_configured"
            if not errors:
                data = _device_data(user_input)
                if subentry is not None:
                    return self.async_update_and_abort(
                        entry,
                        subentry,
                        title=user_input[CONF_NAME],
                        unique_id=unique_id,
                        data=data,
                    )
                return self.async_create_entry(
                    title=user_input[CONF_NAME], data=data, unique_id=unique_id
                )
        suggested = user_input or (
            _device_form_values(subentry.data) if subentry else None
        )
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(
                _device_schema(power_options, price_options, all_options), suggested
            ),
            errors=errors,
        )


# Sensor ids in a controlled device's data, stored as numbers: top-level keys,
# and keys of the S2 section.
_DEVICE_SENSOR_KEYS: Final = (
    CONF_POWER_SENSOR,
    CONF_CONSUMPTION_PRICE_SENSOR,
    CONF_PRODUCTION_PRICE_SENSOR,
)
_S2_SENSOR_KEYS: Final = (
    CONF_S2_POWER_SENSOR,
    CONF_S2_FILL_LEVEL_SENSOR,
    CONF_S2_USAGE_FORECAST_SENSOR,
    CONF_S2_ACTUATOR_STATUS_SENSOR,
)


def _convert_sensor_ids(
    data: Mapping[str, Any], keys: tuple[str, ...], convert: Callable[[Any], Any]
) -> dict[str, Any]:
    """Return a copy of ``data`` with the set sensor ids under ``keys`` converted."""
    values = dict(data)
    for key in keys:
        if values.get(key) not in (None, ""):
            values[key] = convert(values[key])
    return values


def _device_data(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Return what a controlled-device subentry stores: sensor ids as numbers."""
    data = _convert_sensor_ids(user_input, _DEVICE_SENSOR_KEYS, int)
    data[CONF_S2] = _convert_sensor_ids(data[CONF_S2], _S2_SENSOR_KEYS, int)
    return data


def _device_form_values(data: Mapping[str, Any]) -> dict[str, Any]:
    """Return stored subentry data as form values: sensor ids as strings."""
    values = _convert_sensor_ids(data, _DEVICE_SENSOR_KEYS, str)
    # Devices added before S2 was configurable have no S2 section.
    values[CONF_S2] = _convert_sensor_ids(
        values.get(CONF_S2) or {}, _S2_SENSOR_KEYS, str
    )
    return values


# Measurement links: subentries that send an entity's states to a sensor.

NEW_SENSOR: Final = "new"
SEPARATOR: Final = " \u203a "  # "Home battery > power"
ARROW: Final = " \u2192 "  # "Battery power -> Home battery > power"
CONF_SENSOR: Final = "sensor"
CONF_ASSET: Final = "asset"
CONF_RESOLUTION: Final = "resolution"
MIN_UPLOAD_INTERVAL: Final = timedelta(minutes=1)
DEFAULT_NEW_SENSOR_RESOLUTION: Final = {"hours": 0, "minutes": 15, "seconds": 0}

LINK_ENTITY_SCHEMA: Final = vol.Schema(
    {
        vol.Required(CONF_ENTITY_ID): EntitySelector(
            EntitySelectorConfig(domain=SENSOR_DOMAIN)
        ),
    }
)


class _LinkSubentryFlow(_FlexMeasuresSubentryFlow):
    """Add or change a link that sends what Home Assistant holds to one sensor."""

    _subentry_type: ClassVar[str]

    @property
    def _previous(self) -> Mapping[str, Any]:
        """Return the link being changed (empty when adding one)."""
        if self.source == SOURCE_RECONFIGURE:
            return self._get_reconfigure_subentry().data
        return {}

    def _sensor_selector(self, accepts: Callable[[str | None], bool]) -> SelectSelector:
        """Return a dropdown of the sensors of a unit ``accepts``, and "new"."""
        inventory = self._entry.runtime_data.inventory.data
        options = [
            SelectOptionDict(
                value=str(sensor.id), label=_sensor_label(inventory, sensor)
            )
            for sensor in inventory.sensors.values()
            if accepts(sensor.unit)
        ]
        options.sort(key=lambda option: option["label"].casefold())
        options.append(SelectOptionDict(value=NEW_SENSOR, label=NEW_SENSOR))
        return SelectSelector(
            SelectSelectorConfig(
                options=options,
                mode=SelectSelectorMode.DROPDOWN,
                translation_key="link_sensor",
            )
        )

    @property
    def _previous_sensor(self) -> dict[str, str]:
        """Return the sensor choice of the link being changed (none when adding)."""
        if self._previous:
            return {CONF_SENSOR: str(self._previous[CONF_SENSOR_ID])}
        return {}

    def _linked_elsewhere(self, choice: str) -> bool:
        """Return whether another link of this type already uses the chosen sensor."""
        if choice == NEW_SENSOR:
            return False
        current = (
            self._get_reconfigure_subentry().subentry_id
            if self.source == SOURCE_RECONFIGURE
            else None
        )
        return any(
            subentry.subentry_type == self._subentry_type
            and subentry.subentry_id != current
            and subentry.data.get(CONF_SENSOR_ID) == int(choice)
            for subentry in self._entry.subentries.values()
        )

    async def _async_use_sensor(self, choice: str) -> SubentryFlowResult:
        """Go on to create a sensor, or save the link to the chosen one."""
        if choice == NEW_SENSOR:
            return await self.async_step_new_sensor()
        return self._async_finish(
            self._entry.runtime_data.inventory.data.sensors[int(choice)]
        )

    @abstractmethod
    async def async_step_new_sensor(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Create a new FlexMeasures sensor on an asset for this link."""

    @abstractmethod
    def _async_finish(self, sensor: Sensor) -> SubentryFlowResult:
        """Create or update the link subentry to ``sensor``."""

    @callback
    def _async_save(
        self, name: str, sensor: Sensor, data: Mapping[str, Any]
    ) -> SubentryFlowResult:
        """Create or update the link "name -> sensor" with ``data``."""
        inventory = self._entry.runtime_data.inventory.data
        title = f"{name}{ARROW}{_sensor_label(inventory, sensor)}"
        data = {
            **data,
            CONF_SENSOR_ID: sensor.id,
            CONF_SENSOR_UNIT: sensor.unit,
            CONF_SENSOR_RESOLUTION: int(sensor.resolution.total_seconds()),
        }
        unique_id = subentry_unique_id(self._subentry_type, sensor.id)
        if self.source == SOURCE_RECONFIGURE:
            return self.async_update_and_abort(
                self._entry,
                self._get_reconfigure_subentry(),
                title=title,
                data=data,
                unique_id=unique_id,
            )
        return self.async_create_entry(title=title, data=data, unique_id=unique_id)


class MeasurementLinkSubentryFlow(_LinkSubentryFlow):
    """Link an entity to a FlexMeasures sensor, or change such a link."""

    _subentry_type = SUBENTRY_MEASUREMENT_LINK

    def __init__(self) -> None:
        """Start with nothing chosen."""
        self._entity_id = ""
        self._link: dict[str, Any] = {}

    async def _async_step_first(
        self, step_id: str, user_input: dict[str, Any] | None
    ) -> SubentryFlowResult:
        """Ask for a numeric sensor entity."""
        errors: dict[str, str] = {}
        if user_input is not None:
            state = self.hass.states.get(user_input[CONF_ENTITY_ID])
            if state is None or not _is_numeric(state):
                errors[CONF_ENTITY_ID] = "not_numeric"
            else:
                self._entity_id = state.entity_id
                return await self.async_step_sensor()
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(
                LINK_ENTITY_SCHEMA, user_input or self._previous
            ),
            errors=errors,
        )

    async def async_step_sensor(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Choose the FlexMeasures sensor and how values are sent."""
        state = self.hass.states.get(self._entity_id)
        entity_unit = _unit_of(state)
        errors: dict[str, str] = {}
        if user_input is not None:
            interval = selector_seconds(user_input[CONF_UPLOAD_INTERVAL])
            if interval < MIN_UPLOAD_INTERVAL.total_seconds():
                errors[CONF_UPLOAD_INTERVAL] = "interval_too_short"
            elif self._linked_elsewhere(user_input[CONF_SENSOR]):
                errors[CONF_SENSOR] = "already_linked"
            else:
                self._link = user_input
                return await self._async_use_sensor(user_input[CONF_SENSOR])
        defaults = {
            CONF_INVERT: False,
            CONF_AGGREGATION: _default_aggregation(state),
            CONF_UPLOAD_INTERVAL: _duration_dict(DEFAULT_UPLOAD_INTERVAL),
            **self._previous_sensor,
            **{
                key: value
                for key, value in self._previous.items()
                if key in (CONF_INVERT, CONF_AGGREGATION, CONF_UPLOAD_INTERVAL)
            },
            **(user_input or {}),
        }
        schema = vol.Schema(
            {
                vol.Required(CONF_SENSOR): self._sensor_selector(
                    lambda unit: units_compatible(entity_unit, unit)
                ),
                vol.Required(CONF_INVERT): BooleanSelector(),
                vol.Required(CONF_AGGREGATION): SelectSelector(
                    SelectSelectorConfig(
                        options=[kind.value for kind in Aggregation],
                        mode=SelectSelectorMode.LIST,
                        translation_key="aggregation",
                    )
                ),
                vol.Required(CONF_UPLOAD_INTERVAL): DurationSelector(),
            }
        )
        return self.async_show_form(
            step_id="sensor",
            data_schema=self.add_suggested_values_to_schema(schema, defaults),
            errors=errors,
            description_placeholders={
                "entity": _entity_name(state, self._entity_id),
                "unit": entity_unit or "-",
            },
        )

    async def async_step_new_sensor(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Create a new FlexMeasures sensor on an asset for this link."""
        state = self.hass.states.get(self._entity_id)
        entity_unit = _unit_of(state)
        name = _entity_name(state, self._entity_id)
        errors: dict[str, str] = {}
        if user_input is not None:
            if not units_compatible(entity_unit, user_input[CONF_UNIT_OF_MEASUREMENT]):
                errors[CONF_UNIT_OF_MEASUREMENT] = "incompatible_unit"
            else:
                sensor, errors = await _async_create_sensor(self, user_input)
                if sensor is not None:
                    return self._async_finish(sensor)
        return _new_sensor_form(
            self,
            user_input,
            errors,
            name=name,
            unit=entity_unit,
            placeholders={"entity": name},
        )

    @callback
    def _async_finish(self, sensor: Sensor) -> SubentryFlowResult:
        """Create or update the link subentry."""
        state = self.hass.states.get(self._entity_id)
        return self._async_save(
            _entity_name(state, self._entity_id),
            sensor,
            {
                CONF_ENTITY_ID: self._entity_id,
                CONF_INVERT: bool(self._link[CONF_INVERT]),
                CONF_AGGREGATION: self._link[CONF_AGGREGATION],
                CONF_UPLOAD_INTERVAL: self._link[CONF_UPLOAD_INTERVAL],
            },
        )


async def _async_create_sensor(
    flow: ConfigSubentryFlow, user_input: Mapping[str, Any]
) -> tuple[Sensor | None, dict[str, str]]:
    """Create the sensor of a new-sensor form; return it, or the form errors."""
    data = cast("FlexMeasuresConfigEntry", flow._get_entry()).runtime_data  # noqa: SLF001
    errors: dict[str, str] = {}
    asset_id, name = int(user_input[CONF_ASSET]), user_input[CONF_NAME].strip()
    # FlexMeasures 1.0.1 answers a second sensor of one name on an asset with a
    # 500 (a database constraint), which would read as "cannot connect".
    if any(
        sensor.asset_id == asset_id and sensor.name == name
        for sensor in data.inventory.data.sensors.values()
    ):
        errors[CONF_NAME] = "sensor_name_taken"
        return None, errors
    try:
        sensor = await data.api.async_add_sensor(
            asset_id=asset_id,
            name=name,
            unit=user_input[CONF_UNIT_OF_MEASUREMENT].strip(),
            resolution=timedelta(seconds=selector_seconds(user_input[CONF_RESOLUTION])),
            timezone=flow.hass.config.time_zone,
        )
    except FlexMeasuresRejectedError:
        errors["base"] = "sensor_rejected"
    except FlexMeasuresError:
        errors["base"] = "cannot_connect"
    except Exception:  # noqa: BLE001
        LOGGER.exception("Unexpected error while creating a sensor")
        errors["base"] = "unknown"
    else:
        await data.inventory.async_request_refresh()
        return sensor, errors
    return None, errors


def _new_sensor_form(
    flow: ConfigSubentryFlow,
    user_input: Mapping[str, Any] | None,
    errors: dict[str, str],
    *,
    name: str,
    unit: str | None,
    placeholders: Mapping[str, str],
    resolution: Mapping[str, int] = DEFAULT_NEW_SENSOR_RESOLUTION,
) -> SubentryFlowResult:
    """Show the form that creates a sensor on an asset."""
    entry = cast("FlexMeasuresConfigEntry", flow._get_entry())  # noqa: SLF001
    inventory = entry.runtime_data.inventory.data
    assets = sorted(
        (
            SelectOptionDict(value=str(asset.id), label=_asset_label(inventory, asset))
            for asset in inventory.assets.values()
        ),
        key=lambda option: option["label"].casefold(),
    )
    schema = vol.Schema(
        {
            vol.Required(CONF_ASSET): _dropdown(assets),
            vol.Required(CONF_NAME): TextSelector(),
            vol.Required(CONF_UNIT_OF_MEASUREMENT): TextSelector(),
            vol.Required(CONF_RESOLUTION): DurationSelector(),
        }
    )
    defaults = {
        CONF_NAME: name,
        CONF_UNIT_OF_MEASUREMENT: unit,
        CONF_RESOLUTION: dict(resolution),
        **(user_input or {}),
    }
    return flow.async_show_form(
        step_id="new_sensor",
        data_schema=flow.add_suggested_values_to_schema(schema, defaults),
        errors=errors,
        description_placeholders=dict(placeholders),
    )


def _is_numeric(state: State) -> bool:
    """Return whether an entity reports numbers."""
    return (
        ATTR_STATE_CLASS in state.attributes
        or ATTR_UNIT_OF_MEASUREMENT in state.attributes
        or parse_number(state.state) is not None
    )


def _unit_of(state: State | None) -> str | None:
    """Return an entity's unit of measurement."""
    return state.attributes.get(ATTR_UNIT_OF_MEASUREMENT) if state else None


def _entity_name(state: State | None, entity_id: str) -> str:
    """Return an entity's friendly name."""
    return state.name if state else entity_id


def _default_aggregation(state: State | None) -> str:
    """Return the aggregation that suits the entity: meters send differences."""
    if (
        state
        and state.attributes.get(ATTR_STATE_CLASS) == SensorStateClass.TOTAL_INCREASING
    ):
        return Aggregation.DIFFERENCE.value
    return Aggregation.MEAN.value


def _asset_label(inventory: Inventory, asset: Asset) -> str:
    """Return the asset's name after its parent's."""
    parent = inventory.assets.get(asset.parent_id) if asset.parent_id else None
    return f"{parent.name}{SEPARATOR}{asset.name}" if parent else asset.name


def _sensor_label(inventory: Inventory, sensor: Sensor) -> str:
    """Return the sensor's name after its asset's, with its unit."""
    asset = inventory.assets.get(sensor.asset_id)
    name = f"{asset.name}{SEPARATOR}{sensor.name}" if asset else sensor.name
    return f"{name} ({sensor.unit})" if sensor.unit else name


def _duration_dict(duration: timedelta) -> dict[str, int]:
    """Return a duration the way the duration selector shows it."""
    minutes, seconds = divmod(int(duration.total_seconds()), 60)
    hours, minutes = divmod(minutes, 60)
    return {"hours": hours, "minutes": minutes, "seconds": seconds}


# Forecast links: subentries that post a series HA holds as forecasts (issue 16).

SOURCE_TYPES: Final = (SOURCE_ACTION, SOURCE_ATTRIBUTE, SOURCE_SOLAR_FORECAST)
# Why a list or a unit cannot be read, as form errors.
_SHAPE_ERRORS: Final[dict[str, str]] = {
    "not_a_slot_list": "shape_not_a_slot_list",
    "no_slots": "shape_no_slots",
    "no_start": "shape_no_start",
    "no_value": "shape_no_value",
    "bad_start": "shape_bad_start",
    "bad_value": "shape_bad_value",
}
# A new sensor's unit the source's does not convert to.
_CONVERSION_ERRORS: Final[dict[str, str]] = {
    "unit_unknown": "unit_unknown",
    "unit_mismatch": "unit_mismatch",
    "currency_mismatch": "currency_mismatch",
}
# A source unit no sensor can take.
_SOURCE_UNIT_ERRORS: Final[dict[str, str]] = {
    "unit_unknown": "unit_unknown",
    "unit_mismatch": "unit_unsupported",
    "currency_mismatch": "unit_unsupported",
}
PREVIEW_SLOTS: Final = 4


class ForecastLinkSubentryFlow(_LinkSubentryFlow):
    """Post a series Home Assistant holds to a FlexMeasures sensor as forecasts."""

    _subentry_type = SUBENTRY_FORECAST_LINK

    def __init__(self) -> None:
        """Start with nothing chosen."""
        self._source: dict[str, Any] = {}
        self._label = ""
        self._series: SourceSeries | None = None
        self._shape_text = "-"

    @callback
    def _async_show_field(
        self,
        step_id: str,
        key: str,
        selector: Selector[Any],
        suggested: Mapping[str, Any],
        errors: dict[str, str] | None = None,
        placeholders: Mapping[str, str] | None = None,
    ) -> SubentryFlowResult:
        """Show a form of one required field, suggesting a value."""
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(
                vol.Schema({vol.Required(key): selector}), suggested
            ),
            errors=errors,
            description_placeholders=dict(placeholders) if placeholders else None,
        )

    async def _async_step_first(
        self, step_id: str, user_input: dict[str, Any] | None
    ) -> SubentryFlowResult:
        """Ask where the series comes from."""
        if user_input is not None:
            self._source = {CONF_SOURCE_TYPE: user_input[CONF_SOURCE_TYPE]}
            if user_input[CONF_SOURCE_TYPE] == SOURCE_ATTRIBUTE:
                return await self.async_step_source_entity()
            return await self.async_step_source_entry()
        return self._async_show_field(
            step_id,
            CONF_SOURCE_TYPE,
            SelectSelector(
                SelectSelectorConfig(
                    options=list(SOURCE_TYPES),
                    mode=SelectSelectorMode.LIST,
                    translation_key="forecast_source_type",
                )
            ),
            {CONF_SOURCE_TYPE: SOURCE_ACTION, **self._previous},
        )

    async def async_step_source_entry(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Choose the price integration or solar forecast entry."""
        source_type = self._source[CONF_SOURCE_TYPE]
        choices = sources.source_entries(self.hass, source_type)
        if not choices:
            if source_type == SOURCE_SOLAR_FORECAST:
                return self.async_abort(reason="no_solar_forecast_sources")
            return self.async_abort(reason="no_action_sources")
        errors: dict[str, str] = {}
        if user_input is not None:
            entry_id = user_input[CONF_SOURCE_ENTRY]
            try:
                series = await sources.async_read_source(
                    self.hass, source_type, entry_id
                )
            except HomeAssistantError as err:
                LOGGER.debug("Cannot read %s: %s", entry_id, err)
                errors[CONF_SOURCE_ENTRY] = "source_unreadable"
            else:
                self._source[CONF_SOURCE_ENTRY] = entry_id
                self._label = dict(choices).get(entry_id, entry_id)
                return await self._async_preview(series)
        return self._async_show_field(
            "source_entry",
            CONF_SOURCE_ENTRY,
            _dropdown(
                [
                    SelectOptionDict(value=entry_id, label=label)
                    for entry_id, label in choices
                ]
            ),
            user_input or self._previous,
            errors,
        )

    async def async_step_source_entity(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Choose the entity whose attribute holds the slots."""
        errors: dict[str, str] = {}
        if user_input is not None:
            state = self.hass.states.get(user_input[CONF_SOURCE_ENTITY])
            if state is None or not slot_lists(state.attributes):
                errors[CONF_SOURCE_ENTITY] = "no_slot_list"
            else:
                self._source[CONF_SOURCE_ENTITY] = state.entity_id
                self._label = state.name
                return await self.async_step_source_attribute()
        return self._async_show_field(
            "source_entity",
            CONF_SOURCE_ENTITY,
            EntitySelector(),
            user_input or self._previous,
            errors,
        )

    async def async_step_source_attribute(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Choose the attribute; its shape is detected, or the reason it is not."""
        state = self.hass.states.get(self._source[CONF_SOURCE_ENTITY])
        if state is None:
            return self.async_abort(reason="source_gone")
        errors: dict[str, str] = {}
        if user_input is not None:
            attribute = user_input[CONF_SOURCE_ATTRIBUTE]
            try:
                shape = detect_shape(state.attributes, attribute)
                series = read_series(
                    state.attributes,
                    attribute,
                    shape,
                    unit=_unit_of(state),
                    published_at=state.last_updated,
                )
            except UnreadableShapeError as err:
                errors[CONF_SOURCE_ATTRIBUTE] = _SHAPE_ERRORS[err.reason]
            else:
                self._source[CONF_SOURCE_ATTRIBUTE] = attribute
                self._source[CONF_SOURCE_SHAPE] = shape.as_text()
                return await self._async_preview(series, shape)
        return self._async_show_field(
            "source_attribute",
            CONF_SOURCE_ATTRIBUTE,
            _dropdown(slot_lists(state.attributes)),
            user_input or self._previous,
            errors,
            {"entity": state.name},
        )

    async def _async_preview(
        self, series: SourceSeries, shape: Shape | None = None
    ) -> SubentryFlowResult:
        """Remember the series read and show it for confirmation."""
        self._series = series
        self._shape_text = (
            f"{shape.start_key}, {shape.end_key or '-'}, {shape.value_key}"
            if shape
            else "-"
        )
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Show the shape and first slots; ask the unit where the source has none."""
        series = cast("SourceSeries", self._series)
        errors: dict[str, str] = {}
        if user_input is not None:
            unit = user_input[CONF_SOURCE_UNIT].strip()
            try:
                rate_converter(unit, unit)
            except ConversionError as err:
                errors[CONF_SOURCE_UNIT] = _SOURCE_UNIT_ERRORS[err.reason]
            else:
                self._source[CONF_SOURCE_UNIT] = unit
                return await self.async_step_sensor()
        preview = "\n".join(
            f"{dt_util.as_local(point.start).strftime('%Y-%m-%d %H:%M')}: "
            f"{point.value:g}"
            for point in series.points[:PREVIEW_SLOTS]
        )
        return self._async_show_field(
            "confirm",
            CONF_SOURCE_UNIT,
            TextSelector(),
            {CONF_SOURCE_UNIT: self._previous.get(CONF_SOURCE_UNIT) or series.unit},
            errors,
            {
                "source": self._label,
                "shape": self._shape_text,
                "slots": str(len(series.points)),
                "preview": preview,
                "unit": series.unit or "-",
            },
        )

    async def async_step_sensor(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Choose the FlexMeasures sensor the forecasts go to."""
        unit = self._source[CONF_SOURCE_UNIT]
        errors: dict[str, str] = {}
        if user_input is not None:
            if self._linked_elsewhere(user_input[CONF_SENSOR]):
                errors[CONF_SENSOR] = "already_linked"
            else:
                return await self._async_use_sensor(user_input[CONF_SENSOR])
        return self._async_show_field(
            "sensor",
            CONF_SENSOR,
            self._sensor_selector(lambda sensor_unit: _converts(unit, sensor_unit)),
            user_input or self._previous_sensor,
            errors,
            {"source": self._label, "unit": unit},
        )

    async def async_step_new_sensor(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Create a new FlexMeasures sensor on an asset for the forecasts."""
        unit = self._source[CONF_SOURCE_UNIT]
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                rate_converter(unit, user_input[CONF_UNIT_OF_MEASUREMENT])
            except ConversionError as err:
                errors[CONF_UNIT_OF_MEASUREMENT] = _CONVERSION_ERRORS[err.reason]
            else:
                sensor, errors = await _async_create_sensor(self, user_input)
                if sensor is not None:
                    return self._async_finish(sensor)
        return _new_sensor_form(
            self,
            user_input,
            errors,
            name=self._label,
            unit=_default_target_unit(unit),
            placeholders={"entity": self._label},
            resolution={"hours": 1, "minutes": 0, "seconds": 0},
        )

    @callback
    def _async_finish(self, sensor: Sensor) -> SubentryFlowResult:
        """Create or update the forecast-link subentry."""
        return self._async_save(self._label, sensor, self._source)


def _converts(source_unit: str, sensor_unit: str | None) -> bool:
    """Return whether a source's values can be posted to a sensor of this unit."""
    try:
        rate_converter(source_unit, sensor_unit or "")
    except ConversionError:
        return False
    return True


def _default_target_unit(source_unit: str) -> str:
    """Return the unit a new sensor for this source gets: per MWh, or kW."""
    money, slash, energy = source_unit.partition("/")
    if slash and energy.strip().lower().endswith("wh"):
        return f"{money.strip()}/MWh"
    return "kW"


# --- Sites: several controlled devices planned together (subentry flow) ---------

MIN_SITE_DEVICES: Final = 2


def _lineage(inventory: Inventory, asset_id: int) -> list[int]:
    """Return an asset and its ancestors the inventory knows, nearest first."""
    lineage: list[int] = []
    current: int | None = asset_id
    while current is not None and current not in lineage:
        lineage.append(current)
        asset = inventory.assets.get(current)
        current = asset.parent_id if asset is not None else None
    return lineage


def _device_assets(
    entry: FlexMeasuresConfigEntry, inventory: Inventory, device_ids: list[str]
) -> list[int]:
    """Return the assets of the devices' power sensors the inventory knows."""
    assets: list[int] = []
    for device_id in device_ids:
        sensor = inventory.sensors.get(
            int(entry.subentries[device_id].data[CONF_POWER_SENSOR])
        )
        if sensor is not None:
            assets.append(sensor.asset_id)
    return assets


def _common_asset(inventory: Inventory, assets: list[int]) -> int | None:
    """Return the nearest asset that is (an ancestor of) all ``assets``."""
    if not assets:
        return None
    others = [set(_lineage(inventory, asset_id)) for asset_id in assets[1:]]
    return next(
        (
            candidate
            for candidate in _lineage(inventory, assets[0])
            if all(candidate in lineage for lineage in others)
        ),
        None,
    )


def _site_schema(
    device_options: list[SelectOptionDict],
    asset_options: list[SelectOptionDict],
    price_options: list[SelectOptionDict],
    power_options: list[SelectOptionDict],
) -> vol.Schema:
    """Return the site form."""
    return vol.Schema(
        {
            vol.Required(CONF_NAME): TextSelector(),
            vol.Required(CONF_SITE_DEVICES): SelectSelector(
                SelectSelectorConfig(
                    options=device_options,
                    multiple=True,
                    mode=SelectSelectorMode.LIST,
                )
            ),
            vol.Optional(CONF_ASSET_ID): _dropdown(asset_options),
            vol.Optional(CONF_SITE_POWER_CAPACITY): _number(0, unit="kVA"),
            vol.Optional(CONF_CONSUMPTION_PRICE_SENSOR): _dropdown(price_options),
            vol.Optional(CONF_PRODUCTION_PRICE_SENSOR): _dropdown(price_options),
            vol.Optional(CONF_INFLEXIBLE_SENSORS): SelectSelector(
                SelectSelectorConfig(
                    options=power_options,
                    multiple=True,
                    mode=SelectSelectorMode.DROPDOWN,
                )
            ),
            vol.Required(CONF_REPLAN_ON_PRICES, default=False): BooleanSelector(),
        }
    )


class SiteSubentryFlow(_FlexMeasuresSubentryFlow):
    """Add or change a site: controlled devices planned together, one grid."""

    async def _async_step_first(
        self, step_id: str, user_input: dict[str, Any] | None
    ) -> SubentryFlowResult:
        """Show, validate and save the site form."""
        entry = self._entry
        devices = {
            subentry_id: subentry
            for subentry_id, subentry in entry.subentries.items()
            if subentry.subentry_type == SUBENTRY_CONTROLLED_DEVICE
        }
        if len(devices) < MIN_SITE_DEVICES:
            return self.async_abort(reason="too_few_controlled_devices")
        inventory = entry.runtime_data.inventory.data
        site = self._get_reconfigure_subentry() if step_id == "reconfigure" else None
        errors: dict[str, str] = {}
        if user_input is not None:
            data, errors = self._validate(entry, inventory, user_input, site)
            if not errors:
                if site is not None:
                    return self.async_update_and_abort(
                        entry, site, title=user_input[CONF_NAME], data=data
                    )
                return self.async_create_entry(title=user_input[CONF_NAME], data=data)
        price_options: list[SelectOptionDict] = []
        power_options: list[SelectOptionDict] = []
        for sensor in sorted(inventory.sensors.values(), key=lambda item: item.id):
            option = SelectOptionDict(
                value=str(sensor.id), label=_sensor_label(inventory, sensor)
            )
            if sensor.unit in POWER_UNITS:
                power_options.append(option)
            elif _is_price_unit(sensor.unit):
                price_options.append(option)
        asset_options = [
            SelectOptionDict(value=str(asset.id), label=_asset_label(inventory, asset))
            for asset in sorted(inventory.assets.values(), key=lambda item: item.id)
        ]
        device_options = [
            SelectOptionDict(value=subentry_id, label=subentry.title)
            for subentry_id, subentry in devices.items()
        ]
        suggested = user_input or (_site_form_values(site.data) if site else None)
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(
                _site_schema(
                    device_options, asset_options, price_options, power_options
                ),
                suggested,
            ),
            errors=errors,
        )

    @staticmethod
    def _validate(
        entry: FlexMeasuresConfigEntry,
        inventory: Inventory,
        user_input: dict[str, Any],
        site: ConfigSubentry | None,
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Return what the site stores and the form's errors."""
        errors: dict[str, str] = {}
        chosen: list[str] = list(user_input[CONF_SITE_DEVICES])
        if len(chosen) < MIN_SITE_DEVICES:
            errors[CONF_SITE_DEVICES] = "too_few_devices"
        elif any(
            device_id in other.data.get(CONF_SITE_DEVICES, ())
            for other in entry.subentries.values()
            if other.subentry_type == SUBENTRY_SITE
            and (site is None or other.subentry_id != site.subentry_id)
            for device_id in chosen
        ):
            errors[CONF_SITE_DEVICES] = "device_in_other_site"
        device_assets = _device_assets(entry, inventory, chosen)
        asset_id: int | None
        if user_input.get(CONF_ASSET_ID) in (None, ""):
            asset_id = _common_asset(inventory, device_assets)
            if asset_id is None:
                errors[CONF_ASSET_ID] = "no_common_asset"
        else:
            asset_id = int(user_input[CONF_ASSET_ID])
            if asset_id in inventory.assets and any(
                asset_id not in _lineage(inventory, device_asset)
                for device_asset in device_assets
            ):
                errors[CONF_ASSET_ID] = "asset_not_ancestor"
        inflexible = [
            int(value) for value in user_input.get(CONF_INFLEXIBLE_SENSORS, ())
        ]
        device_sensors = {
            int(entry.subentries[device_id].data[CONF_POWER_SENSOR])
            for device_id in chosen
        }
        if device_sensors & set(inflexible):
            errors[CONF_INFLEXIBLE_SENSORS] = "inflexible_is_device"
        prices = {
            key: int(user_input[key])
            for key in (CONF_CONSUMPTION_PRICE_SENSOR, CONF_PRODUCTION_PRICE_SENSOR)
            if user_input.get(key) not in (None, "")
        }
        if user_input[CONF_REPLAN_ON_PRICES] and not prices:
            errors[CONF_REPLAN_ON_PRICES] = "replan_needs_prices"
        capacity = user_input.get(CONF_SITE_POWER_CAPACITY)
        data = {
            CONF_NAME: user_input[CONF_NAME],
            CONF_SITE_DEVICES: chosen,
            CONF_ASSET_ID: asset_id,
            CONF_SITE_POWER_CAPACITY: float(capacity) if capacity else None,
            **prices,
            CONF_INFLEXIBLE_SENSORS: inflexible,
            CONF_REPLAN_ON_PRICES: bool(user_input[CONF_REPLAN_ON_PRICES]),
        }
        return data, errors


def _site_form_values(data: Mapping[str, Any]) -> dict[str, Any]:
    """Return stored site data as form values: ids as strings, unset left out."""
    values = _convert_sensor_ids(
        {key: value for key, value in data.items() if value is not None},
        (CONF_ASSET_ID, CONF_CONSUMPTION_PRICE_SENSOR, CONF_PRODUCTION_PRICE_SENSOR),
        str,
    )
    values[CONF_INFLEXIBLE_SENSORS] = [
        str(sensor_id) for sensor_id in data.get(CONF_INFLEXIBLE_SENSORS) or ()
    ]
    return values
