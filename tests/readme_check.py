"""What the README names: entity ids, actions and their fields, response keys.

The live test ``tests/live/test_readme.py`` checks each of them against a
running instance, so the README cannot name an entity id, an action field or a
response key that does not exist.

Conventions the extraction relies on (all of them in the README today):

- an entity id is ``sensor.x``, ``binary_sensor.x`` or ``calendar.x`` (the
  reader's own entities among them, such as a battery's measured power: the
  live test knows which those are);
- an action block is a fenced YAML block with ``action: flexmeasures.<name>``;
  its fields are the keys right under ``data:`` and the names listed in a
  ``# optional: a (default ...), b, c / d`` comment under it;
- a response is written inline as ``{"key": ...}`` after the words "The
  response" or "returns", and belongs to the action named last before them
  (``flexmeasures.<name>``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import re
from typing import Final

README: Final = Path(__file__).parent.parent / "README.md"

_ENTITY_ID: Final = re.compile(r"\b(?:sensor|binary_sensor|calendar)\.[a-z0-9_]+\b")
_FENCE: Final = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_ACTION: Final = re.compile(r"^\s*action:\s*flexmeasures\.(\w+)\s*$", re.MULTILINE)
_KEY: Final = re.compile(r"^(\s*)([a-z_]+):")
_PARENTHESES: Final = re.compile(r"\([^()]*\)")
# "The response (and `flexmeasures.get_schedule`, ...) looks like `{...}`":
# backticked names on the way are skipped, the first backticked object is it.
_RESPONSE: Final = re.compile(
    r"(?:The response|returns)(?:[^`]|`[^`{]*`)*?`(\{.*?\})`", re.DOTALL
)
_JSON_KEY: Final = re.compile(r'"([a-z_]+)":')
_MENTION: Final = re.compile(r"flexmeasures\.([a-z_0-9]+)")


@dataclass(kw_only=True)
class ReadmeNames:
    """Everything the README names that a running instance must have."""

    entity_ids: set[str] = field(default_factory=set)
    action_fields: dict[str, set[str]] = field(default_factory=dict)
    response_keys: dict[str, set[str]] = field(default_factory=dict)


def _optional_fields(comment: str) -> set[str]:
    """Return the field names of an ``optional: a (...), b / c`` comment."""
    listed = _PARENTHESES.sub("", comment.split("optional:", 1)[1])
    return {name.strip() for name in re.split(r"[,/]", listed) if name.strip()}


def _action_fields(block: str) -> tuple[str, set[str]] | None:
    """Return an action block's action and fields, or None if it has none."""
    if (action := _ACTION.search(block)) is None:
        return None
    fields: set[str] = set()
    data_indent: int | None = None
    comment = ""
    for line in block.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            # A comment continues on the next comment lines of the same list.
            comment = f"{comment} {stripped.lstrip('#')}" if comment else stripped
            continue
        if comment and "optional:" in comment:
            fields |= _optional_fields(comment)
        comment = ""
        if (key := _KEY.match(line)) is None:
            continue
        indent = len(key.group(1))
        if key.group(2) == "data":
            data_indent = indent
        elif data_indent is not None and indent <= data_indent:
            data_indent = None
        elif data_indent is not None and indent == data_indent + 2:
            fields.add(key.group(2))
    if comment and "optional:" in comment:
        fields |= _optional_fields(comment)
    return action.group(1), fields


def readme_names(text: str | None = None) -> ReadmeNames:
    """Return what the README (or the given text) names."""
    if text is None:
        text = README.read_text(encoding="utf-8")
    names = ReadmeNames()
    names.entity_ids.update(_ENTITY_ID.findall(text))
    for match in _FENCE.finditer(text):
        if (found := _action_fields(match.group(2))) is not None:
            action, fields = found
            names.action_fields.setdefault(action, set()).update(fields)
    for match in _RESPONSE.finditer(text):
        (*_, action) = _MENTION.findall(text, 0, match.start())
        names.response_keys.setdefault(action, set()).update(
            _JSON_KEY.findall(match.group(1))
        )
    return names
