"""Every step of every flow renders its texts without a translation error.

Each test walks a flow through Home Assistant (config user, reauth, reconfigure,
options, controlled device and measurement link subentries, the repair flow)
and renders every title, description, field label, field description, select
option, error and abort the flow can show, from strings.json and from each
translation, with the placeholders the flow really supplies (see flow_text).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER
from homeassistant.const import CONF_EMAIL, CONF_PASSWORD, CONF_URL, CONF_VERIFY_SSL
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.flexmeasures.const import (
    DOMAIN,
    SUBENTRY_CONTROLLED_DEVICE,
    SUBENTRY_FORECAST_LINK,
    SUBENTRY_MEASUREMENT_LINK,
    SUBENTRY_SITE,
)
from custom_components.flexmeasures.forecasts.model import SourcePoint, SourceSeries

from .conftest import (
    EMAIL,
    PASSWORD,
    POWER_ENTITY,
    SERVER_URL,
    SITE_SUBENTRY_ID,
    SOC_ENTITY,
    FakeFlexMeasures,
    FakeScheduling,
    FakeSiteScheduling,
)
from .flow_text import COMPONENT, SOURCES, reasons, render, render_result, translations
from .forecast_helpers import patched_sources
from .test_config_flow_shared_sensor import DEVICE_INPUT, LINK_FORM
from .test_repairs import refused, start_fix  # noqa: F401 (a fixture)

USER_INPUT = {
    CONF_URL: SERVER_URL,
    CONF_EMAIL: EMAIL,
    CONF_PASSWORD: PASSWORD,
    CONF_VERIFY_SSL: True,
}
KW = {"unit_of_measurement": "kW", "state_class": "measurement"}
CONFIG_FLOW = COMPONENT / "config_flow.py"

# Reasons Home Assistant itself gives, per flow.
HA_CONFIG_ABORTS = (
    "already_configured",
    "already_in_progress",
    "reauth_successful",
    "reconfigure_successful",
)
HA_SUBENTRY_ABORTS = ("already_configured", "reconfigure_successful")

CONFIG = reasons(CONFIG_FLOW, "FlexMeasuresConfigFlow", "_FORM_ERRORS")
OPTIONS = reasons(CONFIG_FLOW, "FlexMeasuresOptionsFlow")
DEVICE = reasons(CONFIG_FLOW, "ControlledDeviceSubentryFlow", "_validate_device")
LINK = reasons(CONFIG_FLOW, "MeasurementLinkSubentryFlow", "_async_create_sensor")
FORECAST = reasons(
    CONFIG_FLOW,
    "ForecastLinkSubentryFlow",
    "_async_create_sensor",
    "_SHAPE_ERRORS",
    "_CONVERSION_ERRORS",
    "_SOURCE_UNIT_ERRORS",
)
SITE = reasons(CONFIG_FLOW, "SiteSubentryFlow")
REPAIR = reasons(COMPONENT / "repairs.py", "DiscardPendingMeasurementsFlow")


@pytest.fixture(params=SOURCES)
def tree(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Return strings.json or one translation."""
    return translations(request.param)


def test_reasons_found_in_the_source() -> None:
    """The source scan finds the flows' reasons (so the walks below check them)."""
    assert {"invalid_auth", "unexpected_response", "unknown", "invalid_url"} <= (
        CONFIG["error"]
    )
    assert {"wrong_account"} <= CONFIG["abort"]
    assert OPTIONS["abort"] == {"not_loaded"}
    assert {"already_configured", "soc_above_100"} <= DEVICE["error"]
    assert {"entry_not_loaded", "no_power_sensors"} <= DEVICE["abort"]
    assert {"already_linked", "sensor_rejected"} <= LINK["error"]
    assert REPAIR["abort"] == {"link_not_found"}
    assert {"shape_no_start", "currency_mismatch", "unit_unsupported"} <= (
        FORECAST["error"]
    )
    assert {"no_action_sources", "no_solar_forecast_sources", "source_gone"} <= (
        FORECAST["abort"]
    )
    assert {"too_few_devices", "asset_not_ancestor"} <= SITE["error"]
    assert {"entry_not_loaded", "too_few_controlled_devices"} <= SITE["abort"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Hello {name}", "not supplied"),
        ("Path /s2/<entry id>", "HTML-like tag"),
        ("The device'{s}", "quoting apostrophe"),
    ],
)
def test_render_refuses_what_the_frontend_refuses(text: str, problem: str) -> None:
    """The renderer fails where the frontend would show a translation error."""
    with pytest.raises(AssertionError, match=problem):
        render(text, {}, "example")
    assert render("The device's {name}", {"name": "battery"}, "x") == (
        "The device's battery"
    )


async def test_config_user_flow(
    hass: HomeAssistant, fake_server: FakeFlexMeasures, tree: dict[str, Any]
) -> None:
    """The user step, its errors, and the abort of a second set-up."""
    config = ("config",)
    everything = {"errors": tuple(CONFIG["error"]), "aborts": HA_CONFIG_ABORTS}
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}
    )
    assert render_result(tree, config, result, **everything)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**USER_INPUT, CONF_PASSWORD: "wrong"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    render_result(tree, config, result)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], USER_INPUT
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY

    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_USER}, data=USER_INPUT
    )
    assert result["reason"] == "already_configured"
    render_result(tree, config, result, aborts=tuple(CONFIG["abort"]))


@pytest.mark.usefixtures("mock_setup_entry")
async def test_reauth_and_reconfigure(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
    tree: dict[str, Any],
) -> None:
    """Re-login and reconfiguration, with their placeholders, to their aborts."""
    config = ("config",)
    mock_config_entry.add_to_hass(hass)
    result = await mock_config_entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"
    shown = render_result(tree, config, result, errors=tuple(CONFIG["error"]))
    assert any(EMAIL in text for text in shown)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_PASSWORD: PASSWORD}
    )
    assert result["reason"] == "reauth_successful"
    render_result(tree, config, result)
    await hass.async_block_till_done()

    result = await mock_config_entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    render_result(tree, config, result, errors=tuple(CONFIG["error"]))
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_URL: SERVER_URL, CONF_EMAIL: EMAIL}
    )
    assert result["reason"] == "reconfigure_successful"
    render_result(tree, config, result)
    await hass.async_block_till_done()


async def test_options_flow(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    mock_config_entry: MockConfigEntry,
    tree: dict[str, Any],
) -> None:
    """The options form of a loaded entry, and the abort of an unloaded one."""
    mock_config_entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(mock_config_entry.entry_id)
    assert result["reason"] == "not_loaded"
    render_result(tree, ("options",), result)

    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    result = await hass.config_entries.options.async_init(mock_config_entry.entry_id)
    assert result["step_id"] == "init"
    render_result(
        tree,
        ("options",),
        result,
        errors=tuple(OPTIONS["error"]),
        aborts=tuple(OPTIONS["abort"]),
    )


async def test_controlled_device_flow(
    hass: HomeAssistant,
    fake_scheduling: FakeScheduling,
    linked_entry: MockConfigEntry,
    tree: dict[str, Any],
) -> None:
    """Add and change a controlled device, with every error and abort."""
    device = ("config_subentries", SUBENTRY_CONTROLLED_DEVICE)
    everything = {
        "errors": tuple(DEVICE["error"]),
        "aborts": (*DEVICE["abort"], *HA_SUBENTRY_ABORTS),
    }
    hass.states.async_set(SOC_ENTITY, "50", {"unit_of_measurement": "%"})
    linked_entry.add_to_hass(hass)
    result = await hass.config_entries.subentries.async_init(
        (linked_entry.entry_id, SUBENTRY_CONTROLLED_DEVICE),
        context={"source": SOURCE_USER},
    )
    assert result["reason"] == "entry_not_loaded"
    render_result(tree, device, result)

    assert await hass.config_entries.async_setup(linked_entry.entry_id)
    await hass.async_block_till_done()
    result = await hass.config_entries.subentries.async_init(
        (linked_entry.entry_id, SUBENTRY_CONTROLLED_DEVICE),
        context={"source": SOURCE_USER},
    )
    render_result(tree, device, result, **everything)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**DEVICE_INPUT, "soc_max": 101}
    )
    assert result["errors"] == {"soc_max": "soc_above_100"}
    render_result(tree, device, result)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], DEVICE_INPUT
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()

    subentry_id = next(
        key
        for key, subentry in linked_entry.subentries.items()
        if subentry.subentry_type == SUBENTRY_CONTROLLED_DEVICE
    )
    result = await hass.config_entries.subentries.async_init(
        (linked_entry.entry_id, SUBENTRY_CONTROLLED_DEVICE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
    )
    assert result["step_id"] == "reconfigure"
    render_result(tree, device, result, **everything)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], DEVICE_INPUT
    )
    assert result["reason"] == "reconfigure_successful"
    render_result(tree, device, result)


async def test_measurement_link_flow(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
    tree: dict[str, Any],
) -> None:
    """Add a link through every step (new sensor included) and change one."""
    link = ("config_subentries", SUBENTRY_MEASUREMENT_LINK)
    everything = {
        "errors": tuple(LINK["error"]),
        "aborts": (*LINK["abort"], *HA_SUBENTRY_ABORTS),
    }
    hass.states.async_set(POWER_ENTITY, "1.0", KW)
    linked_entry.add_to_hass(hass)
    result = await hass.config_entries.subentries.async_init(
        (linked_entry.entry_id, SUBENTRY_MEASUREMENT_LINK),
        context={"source": SOURCE_USER},
    )
    assert result["reason"] == "entry_not_loaded"
    render_result(tree, link, result)

    assert await hass.config_entries.async_setup(linked_entry.entry_id)
    await hass.async_block_till_done()
    result = await hass.config_entries.subentries.async_init(
        (linked_entry.entry_id, SUBENTRY_MEASUREMENT_LINK),
        context={"source": SOURCE_USER},
    )
    render_result(tree, link, result, **everything)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"entity_id": POWER_ENTITY}
    )
    assert result["step_id"] == "sensor"
    shown = render_result(tree, link, result, **everything)
    assert any("battery power" in text for text in shown)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], LINK_FORM
    )
    assert result["errors"] == {"sensor": "already_linked"}
    render_result(tree, link, result)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**LINK_FORM, "sensor": "new"}
    )
    assert result["step_id"] == "new_sensor"
    shown = render_result(tree, link, result, **everything)
    assert any("battery power" in text for text in shown)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            "asset": "11",
            "name": "power",
            "unit_of_measurement": "°C",
            "resolution": {"hours": 0, "minutes": 15, "seconds": 0},
        },
    )
    assert result["errors"] == {"unit_of_measurement": "incompatible_unit"}
    render_result(tree, link, result)

    (subentry_id,) = linked_entry.subentries
    result = await hass.config_entries.subentries.async_init(
        (linked_entry.entry_id, SUBENTRY_MEASUREMENT_LINK),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
    )
    assert result["step_id"] == "reconfigure"
    render_result(tree, link, result, **everything)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"entity_id": POWER_ENTITY}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], LINK_FORM
    )
    assert result["reason"] == "reconfigure_successful"
    render_result(tree, link, result)


async def test_site_flow(
    hass: HomeAssistant,
    fake_site: FakeSiteScheduling,
    linked_entry: MockConfigEntry,
    init_site: MockConfigEntry,
    tree: dict[str, Any],
) -> None:
    """Add and change a site, with its errors and aborts."""
    site = ("config_subentries", SUBENTRY_SITE)
    everything = {
        "errors": tuple(SITE["error"]),
        # Sites have no unique id: Home Assistant never says already_configured.
        "aborts": (*SITE["abort"], "reconfigure_successful"),
    }
    # Another entry, not loaded.
    linked_entry.add_to_hass(hass)
    result = await hass.config_entries.subentries.async_init(
        (linked_entry.entry_id, SUBENTRY_SITE), context={"source": SOURCE_USER}
    )
    assert result["reason"] == "entry_not_loaded"
    render_result(tree, site, result)

    result = await hass.config_entries.subentries.async_init(
        (init_site.entry_id, SUBENTRY_SITE), context={"source": SOURCE_USER}
    )
    assert result["step_id"] == "user"
    assert render_result(tree, site, result, **everything)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            "name": "Second site",
            "devices": list(init_site.runtime_data.schedulers),
            "replan_on_prices": False,
        },
    )
    assert result["errors"] == {"devices": "device_in_other_site"}
    render_result(tree, site, result)

    result = await hass.config_entries.subentries.async_init(
        (init_site.entry_id, SUBENTRY_SITE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": SITE_SUBENTRY_ID},
    )
    assert result["step_id"] == "reconfigure"
    render_result(tree, site, result, **everything)
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            "name": "Home site",
            "devices": list(init_site.runtime_data.schedulers),
            "replan_on_prices": False,
        },
    )
    assert result["reason"] == "reconfigure_successful"
    render_result(tree, site, result)
    await hass.async_block_till_done()


async def test_site_flow_needs_two_devices(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
    tree: dict[str, Any],
) -> None:
    """An entry without two controlled devices has no site to add."""
    site = ("config_subentries", SUBENTRY_SITE)
    linked_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(linked_entry.entry_id)
    await hass.async_block_till_done()
    result = await hass.config_entries.subentries.async_init(
        (linked_entry.entry_id, SUBENTRY_SITE), context={"source": SOURCE_USER}
    )
    assert result["reason"] == "too_few_controlled_devices"
    render_result(tree, site, result)


async def test_repair_flow(
    hass: HomeAssistant,
    linked_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    refused: str,  # noqa: F811
    tree: dict[str, Any],
) -> None:
    """The issue's title and its fix flow's confirmation and abort."""
    issue = issue_registry.async_get_issue(DOMAIN, refused)
    assert issue is not None
    assert issue.translation_key is not None
    render(
        tree["issues"][issue.translation_key]["title"],
        issue.translation_placeholders,
        f"issues.{issue.translation_key}.title",
    )
    fix_flow = ("issues", issue.translation_key, "fix_flow")
    result = await start_fix(hass, refused)
    assert result["step_id"] == "confirm"
    shown = render_result(
        tree,
        fix_flow,
        result,
        errors=tuple(REPAIR["error"]),
        aborts=("link_not_found",),
    )
    assert any("No permission" in text for text in shown)

    await hass.config_entries.async_unload(linked_entry.entry_id)
    result = await start_fix(hass, refused)
    assert result["reason"] == "link_not_found"
    render_result(tree, fix_flow, result)


async def test_forecast_link_flow(
    hass: HomeAssistant,
    fake_server: FakeFlexMeasures,
    linked_entry: MockConfigEntry,
    tree: dict[str, Any],
) -> None:
    """Every step of a forecast link (both source kinds), its errors and aborts."""
    link = ("config_subentries", SUBENTRY_FORECAST_LINK)
    everything = {
        "errors": tuple(FORECAST["error"]),
        "aborts": (*FORECAST["abort"], *HA_SUBENTRY_ABORTS),
    }
    start = datetime(2026, 12, 4, tzinfo=UTC)
    hass.states.async_set(
        "sensor.prices",
        "0.1",
        {
            "friendly_name": "Prices",
            "raw_today": [
                {"start": start, "value": 0.1},
                {"start": start + timedelta(hours=1), "value": 0.2},
            ],
        },
    )
    fake_server.responses["POST /api/v3_0/sensors/30/data"] = {"status": "PROCESSED"}
    linked_entry.add_to_hass(hass)
    result = await hass.config_entries.subentries.async_init(
        (linked_entry.entry_id, SUBENTRY_FORECAST_LINK),
        context={"source": SOURCE_USER},
    )
    assert result["reason"] == "entry_not_loaded"
    render_result(tree, link, result)
    assert await hass.config_entries.async_setup(linked_entry.entry_id)
    await hass.async_block_till_done()

    async def walk(*inputs: dict[str, Any]) -> Any:
        """Start a flow, render each step, submit the inputs in turn."""
        result = await hass.config_entries.subentries.async_init(
            (linked_entry.entry_id, SUBENTRY_FORECAST_LINK),
            context={"source": SOURCE_USER},
        )
        for data in inputs:
            render_result(tree, link, result, **everything)
            result = await hass.config_entries.subentries.async_configure(
                result["flow_id"], data
            )
        render_result(tree, link, result)
        return result

    with patched_sources() as sources:
        result = await walk({"source_type": "action"})
        assert result["reason"] == "no_action_sources"
        result = await walk({"source_type": "solar_forecast"})
        assert result["reason"] == "no_solar_forecast_sources"
        sources.entries["solar_forecast"] = [("solar", "Forecast.Solar")]
        sources.series = SourceSeries(
            points=(SourcePoint(start, None, 500.0),), unit="Wh"
        )
        result = await walk(
            {"source_type": "solar_forecast"},
            {"source_entry": "solar"},
            {"source_unit": "Wh"},
            {"sensor": "new"},
            {
                "asset": "10",
                "name": "solar",
                "unit_of_measurement": "EUR/MWh",
                "resolution": {"hours": 1, "minutes": 0, "seconds": 0},
            },
        )
        assert result["errors"] == {"unit_of_measurement": "unit_mismatch"}
        shown = render_result(tree, link, result, **everything)
        assert any("Forecast.Solar" in text for text in shown)

    result = await walk(
        {"source_type": "attribute"},
        {"source_entity": "sensor.prices"},
        {"source_attribute": "raw_today"},
        {"source_unit": "EUR/kWh"},
        {"sensor": "30"},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done(wait_background_tasks=True)
    subentry_id = next(
        key
        for key, subentry in linked_entry.subentries.items()
        if subentry.subentry_type == SUBENTRY_FORECAST_LINK
    )
    result = await hass.config_entries.subentries.async_init(
        (linked_entry.entry_id, SUBENTRY_FORECAST_LINK),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
    )
    assert result["step_id"] == "reconfigure"
    render_result(tree, link, result, **everything)
    for data in (
        {"source_type": "attribute"},
        {"source_entity": "sensor.prices"},
        {"source_attribute": "raw_today"},
        {"source_unit": "EUR/kWh"},
        {"sensor": "30"},
    ):
        result = await hass.config_entries.subentries.async_configure(
            result["flow_id"], data
        )
    assert result["reason"] == "reconfigure_successful"
    render_result(tree, link, result)
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_forecast_issue_and_entity_names(tree: dict[str, Any]) -> None:
    """The refusal issue renders with the placeholders the link gives it."""
    issue = tree["issues"]["forecast_rejected"]
    placeholders = {"link": "Prices", "sensor_id": "30", "error": "wrong unit"}
    for key in ("title", "description"):
        render(issue[key], placeholders, f"issues.forecast_rejected.{key}")
    assert tree["entity"]["sensor"]["last_forecast_posted"]["name"]
