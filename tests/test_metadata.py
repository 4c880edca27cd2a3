"""Tests for the integration's metadata: translations, icons, actions, quality scale."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from homeassistant.util.yaml import load_yaml
import pytest

from custom_components.flexmeasures import binary_sensor, sensor, site_entities
from custom_components.flexmeasures.s2 import entities as s2_entities

COMPONENT = Path(__file__).parent.parent / "custom_components" / "flexmeasures"
SCRIPTS = Path(__file__).parent.parent / "scripts"

# Every rule of the Integration Quality Scale, bronze through platinum (the
# checklist as of Home Assistant 2026.11, with docs-triggers and docs-conditions).
QUALITY_SCALE_RULES = {
    # Bronze
    "action-setup",
    "appropriate-polling",
    "brands",
    "common-modules",
    "config-flow-test-coverage",
    "config-flow",
    "dependency-transparency",
    "docs-actions",
    "docs-conditions",
    "docs-high-level-description",
    "docs-installation-instructions",
    "docs-removal-instructions",
    "docs-triggers",
    "entity-event-setup",
    "entity-unique-id",
    "has-entity-name",
    "runtime-data",
    "test-before-configure",
    "test-before-setup",
    "unique-config-entry",
    # Silver
    "action-exceptions",
    "config-entry-unloading",
    "docs-configuration-parameters",
    "docs-installation-parameters",
    "entity-unavailable",
    "integration-owner",
    "log-when-unavailable",
    "parallel-updates",
    "reauthentication-flow",
    "test-coverage",
    # Gold
    "devices",
    "diagnostics",
    "discovery-update-info",
    "discovery",
    "docs-data-update",
    "docs-examples",
    "docs-known-limitations",
    "docs-supported-devices",
    "docs-supported-functions",
    "docs-troubleshooting",
    "docs-use-cases",
    "dynamic-devices",
    "entity-category",
    "entity-device-class",
    "entity-disabled-by-default",
    "entity-translations",
    "exception-translations",
    "icon-translations",
    "reconfiguration-flow",
    "repair-issues",
    "stale-devices",
    # Platinum
    "async-dependency",
    "inject-websession",
    "strict-typing",
}


def _json(name: str) -> dict[str, Any]:
    """Return one of the integration's JSON files."""
    data: dict[str, Any] = json.loads((COMPONENT / name).read_text(encoding="utf-8"))
    return data


def test_translations_complete() -> None:
    """English equals strings.json; nl and de have every key and placeholder."""
    spec = importlib.util.spec_from_file_location(
        "check_translations", SCRIPTS / "check_translations.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.check() == []
    languages = {path.stem for path in (COMPONENT / "translations").glob("*.json")}
    assert languages == {"en", "nl", "de"}


@pytest.mark.parametrize(
    ("platform", "descriptions"),
    [
        (
            "sensor",
            (
                *sensor.DESCRIPTIONS,
                sensor.MEASUREMENT_DESCRIPTION,
                *sensor.SCHEDULE_SENSORS,
                *sensor.UPLOADER_SENSORS,
                sensor.FORECAST_LINK_SENSOR,
                *s2_entities.SENSORS,
                *site_entities.SITE_SENSORS,
            ),
        ),
        (
            "binary_sensor",
            (*binary_sensor.SCHEDULE_BINARY_SENSORS, *s2_entities.BINARY_SENSORS),
        ),
    ],
)
def test_entity_icons_and_names(platform: str, descriptions: tuple[Any, ...]) -> None:
    """Every entity has a translated name and an icon or a device class."""
    names = _json("strings.json")["entity"][platform]
    icons = _json("icons.json")["entity"][platform]
    keys = {description.translation_key for description in descriptions}
    assert keys == set(names)
    assert set(icons) <= keys
    for description in descriptions:
        assert description.translation_key in icons or description.device_class, (
            description.key
        )


def test_calendar_icon_and_name() -> None:
    """The plan calendar has a translated name and an icon."""
    assert set(_json("strings.json")["entity"]["calendar"]) == {"plan"}
    assert set(_json("icons.json")["entity"]["calendar"]) == {"plan"}


def test_actions_described() -> None:
    """Every action has an icon, a name, a description and translated fields."""
    services = load_yaml(str(COMPONENT / "services.yaml"))
    assert isinstance(services, dict)
    strings = _json("strings.json")["services"]
    assert set(services) == set(strings) == set(_json("icons.json")["services"])
    for action, spec in services.items():
        assert strings[action]["name"]
        assert strings[action]["description"]
        fields = strings[action]["fields"]
        assert set(spec["fields"]) == set(fields), action
        for field in fields.values():
            assert field["name"]
            assert field["description"]


def test_quality_scale_complete() -> None:
    """Every quality-scale rule is listed; one not done says why."""
    rules = load_yaml(str(COMPONENT / "quality_scale.yaml"))
    assert isinstance(rules, dict)
    assert set(rules["rules"]) == QUALITY_SCALE_RULES
    for name, rule in rules["rules"].items():
        status = rule if isinstance(rule, str) else rule["status"]
        assert status in {"done", "exempt", "todo"}, name
        if status != "done":
            assert rule["comment"], name
