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

# --- Scheduling: controlled devices (config subentries) ---

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

EVENT_SCHEDULE_UPDATED: Final = "flexmeasures_schedule_updated"
