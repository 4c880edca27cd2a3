"""Serve the dashboard card and load it in every frontend."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from homeassistant.components.frontend import DATA_EXTRA_MODULE_URL, add_extra_js_url

# Re-exported implicitly on HA 2026.10 only (defined in http.server there).
from homeassistant.components.http import (  # type: ignore[attr-defined,unused-ignore]
    StaticPathConfig,
)
from homeassistant.core import HomeAssistant
from homeassistant.loader import async_get_integration

from .const import DOMAIN
from .websocket_api import async_register_websocket_commands

CARD_FILENAME: Final = "flexmeasures-schedule-card.js"
CARD_DIRECTORY: Final = Path(__file__).parent / "frontend"
URL_BASE: Final = f"/{DOMAIN}_static"
CARD_URL: Final = f"{URL_BASE}/{CARD_FILENAME}"


async def async_setup_card(hass: HomeAssistant) -> None:
    """Serve the card, load it in the frontend and register its commands."""
    async_register_websocket_commands(hass)
    await hass.http.async_register_static_paths(
        [StaticPathConfig(URL_BASE, str(CARD_DIRECTORY), cache_headers=True)]
    )
    # A frontend-less (headless) installation has no frontend to load it in.
    if DATA_EXTRA_MODULE_URL not in hass.data:
        return
    integration = await async_get_integration(hass, DOMAIN)
    add_extra_js_url(hass, f"{CARD_URL}?v={integration.version}")
