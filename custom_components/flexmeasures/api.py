"""Typed, bounded access to a FlexMeasures server.

This is the only module that imports ``flexmeasures_client``. Home Assistant imports
integration modules in its import executor, so the library's pandas import stays off
the event loop. Everything else in the integration talks to :class:`FlexMeasuresApi`
and sees typed models and typed exceptions only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, cast

from aiohttp import ClientResponseError, ClientSession
from awesomeversion import AwesomeVersion, AwesomeVersionException
from flexmeasures_client import FlexMeasuresClient
from flexmeasures_client.exceptions import (
    ContentTypeError,
    EmailValidationError,
    EmptyPasswordError,
    InsufficientServerVersionError,
    WrongAPIVersionError,
)
from homeassistant.const import CONF_EMAIL, CONF_PASSWORD, CONF_URL, CONF_VERIFY_SSL
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.util import dt as dt_util
from yarl import URL

from .const import (
    MIN_SERVER_VERSION,
    REQUEST_ATTEMPTS,
    REQUEST_RETRY_BUDGET,
    REQUEST_TIMEOUT,
)

DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class FlexMeasuresError(Exception):
    """Base class for errors talking to FlexMeasures."""


class FlexMeasuresAuthenticationError(FlexMeasuresError):
    """The server refused the e-mail/password or the access token."""


class FlexMeasuresConnectionError(FlexMeasuresError):
    """The server could not be reached in time or answered with a server error."""


class FlexMeasuresHttpStatusError(FlexMeasuresConnectionError):
    """The server answered with an HTTP error status and no readable message."""

    def __init__(self, message: str, *, status: int) -> None:
        """Remember the status, so callers can tell 404 from 503."""
        super().__init__(message)
        self.status = status


class FlexMeasuresInvalidUrlError(FlexMeasuresError):
    """The server address is not a usable URL."""


class FlexMeasuresServerTooOldError(FlexMeasuresError):
    """The server runs a FlexMeasures version this integration does not support."""


class FlexMeasuresResponseError(FlexMeasuresError):
    """The server answered with something this integration cannot interpret."""


class FlexMeasuresRejectedError(FlexMeasuresError):
    """The server understood the request and refused it (validation, permission)."""


def normalize_url(raw: str) -> URL:
    """Turn user input into ``scheme://host[:port]``; raise on anything else.

    Accepts ``https://host``, ``http://host:port`` and a bare ``host[:port]`` (which
    gets ``https``). Paths other than ``/``, queries, fragments, credentials and
    schemes other than http(s) are refused: the API always lives at ``/api/``.
    """
    text = raw.strip()
    if not text:
        raise FlexMeasuresInvalidUrlError("empty")
    if "://" not in text:
        text = f"https://{text}"
    try:
        url = URL(text)
        port = url.port
    except ValueError as err:
        raise FlexMeasuresInvalidUrlError(raw) from err
    if (
        url.scheme not in DEFAULT_PORTS
        or not url.host
        or url.path not in ("", "/")
        or url.query_string
        or url.fragment
        or url.user is not None
        or port is None
        or " " in url.host
    ):
        raise FlexMeasuresInvalidUrlError(raw)
    return URL.build(
        scheme=url.scheme,
        host=url.host,
        port=None if port == DEFAULT_PORTS[url.scheme] else port,
    )


def _parse_duration(value: str | None) -> timedelta:
    """Parse the ISO 8601 durations FlexMeasures uses for resolutions (PT15M)."""
    if not value:
        return timedelta(0)
    duration = dt_util.parse_duration(value)
    if duration is None:
        raise FlexMeasuresResponseError(f"Not an ISO 8601 duration: {value}")
    return duration


def format_duration(value: timedelta) -> str:
    """Format a duration the way FlexMeasures expects it (``PT15M``)."""
    total = int(value.total_seconds())
    if total == 0:
        return "PT0S"
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "PT"
    if hours:
        text += f"{hours}H"
    if minutes:
        text += f"{minutes}M"
    if seconds:
        text += f"{seconds}S"
    return text


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerInfo:
    """What a successful connection test learned about the server and account."""

    url: str
    version: str
    account_id: int
    account_name: str
    user_id: int | None
    user_name: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Asset:
    """A FlexMeasures asset (a site, battery, charger, ...)."""

    id: int
    name: str
    account_id: int | None
    asset_type: str | None
    parent_id: int | None
    latitude: float | None = None
    longitude: float | None = None
    flex_model: Mapping[str, Any] | None = None
    flex_context: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Asset:
        """Build an asset from the API's JSON."""
        asset_type = data.get("generic_asset_type")
        if isinstance(asset_type, Mapping):
            asset_type = asset_type.get("name")
        flex_model = data.get("flex_model")
        flex_context = data.get("flex_context")
        try:
            return cls(
                id=int(data["id"]),
                name=str(data["name"]),
                account_id=_optional_int(data.get("account_id")),
                asset_type=str(asset_type) if asset_type is not None else None,
                parent_id=_optional_int(data.get("parent_asset_id")),
                latitude=_optional_float(data.get("latitude")),
                longitude=_optional_float(data.get("longitude")),
                flex_model=flex_model if isinstance(flex_model, Mapping) else None,
                flex_context=flex_context
                if isinstance(flex_context, Mapping)
                else None,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise FlexMeasuresResponseError(f"Unexpected asset: {data!r}") from err


@dataclass(frozen=True, kw_only=True, slots=True)
class Sensor:
    """A FlexMeasures sensor on an asset."""

    id: int
    name: str
    unit: str
    resolution: timedelta
    asset_id: int
    timezone: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Sensor:
        """Build a sensor from the API's JSON."""
        try:
            return cls(
                id=int(data["id"]),
                name=str(data["name"]),
                unit=str(data.get("unit") or ""),
                resolution=_parse_duration(data.get("event_resolution")),
                asset_id=int(data["generic_asset_id"]),
                timezone=data.get("timezone"),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise FlexMeasuresResponseError(f"Unexpected sensor: {data!r}") from err


@dataclass(frozen=True, kw_only=True, slots=True)
class TimeSeries:
    """Equidistant values from ``start``, one per ``resolution``, in ``unit``."""

    start: datetime
    resolution: timedelta
    unit: str
    values: tuple[float | None, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TimeSeries:
        """Build a series from the API's ``{start, duration, unit, values}``."""
        try:
            values = tuple(
                None if value is None else float(value) for value in data["values"]
            )
            start = datetime.fromisoformat(str(data["start"]))
            duration = _parse_duration(str(data["duration"]))
            unit = str(data.get("unit") or "")
        except (KeyError, TypeError, ValueError) as err:
            raise FlexMeasuresResponseError(f"Unexpected series: {data!r}") from err
        if start.tzinfo is None:
            raise FlexMeasuresResponseError(f"Series start without offset: {start}")
        resolution = duration / len(values) if values else timedelta(0)
        return cls(start=start, resolution=resolution, unit=unit, values=values)


def _optional_int(value: Any) -> int | None:
    """Return ``int(value)`` or None."""
    return None if value is None else int(value)


def _optional_float(value: Any) -> float | None:
    """Return ``float(value)`` or None."""
    return None if value is None else float(value)


class _Client(FlexMeasuresClient):  # type: ignore[misc]
    """The library client, with login failures told apart from other refusals."""

    async def get_access_token(self) -> None:
        """Log in; a refusal here always means the credentials are wrong."""
        try:
            await super().get_access_token()
        except ValueError as err:
            raise FlexMeasuresAuthenticationError(str(err)) from err
        except (KeyError, TypeError) as err:
            raise FlexMeasuresResponseError("Login answer without a token") from err


def async_create_api(hass: HomeAssistant, data: Mapping[str, Any]) -> FlexMeasuresApi:
    """Build the API for config entry data, on Home Assistant's shared HTTP session.

    Never close the client: that would close Home Assistant's shared session.
    """
    return FlexMeasuresApi(
        session=async_get_clientsession(hass, verify_ssl=data[CONF_VERIFY_SSL]),
        url=data[CONF_URL],
        email=data[CONF_EMAIL],
        password=data[CONF_PASSWORD],
    )


class FlexMeasuresApi:
    """One FlexMeasures account on one server, with bounded waits and typed errors."""

    def __init__(
        self,
        *,
        session: ClientSession,
        url: str,
        email: str,
        password: str,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        """Prepare a client; this does no I/O."""
        parsed = normalize_url(url)
        self.url = str(parsed)
        self.email = email
        try:
            self._client = _Client(
                session=session,
                host=f"{parsed.host}:{parsed.port}",
                ssl=parsed.scheme == "https",
                email=email,
                password=password,
                request_timeout=request_timeout,
                request_retry_timeout=max(REQUEST_RETRY_BUDGET, 2 * request_timeout),
                request_retry_interval=0.5,
                max_request_attempts=REQUEST_ATTEMPTS,
            )
        except (EmailValidationError, EmptyPasswordError) as err:
            raise FlexMeasuresAuthenticationError(str(err)) from err

    async def _call[T](self, func: Callable[[], Awaitable[T]]) -> T:
        """Run one library call and translate its exceptions."""
        try:
            return await func()
        except FlexMeasuresError:
            raise
        except (WrongAPIVersionError, InsufficientServerVersionError) as err:
            raise FlexMeasuresServerTooOldError(str(err)) from err
        except ConnectionError as err:
            if isinstance(err.__cause__, ClientResponseError):
                raise FlexMeasuresHttpStatusError(
                    str(err), status=err.__cause__.status
                ) from err
            raise FlexMeasuresConnectionError(str(err)) from err
        except ContentTypeError as err:
            raise FlexMeasuresResponseError(str(err)) from err
        except ValueError as err:
            raise FlexMeasuresRejectedError(str(err)) from err
        except (KeyError, TypeError) as err:
            raise FlexMeasuresResponseError(repr(err)) from err

    @property
    def server_version(self) -> str | None:
        """Return the server version the last response announced."""
        return cast("str | None", self._client.server_version)

    async def async_get_server_version(self) -> str:
        """Ask the server for its version; raise if it is too old for us."""
        info = await self._call(self._client.get_versions)
        version = info.get("server_version")
        if not isinstance(version, str):
            raise FlexMeasuresResponseError(f"No server version in {info!r}")
        try:
            too_old = AwesomeVersion(version.split(".dev")[0]) < AwesomeVersion(
                MIN_SERVER_VERSION
            )
        except AwesomeVersionException as err:
            raise FlexMeasuresResponseError(f"Unreadable version {version}") from err
        if too_old:
            raise FlexMeasuresServerTooOldError(version)
        return version

    async def async_login(self) -> None:
        """Log in, so that bad credentials surface now."""
        await self._call(self._client.get_access_token)

    async def async_connect(self) -> ServerInfo:
        """Check the version, log in and identify the account."""
        version = await self.async_get_server_version()
        await self.async_login()
        user = await self._call(self._client.get_user)
        if not isinstance(user, Mapping) or "account_id" not in user:
            raise FlexMeasuresResponseError("The server did not return the user")
        account = await self._call(self._client.get_account)
        if not isinstance(account, Mapping) or "id" not in account:
            raise FlexMeasuresResponseError("The server did not return the account")
        return ServerInfo(
            url=self.url,
            version=version,
            account_id=int(account["id"]),
            account_name=str(account.get("name") or account["id"]),
            user_id=_optional_int(user.get("id")),
            user_name=user.get("username"),
        )

    async def async_get_assets(self) -> list[Asset]:
        """Return the assets the account can see."""
        raw = await self._call(lambda: self._client.get_assets(parse_json_fields=True))
        return [Asset.from_json(item) for item in raw]

    async def async_get_sensors(self) -> list[Sensor]:
        """Return the sensors the account can see."""
        raw = await self._call(lambda: self._client.get_sensors(parse_json_fields=True))
        return [Sensor.from_json(item) for item in raw]

    async def async_get_sensor_data(
        self,
        sensor_id: int,
        *,
        start: datetime,
        duration: timedelta,
        resolution: timedelta,
        unit: str,
    ) -> TimeSeries:
        """Return the sensor's most recent beliefs about ``[start, start+duration)``."""
        raw = await self._call(
            lambda: self._client.get_sensor_data(
                sensor_id=sensor_id,
                start=start.isoformat(),
                duration=format_duration(duration),
                unit=unit,
                resolution=format_duration(resolution),
            )
        )
        return TimeSeries.from_json(raw)

    async def async_post_sensor_data(
        self,
        sensor_id: int,
        *,
        start: datetime,
        resolution: timedelta,
        values: list[float],
        unit: str,
    ) -> None:
        """Post equidistant measurements starting at ``start``."""
        await self._call(
            lambda: self._client.post_sensor_data(
                sensor_id=sensor_id,
                start=start.isoformat(),
                duration=format_duration(resolution * len(values)),
                values=values,
                unit=unit,
            )
        )

    async def async_add_sensor(
        self,
        *,
        asset_id: int,
        name: str,
        unit: str,
        resolution: timedelta,
        timezone: str | None = None,
    ) -> Sensor:
        """Create a sensor on an asset."""
        raw = await self._call(
            lambda: self._client.add_sensor(
                name=name,
                event_resolution=format_duration(resolution),
                unit=unit,
                generic_asset_id=asset_id,
                timezone=timezone,
            )
        )
        return Sensor.from_json(raw)

    async def async_trigger_schedule(
        self,
        *,
        sensor_id: int,
        start: datetime,
        duration: timedelta,
        flex_model: Mapping[str, Any],
        flex_context: Mapping[str, Any] | None = None,
        force: bool = False,
        now: datetime | None = None,
    ) -> str:
        """Queue a scheduling job for the sensor's asset; return the job id."""
        return await self._call(
            lambda: self._client.trigger_schedule(
                sensor_id=sensor_id,
                start=start.isoformat(),
                duration=format_duration(duration),
                flex_model=dict(flex_model),
                flex_context=dict(flex_context) if flex_context else None,
                prior=now if force else None,
            )
        )

    async def async_get_job_status(self, job_id: str) -> Mapping[str, Any]:
        """Return the job's status document in one request."""
        return cast(
            "Mapping[str, Any]",
            await self._call(lambda: self._client.get_job_status(job_id)),
        )

    async def async_get_schedule(
        self, *, sensor_id: int, job_id: str, duration: timedelta, unit: str = "kW"
    ) -> TimeSeries:
        """Return the schedule a finished job computed, in ``unit``."""
        raw = await self._call(
            lambda: self._client.get_schedule(
                sensor_id=sensor_id,
                schedule_id=job_id,
                duration=format_duration(duration),
                unit=unit,
            )
        )
        return TimeSeries.from_json(raw)
