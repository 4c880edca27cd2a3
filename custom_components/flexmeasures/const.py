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

# Measurement links: config subentries that send an entity's states to a sensor.
SUBENTRY_MEASUREMENT_LINK: Final = "measurement_link"
CONF_SENSOR_ID: Final = "sensor_id"
CONF_SENSOR_UNIT: Final = "sensor_unit"
CONF_SENSOR_RESOLUTION: Final = "sensor_resolution"
CONF_INVERT: Final = "invert"
CONF_AGGREGATION: Final = "aggregation"
CONF_UPLOAD_INTERVAL: Final = "upload_interval"
DEFAULT_UPLOAD_INTERVAL: Final = timedelta(minutes=5)
