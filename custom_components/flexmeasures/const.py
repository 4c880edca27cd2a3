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

# --- S2 (issue 8) -----------------------------------------------------------------
# Subentry type of a controlled device (shared with the scheduling feature).
SUBENTRY_TYPE_CONTROLLED_DEVICE: Final = "controlled_device"

# Keys in a controlled device's subentry data that configure its S2 connection.
CONF_S2_ENABLED: Final = "s2_enabled"
CONF_S2_POWER_SENSOR: Final = "s2_power_sensor"
CONF_S2_FILL_LEVEL_SENSOR: Final = "s2_fill_level_sensor"
CONF_S2_USAGE_FORECAST_SENSOR: Final = "s2_usage_forecast_sensor"
CONF_S2_ACTUATOR_STATUS_SENSOR: Final = "s2_actuator_status_sensor"
CONF_S2_SCHEDULE_SENSOR: Final = "s2_schedule_sensor"

# S2 control types as Home Assistant states (the S2 names, lower case).
S2_CONTROL_TYPES: Final = (
    "no_selection",
    "not_controlable",
    "fill_rate_based_control",
    "power_envelope_based_control",
    "power_profile_based_control",
    "operation_mode_based_control",
    "demand_driven_based_control",
)
