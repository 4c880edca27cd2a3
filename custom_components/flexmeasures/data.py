"""Runtime data of a FlexMeasures config entry, and what its errors mean in HA."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, overload

from homeassistant.config_entries import ConfigEntry
from homeassistant.exceptions import ConfigEntryAuthFailed, HomeAssistantError

from .api import (
    FlexMeasuresAuthenticationError,
    FlexMeasuresConnectionError,
    FlexMeasuresError,
    FlexMeasuresInvalidUrlError,
    FlexMeasuresRejectedError,
    FlexMeasuresServerTooOldError,
)
from .const import DOMAIN

if TYPE_CHECKING:
    from .api import FlexMeasuresApi, ServerInfo
    from .coordinator import (
        FlexMeasuresInventoryCoordinator,
        FlexMeasuresSensorValuesCoordinator,
    )
    from .forecasts.link import ForecastLinks
    from .s2 import S2Hub
    from .scheduling import DeviceScheduler, SiteScheduler
    from .uploader import MeasurementUploader

type FlexMeasuresConfigEntry = ConfigEntry[FlexMeasuresData]


@dataclass(kw_only=True)
class FlexMeasuresData:
    """What a loaded entry holds: the API, what we know of the server, coordinators."""

    api: FlexMeasuresApi
    server: ServerInfo
    inventory: FlexMeasuresInventoryCoordinator
    # S2: websocket connections of the controlled devices' resource managers.
    s2: S2Hub
    sensor_values: FlexMeasuresSensorValuesCoordinator
    # Scheduling: one scheduler per controlled-device subentry, by subentry id.
    schedulers: dict[str, DeviceScheduler] = field(default_factory=dict)
    # Sites: one scheduler per site subentry (devices planned together), by id.
    sites: dict[str, SiteScheduler] = field(default_factory=dict)
    uploader: MeasurementUploader
    # Forecast links: series HA holds, posted to sensors as forecasts.
    forecasts: ForecastLinks


class ErrorKind(StrEnum):
    """What went wrong talking to FlexMeasures; the value is the translation key."""

    AUTHENTICATION = "authentication_failed"
    SERVER_TOO_OLD = "server_too_old"
    INVALID_URL = "invalid_url"
    REJECTED = "request_rejected"
    CONNECTION = "communication_error"
    RESPONSE = "unexpected_response"


# Most specific first: an HTTP status error is a connection error.
_KINDS: tuple[tuple[type[FlexMeasuresError], ErrorKind], ...] = (
    (FlexMeasuresAuthenticationError, ErrorKind.AUTHENTICATION),
    (FlexMeasuresServerTooOldError, ErrorKind.SERVER_TOO_OLD),
    (FlexMeasuresInvalidUrlError, ErrorKind.INVALID_URL),
    (FlexMeasuresRejectedError, ErrorKind.REJECTED),
    (FlexMeasuresConnectionError, ErrorKind.CONNECTION),
)


def error_kind(err: FlexMeasuresError) -> ErrorKind:
    """Return what a library error means; anything unknown is an unreadable answer."""
    for error_class, kind in _KINDS:
        if isinstance(err, error_class):
            return kind
    return ErrorKind.RESPONSE


@overload
def translated_error[E: HomeAssistantError](
    err: FlexMeasuresError,
    error_class: Callable[..., E],
    *,
    reauth: Callable[[], Any],
    rejected_key: str | None = None,
) -> E: ...


@overload
def translated_error[E: HomeAssistantError](
    err: FlexMeasuresError,
    error_class: Callable[..., E],
    *,
    reauth: None = None,
    rejected_key: str | None = None,
) -> E | ConfigEntryAuthFailed: ...


def translated_error[E: HomeAssistantError](
    err: FlexMeasuresError,
    error_class: Callable[..., E],
    *,
    reauth: Callable[[], Any] | None = None,
    rejected_key: str | None = None,
) -> E | ConfigEntryAuthFailed:
    """Return the translated Home Assistant error for a library error.

    A refused login becomes ``ConfigEntryAuthFailed`` (set-up and coordinators:
    Home Assistant then asks the user to log in) unless ``reauth`` is given, which
    starts that flow for callers outside those paths. ``rejected_key`` names what
    the server refused (measurements, a schedule request).
    """
    kind = error_kind(err)
    text = str(err) or type(err).__name__
    placeholders = {"error": text}
    if kind is ErrorKind.AUTHENTICATION:
        if reauth is None:
            return ConfigEntryAuthFailed(
                translation_domain=DOMAIN, translation_key=kind.value
            )
        reauth()
    elif kind is ErrorKind.SERVER_TOO_OLD:
        placeholders["version"] = text
    key = rejected_key if kind is ErrorKind.REJECTED and rejected_key else kind.value
    return error_class(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders=placeholders,
    )
