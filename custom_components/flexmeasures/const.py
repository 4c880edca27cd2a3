"""Constants for the FlexMeasures integration."""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Final

DOMAIN: Final = "flexmeasures"
LOGGER: Final = logging.getLogger(__package__)
# S2 and the library's CEM log here, so S2 can be turned up on its own.
S2_LOGGER: Final = logging.getLogger(f"{__package__}.s2")

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

# --- Scheduling: controlled devices (config subentries) ---

# Minor version 2: subentry unique ids name their type ("controlled_device_20",
# "measurement_link_20") instead of the bare sensor id.
# Minor version 3: the entry's unique id, device identifiers and entity unique
# ids name the account ("account_3"), no longer the server URL.
CONFIG_ENTRY_MINOR_VERSION: Final = 3

SUBENTRY_CONTROLLED_DEVICE: Final = "controlled_device"

CONF_KIND: Final = "kind"
CONF_POWER_SENSOR: Final = "power_sensor"
CONF_SOC_ENTITY: Final = "soc_entity"
CONF_SOC_UNIT: Final = "soc_unit"
CONF_CAPACITY: Final = "capacity"
CONF_SOC_MIN: Final = "soc_min"
CONF_SOC_MAX: Final = "soc_max"
CONF_CHARGE_POWER: Final = "charge_power"
CONF_DISCHARGE_POWER: Final = "discharge_power"
CONF_ROUNDTRIP_EFFICIENCY: Final = "roundtrip_efficiency"
CONF_CONSUMPTION_PRICE_SENSOR: Final = "consumption_price_sensor"
CONF_PRODUCTION_PRICE_SENSOR: Final = "production_price_sensor"
CONF_HORIZON: Final = "horizon"
CONF_AUTO_RESCHEDULE: Final = "auto_reschedule"
CONF_AUTO_INTERVAL: Final = "interval"
CONF_AUTO_SOC_DRIFT: Final = "soc_drift"
CONF_AUTO_ENTITIES: Final = "entities"

# Option: whether FlexMeasures' fallback plan (its scheduler failed, another one
# planned) drives the device's entities, or counts as a failure.
CONF_USE_FALLBACK_PLANS: Final = "use_fallback_plans"
DEFAULT_USE_FALLBACK_PLANS: Final = True

EVENT_SCHEDULE_UPDATED: Final = "flexmeasures_schedule_updated"

# --- S2 (issue 8) -----------------------------------------------------------------
# The section of a controlled device's subentry data that configures its S2
# connection (stored nested, like the auto-reschedule section). S2 instructions
# follow the schedule of the device's CONF_POWER_SENSOR.
CONF_S2: Final = "s2"
CONF_S2_ENABLED: Final = "s2_enabled"
CONF_S2_POWER_SENSOR: Final = "s2_power_sensor"
CONF_S2_FILL_LEVEL_SENSOR: Final = "s2_fill_level_sensor"
CONF_S2_USAGE_FORECAST_SENSOR: Final = "s2_usage_forecast_sensor"
CONF_S2_ACTUATOR_STATUS_SENSOR: Final = "s2_actuator_status_sensor"

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
# Measurement links: config subentries that send an entity's states to a sensor.
SUBENTRY_MEASUREMENT_LINK: Final = "measurement_link"
CONF_SENSOR_ID: Final = "sensor_id"
CONF_SENSOR_UNIT: Final = "sensor_unit"
CONF_SENSOR_RESOLUTION: Final = "sensor_resolution"
CONF_INVERT: Final = "invert"
CONF_AGGREGATION: Final = "aggregation"
CONF_UPLOAD_INTERVAL: Final = "upload_interval"
DEFAULT_UPLOAD_INTERVAL: Final = timedelta(minutes=5)

# --- Forecast links (issue 16): config subentries that post series HA holds
# (day-ahead prices, solar forecasts) to a FlexMeasures sensor as forecasts.
SUBENTRY_FORECAST_LINK: Final = "forecast_link"
CONF_SOURCE_TYPE: Final = "source_type"
# Source types: a response action of a price integration, an entity attribute
# holding a list of slots, or HA's energy solar forecast of a config entry.
SOURCE_ACTION: Final = "action"
SOURCE_ATTRIBUTE: Final = "attribute"
SOURCE_SOLAR_FORECAST: Final = "solar_forecast"
CONF_SOURCE_ENTRY: Final = "source_entry"
CONF_SOURCE_ENTITY: Final = "source_entity"
CONF_SOURCE_ATTRIBUTE: Final = "source_attribute"
CONF_SOURCE_SHAPE: Final = "source_shape"
CONF_SOURCE_UNIT: Final = "source_unit"

# --- Sites (issue 16): a FlexMeasures parent asset whose controlled devices are
# planned together, in one asset-level job, under one grid connection.
SUBENTRY_SITE: Final = "site"
CONF_ASSET_ID: Final = "asset_id"
CONF_SITE_DEVICES: Final = "devices"
CONF_SITE_POWER_CAPACITY: Final = "site_power_capacity"
CONF_INFLEXIBLE_SENSORS: Final = "inflexible_sensors"
CONF_REPLAN_ON_PRICES: Final = "replan_on_prices"
