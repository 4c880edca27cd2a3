"""Tests for the forecast link subentry flow: every source type, step and error."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures.config_flow import ARROW, SEPARATOR
from custom_components.flexmeasures.const import SUBENTRY_FORECAST_LINK
from custom_components.flexmeasures.forecasts.model import SourcePoint, SourceSeries

from .conftest import FakeFlexMeasures, recorded, setup_entry
from .flow_helpers import configure, select_values, start_flow, suggested
from .forecast_helpers import FakeSources, patched_sources

START = datetime(2026, 12, 4, 0, 0, tzinfo=UTC)
PRICES = "sensor.nord_pool_prices"
NEW_SENSOR = {
    "id": 40,
    "name": "Nord Pool prices",
    "unit": "EUR/MWh",
    "event_resolution": "PT1H",
    "generic_asset_id": 10,
}
SERIES = SourceSeries(
    points=tuple(
        SourcePoint(START + timedelta(hours=hour), None, 50.0 + hour)
        for hour in range(24)
    ),
    unit="EUR/MWh",
)


def _raw(values: list[Any]) -> dict[str, Any]:
    """Return Nord Pool style attributes."""
    return {
        "unit_of_measurement": "EUR/kWh",
        "raw_today": [
            {
                "start": START + timedelta(hours=hour),
                "end": START + timedelta(hours=hour + 1),
                "value": value,
            }
            for hour, value in enumerate(values)
        ],
        "raw_tomorrow": [],
    }


@pytest.fixture
def sources() -> Iterator[FakeSources]:
    """Return the patched sources interface."""
    with patched_sources() as fake:
        yield fake


@pytest.fixture
async def entry(
    hass: HomeAssistant, linked_entry: MockConfigEntry, fake_server: FakeFlexMeasures
) -> MockConfigEntry:
    """Return a loaded entry (with a measurement link) and a price entity."""
    for sensor_id in (30, 32, 40):
        fake_server.responses[f"POST /api/v3_0/sensors/{sensor_id}/data"] = recorded(
            "sensor_data_post"
        )[1]
    hass.states.async_set(PRICES, "0.05", _raw([0.05, 0.06, 0.07]))
    return await setup_entry(hass, linked_entry)


async def test_attribute_link(
    hass: HomeAssistant, entry: MockConfigEntry, sources: FakeSources
) -> None:
    """Entity, attribute (shape detected), preview with the unit, sensor."""
    result = await start_flow(hass, entry, SUBENTRY_FORECAST_LINK)
    assert result["step_id"] == "user"
    assert select_values(result, "source_type") == [
        "action",
        "attribute",
        "solar_forecast",
    ]
    result = await configure(hass, result["flow_id"], {"source_type": "attribute"})
    assert result["step_id"] == "source_entity"

    hass.states.async_set("sensor.plain", "1")
    result = await configure(hass, result["flow_id"], {"source_entity": "sensor.plain"})
    assert result["errors"] == {"source_entity": "no_slot_list"}
    result = await configure(hass, result["flow_id"], {"source_entity": "sensor.gone"})
    assert result["errors"] == {"source_entity": "no_slot_list"}
    result = await configure(hass, result["flow_id"], {"source_entity": PRICES})
    assert result["step_id"] == "source_attribute"
    assert select_values(result, "source_attribute") == ["raw_today"]

    result = await configure(hass, result["flow_id"], {"source_attribute": "raw_today"})
    assert result["step_id"] == "confirm"
    placeholders = result["description_placeholders"]
    assert placeholders["shape"] == "start, end, value"
    assert placeholders["slots"] == "3"
    assert placeholders["unit"] == "EUR/kWh"
    assert placeholders["preview"].splitlines()[0].endswith(": 0.05")

    result = await configure(hass, result["flow_id"], {"source_unit": " "})
    assert result["errors"] == {"source_unit": "unit_unknown"}
    result = await configure(hass, result["flow_id"], {"source_unit": "°C"})
    assert result["errors"] == {"source_unit": "unit_unsupported"}
    result = await configure(hass, result["flow_id"], {"source_unit": "EUR/kWh"})
    assert result["step_id"] == "sensor"
    # Only sensors in EUR per energy take EUR/kWh prices.
    assert select_values(result, "sensor") == ["30", "new"]

    result = await configure(hass, result["flow_id"], {"sensor": "30"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == (
        f"nord pool prices{ARROW}Home{SEPARATOR}consumption price (EUR/MWh)"
    )
    assert result["data"] == {
        "source_type": "attribute",
        "source_entity": PRICES,
        "source_attribute": "raw_today",
        "source_shape": "start,end,value",
        "source_unit": "EUR/kWh",
        "sensor_id": 30,
        "sensor_unit": "EUR/MWh",
        "sensor_resolution": 3600,
    }
    await hass.async_block_till_done()
    subentry = next(
        item
        for item in entry.subentries.values()
        if item.subentry_type == SUBENTRY_FORECAST_LINK
    )
    assert subentry.unique_id == "forecast_link_30"
    await hass.async_block_till_done(wait_background_tasks=True)


@pytest.mark.parametrize(
    ("attributes", "error"),
    [
        ({"raw_today": [{"start": START, "other": 1}]}, "shape_no_value"),
        ({"raw_today": [{"value": 1}]}, "shape_no_start"),
        ({"raw_today": [{"start": "noon", "value": 1}]}, "shape_bad_start"),
        ({"raw_today": [{"start": START, "value": "x"}]}, "shape_bad_value"),
        ({"raw_today": [{"start": START, "value": None}]}, "shape_no_slots"),
        (
            {"raw_today": [{"start": START, "value": 1}], "raw_tomorrow": [1]},
            "shape_not_a_slot_list",
        ),
    ],
)
async def test_unreadable_attribute_is_refused(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    attributes: dict[str, Any],
    error: str,
) -> None:
    """Each unreadable shape is a form error on the attribute; the entity can go."""
    hass.states.async_set("sensor.odd", "1", attributes)
    result = await start_flow(hass, entry, SUBENTRY_FORECAST_LINK)
    result = await configure(hass, result["flow_id"], {"source_type": "attribute"})
    result = await configure(hass, result["flow_id"], {"source_entity": "sensor.odd"})
    result = await configure(hass, result["flow_id"], {"source_attribute": "raw_today"})
    assert result["errors"] == {"source_attribute": error}

    hass.states.async_remove("sensor.odd")
    result = await configure(hass, result["flow_id"], {"source_attribute": "raw_today"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "source_gone"


async def test_action_link_to_a_new_sensor(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    fake_server: FakeFlexMeasures,
    sources: FakeSources,
) -> None:
    """A price integration's entry, read for the preview; a new sensor for it."""
    result = await start_flow(hass, entry, SUBENTRY_FORECAST_LINK)
    result = await configure(hass, result["flow_id"], {"source_type": "action"})
    assert result["reason"] == "no_action_sources"

    sources.entries["action"] = [("nordpool_entry", "Nord Pool")]
    result = await start_flow(hass, entry, SUBENTRY_FORECAST_LINK)
    result = await configure(hass, result["flow_id"], {"source_type": "action"})
    assert result["step_id"] == "source_entry"
    assert select_values(result, "source_entry") == ["nordpool_entry"]
    result = await configure(
        hass, result["flow_id"], {"source_entry": "nordpool_entry"}
    )
    assert result["errors"] == {"source_entry": "source_unreadable"}

    sources.series = SERIES
    result = await configure(
        hass, result["flow_id"], {"source_entry": "nordpool_entry"}
    )
    assert result["step_id"] == "confirm"
    assert result["description_placeholders"]["shape"] == "-"
    assert result["description_placeholders"]["source"] == "Nord Pool"
    result = await configure(hass, result["flow_id"], {"source_unit": "EUR/MWh"})
    result = await configure(hass, result["flow_id"], {"sensor": "new"})
    assert result["step_id"] == "new_sensor"

    new_sensor = {
        "asset": "10",
        "name": "Nord Pool prices",
        "unit_of_measurement": "SEK/MWh",
        "resolution": {"hours": 1, "minutes": 0, "seconds": 0},
    }
    result = await configure(hass, result["flow_id"], new_sensor)
    assert result["errors"] == {"unit_of_measurement": "currency_mismatch"}
    result = await configure(
        hass, result["flow_id"], {**new_sensor, "unit_of_measurement": "kW"}
    )
    assert result["errors"] == {"unit_of_measurement": "unit_mismatch"}

    fake_server.statuses["POST /api/v3_0/sensors"] = 422
    fake_server.responses["POST /api/v3_0/sensors"] = {"message": "no"}
    result = await configure(
        hass, result["flow_id"], {**new_sensor, "unit_of_measurement": "EUR/MWh"}
    )
    assert result["errors"] == {"base": "sensor_rejected"}

    fake_server.statuses["POST /api/v3_0/sensors"] = 201
    fake_server.responses["POST /api/v3_0/sensors"] = NEW_SENSOR
    result = await configure(
        hass, result["flow_id"], {**new_sensor, "unit_of_measurement": "EUR/MWh"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {
        "source_type": "action",
        "source_entry": "nordpool_entry",
        "source_unit": "EUR/MWh",
        "sensor_id": 40,
        "sensor_unit": "EUR/MWh",
        "sensor_resolution": 3600,
    }
    assert result["title"] == (
        f"Nord Pool{ARROW}Home{SEPARATOR}Nord Pool prices (EUR/MWh)"
    )
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_solar_link_defaults_to_kw_and_reconfigure(
    hass: HomeAssistant, entry: MockConfigEntry, sources: FakeSources
) -> None:
    """A solar forecast in Wh: a new sensor in kW; then the link is changed."""
    result = await start_flow(hass, entry, SUBENTRY_FORECAST_LINK)
    result = await configure(hass, result["flow_id"], {"source_type": "solar_forecast"})
    assert result["reason"] == "no_solar_forecast_sources"

    sources.entries["solar_forecast"] = [("forecast_solar", "Forecast.Solar")]
    sources.series = SourceSeries(points=SERIES.points, unit=None)
    result = await start_flow(hass, entry, SUBENTRY_FORECAST_LINK)
    result = await configure(hass, result["flow_id"], {"source_type": "solar_forecast"})
    result = await configure(
        hass, result["flow_id"], {"source_entry": "forecast_solar"}
    )
    assert result["step_id"] == "confirm"
    assert result["description_placeholders"]["unit"] == "-"
    result = await configure(hass, result["flow_id"], {"source_unit": "Wh"})
    assert result["step_id"] == "sensor"
    result = await configure(hass, result["flow_id"], {"sensor": "new"})
    defaults = suggested(result["data_schema"])
    assert defaults["unit_of_measurement"] == "kW"
    assert defaults["name"] == "Forecast.Solar"
    result = await configure(
        hass,
        result["flow_id"],
        {
            "asset": "10",
            "name": "solar",
            "unit_of_measurement": "EUR/MWh",
            "resolution": {"hours": 1, "minutes": 0, "seconds": 0},
        },
    )
    assert result["errors"] == {"unit_of_measurement": "unit_mismatch"}

    # An existing sensor instead: solar production (W).
    result = await start_flow(hass, entry, SUBENTRY_FORECAST_LINK)
    result = await configure(hass, result["flow_id"], {"source_type": "solar_forecast"})
    result = await configure(
        hass, result["flow_id"], {"source_entry": "forecast_solar"}
    )
    result = await configure(hass, result["flow_id"], {"source_unit": "Wh"})
    assert "32" in select_values(result, "sensor")
    result = await configure(hass, result["flow_id"], {"sensor": "32"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done(wait_background_tasks=True)
    (subentry_id,) = (
        key
        for key, item in entry.subentries.items()
        if item.subentry_type == SUBENTRY_FORECAST_LINK
    )

    # Reconfigure: a second link may not post to the same sensor.
    price_link = await start_flow(hass, entry, SUBENTRY_FORECAST_LINK)
    price_link = await configure(
        hass, price_link["flow_id"], {"source_type": "attribute"}
    )
    price_link = await configure(hass, price_link["flow_id"], {"source_entity": PRICES})
    price_link = await configure(
        hass, price_link["flow_id"], {"source_attribute": "raw_today"}
    )
    price_link = await configure(hass, price_link["flow_id"], {"source_unit": "W"})
    price_link = await configure(hass, price_link["flow_id"], {"sensor": "32"})
    assert price_link["errors"] == {"sensor": "already_linked"}

    result = await start_flow(hass, entry, SUBENTRY_FORECAST_LINK, subentry_id)
    assert result["step_id"] == "reconfigure"
    result = await configure(hass, result["flow_id"], {"source_type": "solar_forecast"})
    assert result["step_id"] == "source_entry"
    result = await configure(
        hass, result["flow_id"], {"source_entry": "forecast_solar"}
    )
    result = await configure(hass, result["flow_id"], {"source_unit": "kWh"})
    assert result["step_id"] == "sensor"
    result = await configure(hass, result["flow_id"], {"sensor": "32"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.subentries[subentry_id].data["source_unit"] == "kWh"
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_entry_not_loaded(
    hass: HomeAssistant, linked_entry: MockConfigEntry
) -> None:
    """An entry that is not loaded has no inventory to link to."""
    linked_entry.add_to_hass(hass)
    result = await start_flow(hass, linked_entry, SUBENTRY_FORECAST_LINK)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "entry_not_loaded"
