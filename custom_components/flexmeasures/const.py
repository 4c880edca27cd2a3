"""Constants for the FlexMeasures integration."""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Final

DOMAIN: Final = "flexmeasures"
LOGGER: Final = logging.getLogger(__package__)

CONF_ACCOUNT_ID: Final = "account_id"

# The oldest FlexMeasures server whose API (v3) this integration speaks.
MIN_SERVER_VERSION: Final = "0.33.0"

# Bounded waits: a dead server must fail within seconds, not the library's 200 s.
REQUEST_TIMEOUT: Final = 10.0
REQUEST_RETRY_BUDGET: Final = 20.0
REQUEST_ATTEMPTS: Final = 2

DEFAULT_SCAN_INTERVAL: Final = timedelta(minutes=5)
