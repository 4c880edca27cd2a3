"""Tests for serving the dashboard card."""

from __future__ import annotations

from http import HTTPStatus
import json

from homeassistant.components.frontend import DATA_EXTRA_MODULE_URL, UrlManager
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.flexmeasures.card import CARD_DIRECTORY, CARD_FILENAME, CARD_URL
from custom_components.flexmeasures.const import DOMAIN


async def test_card_is_served(
    hass: HomeAssistant, hass_client: ClientSessionGenerator
) -> None:
    """The card's module is served from the integration's static path."""
    assert await async_setup_component(hass, DOMAIN, {})
    client = await hass_client()

    response = await client.get(CARD_URL)

    assert response.status == HTTPStatus.OK
    assert response.content_type in {"application/javascript", "text/javascript"}
    body = await response.text()
    assert body == (CARD_DIRECTORY / CARD_FILENAME).read_text(encoding="utf-8")
    assert 'customElements.define("flexmeasures-schedule-card"' in body


async def test_card_loaded_in_frontend(hass: HomeAssistant) -> None:
    """With a frontend, every page loads the card, versioned to bust caches."""
    urls = UrlManager(lambda *_: None, [])
    hass.data[DATA_EXTRA_MODULE_URL] = urls

    assert await async_setup_component(hass, DOMAIN, {})

    manifest = json.loads((CARD_DIRECTORY.parent / "manifest.json").read_text())
    assert urls.urls == frozenset({f"{CARD_URL}?v={manifest['version']}"})


async def test_card_without_frontend(hass: HomeAssistant) -> None:
    """A headless installation sets up without loading the card anywhere."""
    assert await async_setup_component(hass, DOMAIN, {})

    assert DATA_EXTRA_MODULE_URL not in hass.data
    assert DOMAIN in hass.config.components
