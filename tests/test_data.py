"""The one mapping of library errors to Home Assistant errors."""

from __future__ import annotations

import json
from pathlib import Path
import re
from unittest.mock import Mock

from homeassistant.exceptions import (
    ConfigEntryAuthFailed,
    ConfigEntryNotReady,
    HomeAssistantError,
)
from homeassistant.helpers.update_coordinator import UpdateFailed
import pytest

from custom_components.flexmeasures.api import (
    FlexMeasuresAuthenticationError,
    FlexMeasuresConnectionError,
    FlexMeasuresError,
    FlexMeasuresHttpStatusError,
    FlexMeasuresInvalidUrlError,
    FlexMeasuresRejectedError,
    FlexMeasuresResponseError,
    FlexMeasuresServerTooOldError,
)
from custom_components.flexmeasures.const import DOMAIN
from custom_components.flexmeasures.data import ErrorKind, error_kind, translated_error

STRINGS = Path(__file__).parent.parent / "custom_components" / DOMAIN / "strings.json"

# error, its kind, the translation key with and without a rejected_key
ERRORS = [
    (FlexMeasuresAuthenticationError("no"), ErrorKind.AUTHENTICATION),
    (FlexMeasuresServerTooOldError("0.20.0"), ErrorKind.SERVER_TOO_OLD),
    (FlexMeasuresInvalidUrlError("ftp://x"), ErrorKind.INVALID_URL),
    (FlexMeasuresRejectedError("bad", status=422), ErrorKind.REJECTED),
    (FlexMeasuresConnectionError("timeout"), ErrorKind.CONNECTION),
    (FlexMeasuresHttpStatusError("503", status=503), ErrorKind.CONNECTION),
    (FlexMeasuresResponseError("not JSON"), ErrorKind.RESPONSE),
    (FlexMeasuresError("odd"), ErrorKind.RESPONSE),
]


def test_every_kind_has_text() -> None:
    """Each key is an exception text in strings.json using only what is supplied."""
    exceptions = json.loads(STRINGS.read_text())["exceptions"]
    keys = [kind.value for kind in ErrorKind] + ["post_rejected", "schedule_rejected"]
    for key in keys:
        used = set(re.findall(r"\{(\w+)\}", exceptions[key]["message"]))
        assert used <= {"error", "version"}, key


@pytest.mark.parametrize(("err", "kind"), ERRORS, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize(
    "error_class", [HomeAssistantError, UpdateFailed, ConfigEntryNotReady]
)
def test_translated_error(
    err: FlexMeasuresError, kind: ErrorKind, error_class: type[HomeAssistantError]
) -> None:
    """One table: the kind, the key, the placeholders; who asks the user to log in."""
    assert error_kind(err) is kind
    reauth = Mock()
    mapped = translated_error(
        err, error_class, reauth=reauth, rejected_key="post_rejected"
    )
    assert type(mapped) is error_class
    assert mapped.translation_domain == DOMAIN
    assert mapped.translation_key == (
        "post_rejected" if kind is ErrorKind.REJECTED else kind.value
    )
    assert mapped.translation_placeholders is not None
    assert mapped.translation_placeholders["error"] == str(err)
    if kind is ErrorKind.SERVER_TOO_OLD:
        assert mapped.translation_placeholders["version"] == "0.20.0"
    assert reauth.call_count == (kind is ErrorKind.AUTHENTICATION)

    # Set-up and coordinators: Home Assistant itself asks for a new log-in.
    plain = translated_error(err, error_class)
    if kind is ErrorKind.AUTHENTICATION:
        assert type(plain) is ConfigEntryAuthFailed
        assert plain.translation_key == "authentication_failed"
    else:
        assert type(plain) is error_class
        assert plain.translation_key == kind.value


def test_empty_message_names_the_error() -> None:
    """An error without text still says what it was."""
    mapped = translated_error(FlexMeasuresConnectionError(), HomeAssistantError)
    assert mapped.translation_placeholders == {"error": "FlexMeasuresConnectionError"}
