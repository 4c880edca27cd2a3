"""Typed, bounded access to a FlexMeasures server.

This is the only module that imports ``flexmeasures_client``. Home Assistant imports
integration modules in its import executor, so the library's pandas import stays off
the event loop. Everything else in the integration talks to :class:`FlexMeasuresApi`
and sees typed models and typed exceptions only; the ``s2`` package runs each S2
conversation on :class:`S2Cem`, a thin adapter over the library's CEM.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
import json
import logging
import re
from typing import TYPE_CHECKING, Any, Final, cast

from aiohttp import ClientResponse, ClientResponseError, ClientSession
from awesomeversion import AwesomeVersion, AwesomeVersionException
from flexmeasures_client.client import FlexMeasuresClient
from flexmeasures_client.exceptions import (
    ContentTypeError,
    EmailValidationError,
    EmptyPasswordError,
    InsufficientServerVersionError,
    WrongAPIVersionError,
)
from flexmeasures_client.s2 import register
from flexmeasures_client.s2.cem import CEM
from flexmeasures_client.s2.control_types.FRBC import FRBC
from flexmeasures_client.s2.control_types.FRBC.utils import (
    get_soc_min_max,
    op_mode_compute_factor,
    power_to_fill_rate_with_metrics,
)
from flexmeasures_client.s2.control_types.translations import (
    translate_usage_forecast_to_fm,
)
from flexmeasures_client.s2.utils import get_reception_status, get_unique_id
from homeassistant.const import CONF_EMAIL, CONF_PASSWORD, CONF_URL, CONF_VERIFY_SSL
from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.util import dt as dt_util
import pandas as pd  # imported with this module, in HA's import executor
from s2python.common import ControlType, PowerMeasurement
from yarl import URL

from .const import (
    MIN_SERVER_VERSION,
    REQUEST_ATTEMPTS,
    REQUEST_RETRY_BUDGET,
    REQUEST_TIMEOUT,
    S2_LOGGER,
)
from .util import optional_float, optional_int

if TYPE_CHECKING:
    from .s2.model import S2CemHandler

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

    def __init__(self, message: str, *, status: int | None = None) -> None:
        """Remember the HTTP status, when the refusal came with one."""
        super().__init__(message)
        self.status = status


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
                account_id=optional_int(data.get("account_id")),
                asset_type=str(asset_type) if asset_type is not None else None,
                parent_id=optional_int(data.get("parent_asset_id")),
                latitude=optional_float(data.get("latitude")),
                longitude=optional_float(data.get("longitude")),
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


# Where webargs says a refused field was, and the name FlexMeasures gives a refusal
# of a whole sensor-data body: not field names, left out of messages.
_FIELD_LOCATIONS: Final = frozenset(
    {"json", "query", "path", "form", "headers", "combined_sensor_data_description"}
)


def _message_lines(value: Any, field: str | None = None) -> list[str]:
    """Flatten a refusal message: FlexMeasures nests them per location and field.

    ``{"json": {"soc-max": ["Cannot convert ..."]}}`` becomes
    ``["soc-max: Cannot convert ..."]``; a plain string stays itself.
    """
    if isinstance(value, Mapping):
        return [
            line
            for key, item in value.items()
            for line in _message_lines(
                item,
                field
                if key in _FIELD_LOCATIONS
                or str(key).startswith("_")
                or str(key).isdigit()
                else str(key),
            )
        ]
    if isinstance(value, list):
        return [line for item in value for line in _message_lines(item, field)]
    if value is None or value == "":
        return []
    return [f"{field}: {value}" if field else str(value)]


def _error_text(payload: Any) -> str:
    """Return the errors or the message of an error answer's JSON, if any."""
    if not isinstance(payload, Mapping):
        return ""
    errors = payload.get("errors")
    if isinstance(errors, list) and errors:
        return ", ".join(map(str, errors))
    return "; ".join(_message_lines(payload.get("message")))


# The library logs request and response dumps: login payloads (e-mail, password),
# the Authorization header and the token in the login answer.
_SECRET_FIELDS: Final = re.compile(
    r"""(['"](?:auth_token|authorization|password|email|set-cookie|cookie)['"]\s*:\s*)"""
    r"""(?:'[^']*'|"[^"]*")""",
    re.IGNORECASE,
)
REDACTED: Final = "**REDACTED**"


class _LibraryLogger(logging.LoggerAdapter[logging.Logger]):
    """The library's logger: secrets redacted, everything at debug level.

    Whatever the library reports also surfaces as one of our typed errors, which
    the integration reports once; the library's own lines are for debugging only.
    """

    def __init__(self, secrets: Callable[[], Sequence[str | None]]) -> None:
        """Log to the library's logger; ``secrets`` returns what to hide."""
        super().__init__(logging.getLogger("flexmeasures_client.client"))
        self._secrets = secrets

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        """Log a redacted copy of the message at debug level."""
        if not self.isEnabledFor(logging.DEBUG):
            return
        text = str(msg) % args if args else str(msg)
        text = _SECRET_FIELDS.sub(rf"\1'{REDACTED}'", text)
        for secret in self._secrets():
            if secret:
                text = text.replace(secret, REDACTED)
        kwargs.pop("exc_info", None)
        self.logger.debug("%s", text, **kwargs)


# Answers that say "not now" rather than "no": the server is unwell, busy or
# restarting, whatever the body says. FlexMeasures answers 500 with an "errors" list
# (and, without its database, a login with 500), which the library would raise as a
# refusal or, at login, as wrong credentials. They come back to us and end up as
# FlexMeasuresHttpStatusError, a connection error: retried later, never a reason to
# reject data or to ask for the password. A 503 with Retry-After is then not retried
# within the call: the coordinators and the uploader retry on their own schedule.
RETRY_LATER_STATUSES: Final = frozenset({408, 429, *range(500, 600)})
# Answers that say "no": the request was understood and refused. FlexMeasures 1.0
# sends 422 (and 400, 403) with a message that is often a dict per field, which the
# library would print as a dict; they become FlexMeasuresRejectedError, readable.
REFUSAL_STATUSES: Final = frozenset({400, 403, 409, 422})
# Where a 303 answer points, for the call that collects it (one list per task).
_REDIRECTS: Final[ContextVar[list[str] | None]] = ContextVar(
    "flexmeasures_redirects", default=None
)
# A trigger's one attempt may log in first; the library's repeat comes a second
# after the attempt's timeout, so this ends the call before it is sent.
TRIGGER_GRACE: Final = 0.5


class _Client(FlexMeasuresClient):
    """The library client, with login failures told apart from other refusals."""

    async def request(
        self,
        uri: str,
        *,
        pass_through_statuses: frozenset[int] = frozenset(),
        **kwargs: Any,
    ) -> tuple[Any, int]:
        """Send a request; "not now" statuses and non-JSON are connection errors.

        A trigger is sent at most once per call: the library would repeat it
        after a timeout, and a server that was only slow would then run both.
        The caller repeats it later, unchanged, once the server answers again.
        """
        send_once = uri.endswith("schedules/trigger")
        try:
            async with asyncio.timeout(
                self.request_timeout + TRIGGER_GRACE if send_once else None
            ):
                payload, status = await super().request(
                    uri,
                    pass_through_statuses=pass_through_statuses
                    | RETRY_LATER_STATUSES
                    | REFUSAL_STATUSES,
                    **kwargs,
                )
        except json.JSONDecodeError as err:
            # An HTML error page labelled as JSON: not an answer.
            raise FlexMeasuresConnectionError(
                f"The server's answer is not JSON: {err}"
            ) from err
        except ClientResponseError as err:
            # The library's own content-type check; its error cannot be printed.
            raise FlexMeasuresConnectionError(
                "The server's answer is not labelled as JSON"
            ) from err
        if status in pass_through_statuses:
            return payload, status
        text = _error_text(payload)
        if status in RETRY_LATER_STATUSES:
            raise FlexMeasuresHttpStatusError(
                f"FlexMeasures answered HTTP {status}{': ' if text else ''}{text}",
                status=status,
            )
        if status in REFUSAL_STATUSES:
            raise FlexMeasuresRejectedError(
                f"FlexMeasures refused the request (HTTP {status})"
                f"{': ' if text else ''}{text}",
                status=status,
            )
        return payload, status

    async def request_once(
        self, *args: Any, **kwargs: Any
    ) -> tuple[ClientResponse, int, bool, URL]:
        """Send one request; a 303's Location goes to the call collecting them."""
        response, polling_step, reauth_once, url = await super().request_once(
            *args, **kwargs
        )
        redirects = _REDIRECTS.get()
        if redirects is not None and response.status == HTTPStatus.SEE_OTHER:
            redirects.append(response.headers.get("Location", ""))
        return response, polling_step, reauth_once, url

    async def get_access_token(self) -> None:
        """Log in; a refusal here always means the credentials are wrong."""
        try:
            # The library leaves this method unannotated.
            await super().get_access_token()  # type: ignore[no-untyped-call]
        except (ValueError, FlexMeasuresRejectedError) as err:
            # 401 wrong password, 404 unknown e-mail, 400/422 unusable e-mail.
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
        # One library call may send several requests (a trigger looks up the
        # sensor's asset first, any request may log in first): the budget bounds
        # the whole call, not each of them.
        self.call_budget = max(REQUEST_RETRY_BUDGET, 2 * request_timeout)
        try:
            self._client = _Client(
                session=session,
                host=f"{parsed.host}:{parsed.port}",
                ssl=parsed.scheme == "https",
                email=email,
                password=password,
                request_timeout=request_timeout,
                request_retry_timeout=self.call_budget,
                request_retry_interval=0.5,
                max_request_attempts=REQUEST_ATTEMPTS,
                # The library only calls debug, info, warning and error on it.
                logger=cast(
                    "logging.Logger",
                    _LibraryLogger(
                        lambda: (email, password, self._client.access_token)
                    ),
                ),
            )
        except (EmailValidationError, EmptyPasswordError) as err:
            raise FlexMeasuresAuthenticationError(str(err)) from err

    async def _call[T](self, func: Callable[[], Awaitable[T]]) -> T:
        """Run one library call, bounded by the call budget; translate its errors."""
        try:
            async with asyncio.timeout(self.call_budget):
                return await func()
        except TimeoutError as err:
            raise FlexMeasuresConnectionError(
                f"No answer from the server within {self.call_budget:g} s"
            ) from err
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
        return self._client.server_version

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
            user_id=optional_int(user.get("id")),
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
        prior: datetime | None = None,
    ) -> TimeSeries:
        """Return the sensor's most recent beliefs about ``[start, start+duration)``.

        With ``prior``, the most recent beliefs formed at or before that moment.
        """
        belief = {"prior": prior.isoformat()} if prior else {}
        raw = await self._call(
            lambda: self._client.get_sensor_data(
                sensor_id=sensor_id,
                start=start.isoformat(),
                duration=format_duration(duration),
                unit=unit,
                resolution=format_duration(resolution),
                **belief,
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
        prior: datetime | None = None,
    ) -> str | None:
        """Post equidistant values starting at ``start``; return a job id or None.

        Measurements (no ``prior``) are recorded as known when their slot ended
        (horizon zero), so a value's belief time follows from its slot alone:
        posting the same slot again (a retry after a timeout the server did
        process) overwrites the same row instead of adding one. The library's
        ``post_sensor_data`` only offers a ``prior`` for the whole POST, which
        would differ per batch.

        Forecasts pass ``prior``, when the source published the series (the
        library sends it the same way): every value of the POST gets that belief
        time, so the same series posted again overwrites its rows and a newer
        publication adds beliefs beside the older ones.

        Return the ingestion job id when the server queued the values (202: a
        worker stores them later, or fails to), or None when it stored them now.
        """
        payload = {
            "start": start.isoformat(),
            "duration": format_duration(resolution * len(values)),
            "values": values,
            "unit": unit,
            **(
                {"horizon": format_duration(timedelta(0))}
                if prior is None
                else {"prior": prior.isoformat()}
            ),
        }
        response, status = await self._call(
            lambda: self._client.request(
                uri=f"sensors/{sensor_id}/data", json_payload=payload
            )
        )
        if status != HTTPStatus.ACCEPTED:
            return None
        job = response.get("job") if isinstance(response, Mapping) else None
        if not isinstance(job, str) or not job:
            raise FlexMeasuresResponseError(f"Accepted without a job: {response!r}")
        return job

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

    async def async_trigger_site_schedule(
        self,
        *,
        asset_id: int,
        start: datetime,
        duration: timedelta,
        flex_models: Sequence[Mapping[str, Any]],
        flex_context: Mapping[str, Any] | None = None,
        force: bool = False,
        now: datetime | None = None,
    ) -> str:
        """Queue one job planning several devices of a site; return the job id.

        Each flex-model names its device's power sensor (``"sensor": id``); the
        flex-context holds what the devices share (prices, the grid connection's
        ``site-power-capacity``, inflexible sensors). The plan of each device is
        then fetched with ``async_get_schedule`` for its own sensor and this job.
        """
        return await self._call(
            lambda: self._client.trigger_schedule(
                asset_id=asset_id,
                start=start.isoformat(),
                duration=format_duration(duration),
                flex_model=[dict(model) for model in flex_models],
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

    async def async_get_fallback_job(
        self, *, sensor_id: int, job_id: str
    ) -> str | None:
        """Return the job of the fallback plan for a failed job, None without one.

        FlexMeasures may plan a failed job again with its scheduler's fallback;
        the failed job's schedule then answers 303 See Other to the fallback
        job's schedule, which may still be computing. The redirect is not
        followed here: the caller waits for that job like for any other. A
        failed job without a fallback is refused (400, unknown schedule).
        """
        redirects: list[str] = []
        token = _REDIRECTS.set(redirects)
        try:
            _, status = await self._call(
                lambda: self._client.request(
                    uri=f"sensors/{sensor_id}/schedules/{job_id}",
                    method="GET",
                    pass_through_statuses=frozenset({HTTPStatus.SEE_OTHER}),
                )
            )
        finally:
            _REDIRECTS.reset(token)
        if status != HTTPStatus.SEE_OTHER or not redirects:
            return None
        return URL(redirects[-1]).path.rstrip("/").rsplit("/", 1)[-1] or None


# --- S2: a typed adapter over the library's Customer Energy Manager (issue 8) ------
# What a conversation does with the messages (post, plan, follow) is the s2
# package's; it reaches the library's classes and helpers through here only.


def s2_unique_id() -> str:
    """Return a new id for an S2 message or object (the library's)."""
    return str(get_unique_id())


def s2_fill_level_range(description: Any) -> tuple[float, float]:
    """Return the lowest and highest fill level of a system description's storage."""
    soc_min, soc_max = get_soc_min_max(description)
    return float(soc_min), float(soc_max)


def s2_operation_mode(
    description: Any, power_w: float, fill_level: float
) -> tuple[Any, float]:
    """Return the operation mode that delivers ``power_w`` best, and its factor.

    The choice is the library's (least fill-level penalty, then least power
    penalty, then the highest efficiency), made per slot without pandas.
    """
    results = [
        (mode, *power_to_fill_rate_with_metrics(mode, power_w, fill_level))
        for mode in description.actuators[0].operation_modes
    ]
    best = min(results, key=lambda result: (result[2], result[3], -result[4]))
    mode, fill_rate, element = best[0], best[1], best[5]
    return mode, float(op_mode_compute_factor(element, fill_rate, S2_LOGGER))


def s2_usage_per_hour(
    usage_forecast: Any, resolution: timedelta
) -> tuple[datetime, list[float]] | None:
    """Return the expected usage per hour from its start, or None.

    Blocking (pandas): run it in the executor.
    """
    series = translate_usage_forecast_to_fm(
        usage_forecast, resolution=pd.Timedelta(resolution)
    ).dropna()
    if series.empty:
        return None
    # S2 gives fill-level units per second; FlexMeasures plans per hour.
    values = [float(value) * 3600 for value in series.to_numpy()]
    return series.index[0].to_pydatetime(), values


class _FRBC(FRBC):
    """The library's FRBC handler, handing what it receives to the conversation."""

    def __init__(self, handler: S2CemHandler) -> None:
        """Bind the handler to a conversation."""
        super().__init__()
        self._handler = handler

    async def send_storage_status(self, status: Any) -> None:
        """Hand over a storage status."""
        await self._handler.async_storage_status(status)

    async def send_actuator_status(self, status: Any) -> None:
        """Hand over an actuator status."""
        await self._handler.async_actuator_status(status)

    async def send_usage_forecast(self, usage_forecast: Any) -> None:
        """Hand over a usage forecast."""
        await self._handler.async_usage_forecast(usage_forecast)

    async def send_leakage_behaviour(self, leakage_behaviour: Any) -> None:
        """Keep the leakage behaviour only: no FlexMeasures sensor receives it."""

    async def send_fill_level_target_profile(self, profile: Any) -> None:
        """Keep the fill level target profile only: no sensor receives it."""

    async def trigger_schedule(self, system_description_id: str) -> None:
        """Hand over a system description (the library calls this for each one)."""
        description = self._system_description_history[system_description_id]
        await self._handler.async_system_description(description)

    async def close(self) -> None:
        """Stop the work the library started for this connection."""
        for task in self.background_tasks:
            task.cancel()


class _CEM(CEM):
    """The library's CEM, with a bounded outbox; power goes to the conversation."""

    def __init__(
        self, api: FlexMeasuresApi, handler: S2CemHandler, queue_size: int, frbc: _FRBC
    ) -> None:
        """Set up the CEM with FRBC as the control type it asks for."""
        super().__init__(
            fm_client=api._client,  # noqa: SLF001
            logger=S2_LOGGER,
            default_control_type=ControlType.FILL_RATE_BASED_CONTROL,
        )
        self._sending_queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)
        self._handler = handler
        self.frbc = frbc
        self.register_control_type(self.frbc)

    @register(PowerMeasurement)
    async def handle_power_measurement(self, message: Any) -> Any:
        """Hand over a power measurement and acknowledge it."""
        await self._handler.async_power_measurement(message)
        return get_reception_status(message)


class S2Cem:
    """One resource manager's CEM: the library's CEM with FRBC, typed.

    Messages in and out are s2-python models (or their JSON dicts); what the
    library receives goes to ``handler``.
    """

    def __init__(
        self, api: FlexMeasuresApi, handler: S2CemHandler, *, queue_size: int
    ) -> None:
        """Set up the CEM; this does no I/O."""
        self._frbc = _FRBC(handler)
        self._cem = _CEM(api, handler, queue_size, self._frbc)

    @property
    def control_type(self) -> str | None:
        """Return the active control type (lower case), or None before the details."""
        control_type = self._cem.control_type
        return None if control_type is None else str(control_type.value).lower()

    @property
    def resource_manager_details(self) -> Any:
        """Return the last ResourceManagerDetails, or None."""
        return getattr(self._cem, "_resource_manager_details", None)

    @property
    def latest_description(self) -> Any:
        """Return the last FRBC.SystemDescription, or None."""
        descriptions = self._frbc._system_description_history  # noqa: SLF001
        return list(descriptions.values())[-1] if descriptions else None

    @property
    def latest_storage_status(self) -> Any:
        """Return the last FRBC.StorageStatus, or None."""
        statuses = self._frbc._storage_status_history  # noqa: SLF001
        return list(statuses.values())[-1] if statuses else None

    def supports_message(self, message: dict[str, Any]) -> bool:
        """Return True when the CEM or its FRBC handler takes this message type."""
        return bool(
            self._cem.supports_message(message) or self._frbc.supports_message(message)
        )

    async def async_handle_message(self, message: dict[str, Any]) -> None:
        """Handle a received message; its answer goes to the outbox."""
        await self._cem.handle_message(message)

    async def async_send(self, message: Any) -> None:
        """Put a message in the outbox; wait while the outbox is full."""
        # The library leaves these CEM methods unannotated.
        await self._cem.send_message(message)  # type: ignore[no-untyped-call]

    async def async_next_message(self) -> dict[str, Any]:
        """Wait for the next message to send, as a JSON dict."""
        return cast("dict[str, Any]", await self._cem.get_message())

    async def async_activate_control_type(self, control_type: str) -> None:
        """Ask the resource manager to switch to a control type (lower case)."""
        await self._cem.activate_control_type(ControlType(control_type.upper()))

    async def async_close(self) -> None:
        """Stop the CEM and the work its FRBC handler started."""
        # CEM.close only marks the CEM closed and closes its control-type handlers;
        # it does not touch the HTTP client, so Home Assistant's session stays open.
        await self._cem.close()  # type: ignore[no-untyped-call]
