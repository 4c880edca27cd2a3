"""Render flow texts from strings.json and translations the way the frontend does.

The frontend formats every flow text with intl-messageformat: a ``{name}`` that
the flow does not supply is a translation error, ``<word>`` is parsed as a tag
(INVALID_TAG or an unformatted tag), and an apostrophe before ``{``, ``}`` or
``<`` starts a quoted literal. A missing key shows the raw key (or nothing).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
import json
from pathlib import Path
import re
from typing import Any

from homeassistant.data_entry_flow import FlowResultType, section

COMPONENT = Path(__file__).parent.parent / "custom_components" / "flexmeasures"
# strings.json and every translation file the frontend may load.
SOURCES: tuple[str, ...] = ("strings", "en", "nl", "de")

PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
TAG = re.compile(r"<\s*/?\s*[A-Za-z][^<>]*>")
QUOTE = re.compile(r"'[{}<]")


def translations(source: str) -> dict[str, Any]:
    """Return strings.json (``"strings"``) or a translation file."""
    path = (
        COMPONENT / "strings.json"
        if source == "strings"
        else COMPONENT / "translations" / f"{source}.json"
    )
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def lookup(tree: Mapping[str, Any], *keys: str) -> str:
    """Return the text at ``keys``; fail naming the key when it is missing."""
    node: Any = tree
    for key in keys:
        assert isinstance(node, Mapping), f"not a section: {'.'.join(keys)}"
        assert key in node, f"missing translation {'.'.join(keys)}"
        node = node[key]
    assert isinstance(node, str), f"not a text: {'.'.join(keys)}"
    assert node.strip(), f"empty text {'.'.join(keys)}"
    return node


def render(text: str, placeholders: Mapping[str, Any] | None, where: str) -> str:
    """Format ``text`` like the frontend; fail on what the frontend rejects."""
    given = dict(placeholders or {})
    assert not TAG.search(text), f"{where}: HTML-like tag in {text!r}"
    assert not QUOTE.search(text), f"{where}: quoting apostrophe in {text!r}"
    for name in PLACEHOLDER.findall(text):
        assert name in given, f"{where}: placeholder {{{name}}} not supplied"
        assert given[name] is not None, f"{where}: placeholder {{{name}}} is None"
    return PLACEHOLDER.sub(lambda match: str(given[match.group(1)]), text)


def _fields(schema: Any) -> Iterator[tuple[str, Any]]:
    """Yield (name, validator) for each field of a form's schema."""
    for key, value in (schema.schema if schema is not None else {}).items():
        yield str(key), value


def render_result(
    tree: Mapping[str, Any],
    section_keys: tuple[str, ...],
    result: Mapping[str, Any],
    *,
    errors: tuple[str, ...] = (),
    aborts: tuple[str, ...] = (),
) -> list[str]:
    """Render everything a flow result shows, plus the listed errors and aborts.

    ``section_keys`` locate the flow in the translations: ``("config",)``,
    ``("options",)``, ``("config_subentries", TYPE)`` or
    ``("issues", KEY, "fix_flow")``. ``errors`` and ``aborts`` are further
    reasons the flow can give; they are rendered with this result's
    placeholders, as the frontend would.
    """
    placeholders = result.get("description_placeholders")
    shown: list[str] = []

    def show(*keys: str) -> None:
        where = ".".join((*section_keys, *keys))
        shown.append(render(lookup(tree, *section_keys, *keys), placeholders, where))

    if result["type"] is FlowResultType.FORM:
        step = ("step", result["step_id"])
        show(*step, "title")
        show(*step, "description")
        for name, validator in _fields(result.get("data_schema")):
            if isinstance(validator, section):
                show(*step, "sections", name, "name")
                show(*step, "sections", name, "description")
                for inner, _ in _fields(validator.schema):
                    show(*step, "sections", name, "data", inner)
                    show(*step, "sections", name, "data_description", inner)
            else:
                show(*step, "data", name)
                show(*step, "data_description", name)
            shown.extend(_select_options(tree, validator))
        for code in {*(result.get("errors") or {}).values(), *errors}:
            show("error", code)
        for code in aborts:
            show("abort", code)
    elif result["type"] is FlowResultType.ABORT:
        for code in {result["reason"], *aborts}:
            show("abort", code)
    return shown


def _select_options(tree: Mapping[str, Any], validator: Any) -> list[str]:
    """Render the translated options of a select selector with a translation key."""
    config = getattr(validator, "config", None)
    if not isinstance(config, Mapping) or not config.get("translation_key"):
        return []
    texts = []
    for option in config["options"]:
        value = option if isinstance(option, str) else option["value"]
        label = value if isinstance(option, str) else option["label"]
        # Options labelled by their own value need a translation; others
        # (sensor names) fall back to their label.
        if label == value:
            keys = ("selector", config["translation_key"], "options", value)
            texts.append(render(lookup(tree, *keys), None, ".".join(keys)))
    return texts


def reasons(module: Path, class_name: str, *functions: str) -> dict[str, set[str]]:
    """Return the error codes and abort reasons a flow class uses in its source.

    Errors are string constants assigned into an ``errors[...]`` mapping; aborts
    are ``reason=`` string arguments. The class's base classes in the module are
    read too. ``functions`` are module-level helpers whose errors belong to this
    flow, or module-level tables (dicts) of them.
    """
    tree = ast.parse(module.read_text(encoding="utf-8"))
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    names = [class_name]
    for name in names:
        if name in classes:
            names.extend(
                base.id
                for base in classes[name].bases
                if isinstance(base, ast.Name) and base.id in classes
            )
    found: dict[str, set[str]] = {"error": set(), "abort": set()}
    for table in tree.body:
        if (
            isinstance(table, ast.AnnAssign)
            and isinstance(table.target, ast.Name)
            and table.target.id in functions
            and isinstance(table.value, ast.Dict)
        ):
            found["error"].update(
                value.value
                for value in table.value.values
                if isinstance(value, ast.Constant) and isinstance(value.value, str)
            )
    nodes: list[ast.AST] = [
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name in (*names, *functions)
    ]
    assert any(getattr(node, "name", None) == class_name for node in nodes), class_name
    for node in nodes:
        for item in ast.walk(node):
            if (
                isinstance(item, ast.Assign)
                and isinstance(item.value, ast.Constant)
                and isinstance(item.value.value, str)
                and any(
                    isinstance(target, ast.Subscript)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "errors"
                    for target in item.targets
                )
            ):
                found["error"].add(item.value.value)
            elif isinstance(item, ast.keyword) and item.arg == "reason":
                assert isinstance(item.value, ast.Constant), ast.unparse(item)
                found["abort"].add(str(item.value.value))
    return found
