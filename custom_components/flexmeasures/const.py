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

# Options: which sensors become entities, and how often their values are polled.
# Sensors are exposed unless the user deselected them, so new sensors appear by
# themselves; the option stores the deselected ids.
CONF_EXCLUDED_SENSORS: Final = "excluded_sensors"
CONF_SCAN_INTERVAL: Final = "scan_interval"
MIN_SCAN_INTERVAL_MINUTES: Final = 1
MAX_SCAN_INTERVAL_MINUTES: Final = 60

# Values are polled this long after each slot boundary, so data posted at the
# boundary is already on the server.
SLOT_OFFSET: Final = timedelta(seconds=10)
# At most this many value requests run at once.
MAX_CONCURRENT_REQUESTS: Final = 4
# How far back a refresh looks for a sensor's most recent value.
VALUE_LOOKBACK: Final = timedelta(hours=6)
# Query resolution for instantaneous sensors (event resolution zero).
INSTANTANEOUS_RESOLUTION: Final = timedelta(minutes=5)

# Measurement links: config subentries that send an entity's states to a sensor.
SUBENTRY_MEASUREMENT_LINK: Final = "measurement_link"
CONF_SENSOR_ID: Final = "sensor_id"
CONF_SENSOR_UNIT: Final = "sensor_unit"
CONF_SENSOR_RESOLUTION: Final = "sensor_resolution"
CONF_INVERT: Final = "invert"
CONF_AGGREGATION: Final = "aggregation"
CONF_UPLOAD_INTERVAL: Final = "upload_interval"
DEFAULT_UPLOAD_INTERVAL: Final = timedelta(minutes=5)
