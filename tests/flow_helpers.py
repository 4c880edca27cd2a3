"""Driving subentry flows in tests: open one, submit a step, read a form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    ConfigEntry,
    SubentryFlowContext,
)
from homeassistant.core import HomeAssistant


async def start_flow(
    hass: HomeAssistant,
    entry: ConfigEntry,
    subentry_type: str,
    subentry_id: str | None = None,
) -> Any:
    """Open a flow that adds a subentry, or changes the one of ``subentry_id``."""
    context = (
        SubentryFlowContext(source=SOURCE_USER)
        if subentry_id is None
        else SubentryFlowContext(source=SOURCE_RECONFIGURE, subentry_id=subentry_id)
    )
    return await hass.config_entries.subentries.async_init(
        (entry.entry_id, subentry_type), context=context
    )


async def configure(hass: HomeAssistant, flow_id: str, data: dict[str, Any]) -> Any:
    """Submit a step of a subentry flow."""
    return await hass.config_entries.subentries.async_configure(flow_id, data)


def select_options(schema: Any, field: str) -> list[Any]:
    """Return the options (texts, or values with labels) of a select field."""
    for key, selector in schema.schema.items():
        if key == field:
            return list(selector.config["options"])
    raise AssertionError(field)


def select_values(result: Any, field: str) -> list[str]:
    """Return the values a select field of a shown form offers."""
    return [
        option if isinstance(option, str) else option["value"]
        for option in select_options(result["data_schema"], field)
    ]


def suggested(schema: Any) -> dict[str, Any]:
    """Return the values a form's schema suggests, by field."""
    return {
        str(key): key.description["suggested_value"]
        for key in schema.schema
        if key.description and "suggested_value" in key.description
    }


def changed(form: Mapping[str, Any], change: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``form`` with ``change`` applied; a None value leaves a field out."""
    return {
        key: value for key, value in {**form, **change}.items() if value is not None
    }
