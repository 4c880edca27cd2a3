"""Tests for S2 configuration: what a controlled device's subentry data turns into."""

from __future__ import annotations

from typing import Any

import pytest

from custom_components.flexmeasures.const import (
    CONF_S2,
    CONF_S2_ACTUATOR_STATUS_SENSOR,
    CONF_S2_ENABLED,
    CONF_S2_FILL_LEVEL_SENSOR,
    CONF_S2_POWER_SENSOR,
    CONF_S2_USAGE_FORECAST_SENSOR,
)
from custom_components.flexmeasures.s2 import S2DeviceConfig

# Logs at debug level, asserted free of the password, token and e-mail.
pytestmark = pytest.mark.usefixtures("no_secrets_logged")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, S2DeviceConfig(subentry_id="s", name="n", enabled=False)),
        (
            {"power_sensor": 22, CONF_S2: None},
            S2DeviceConfig(
                subentry_id="s", name="n", enabled=False, schedule_sensor=22
            ),
        ),
        (
            {CONF_S2: {CONF_S2_ENABLED: True, CONF_S2_POWER_SENSOR: "20"}},
            S2DeviceConfig(subentry_id="s", name="n", enabled=True, power_sensor=20),
        ),
        (
            {
                "power_sensor": True,
                CONF_S2: {
                    CONF_S2_ENABLED: True,
                    CONF_S2_POWER_SENSOR: "",
                    CONF_S2_FILL_LEVEL_SENSOR: "abc",
                    CONF_S2_USAGE_FORECAST_SENSOR: None,
                    CONF_S2_ACTUATOR_STATUS_SENSOR: [1],
                },
            },
            S2DeviceConfig(subentry_id="s", name="n", enabled=True),
        ),
    ],
)
def test_device_config_from_subentry_data(
    data: dict[str, Any], expected: S2DeviceConfig
) -> None:
    """Subentry data is read leniently: unset or unusable sensor ids become None."""
    assert (
        S2DeviceConfig.from_subentry_data(data, subentry_id="s", name="n") == expected
    )
