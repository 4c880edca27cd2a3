"""Check the FlexMeasures integration's translation files against strings.json.

Exits non-zero and lists every problem when:

* ``translations/en.json`` differs from ``strings.json``;
* a translation (``nl``, ``de`` and any other ``translations/*.json``) lacks a
  key that ``en`` has, has an extra key, or has a string where ``en`` has a
  section (or the other way around);
* the set of ``{placeholders}`` in a translated string differs from ``en``'s.

Usage: ``python3 scripts/check_translations.py``
"""

from __future__ import annotations

import json
from pathlib import Path
import re
import sys

COMPONENT_DIR = (
    Path(__file__).resolve().parent.parent / "custom_components" / "flexmeasures"
)
STRINGS_FILE = COMPONENT_DIR / "strings.json"
TRANSLATIONS_DIR = COMPONENT_DIR / "translations"
REQUIRED_LANGUAGES = ("nl", "de")
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")

# A flattened translation file: dotted key -> string, or None for a
# non-string leaf (which is itself reported as a problem).
Flat = dict[str, str | None]


def load(path: Path, problems: list[str]) -> object | None:
    """Return the parsed JSON in ``path``, or None after recording a problem."""
    try:
        data: object = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problems.append(f"{path.name}: file is missing")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        problems.append(f"{path.name}: cannot be read: {err}")
    else:
        return data
    return None


def flatten(node: object, prefix: str, name: str, problems: list[str]) -> Flat:
    """Flatten nested sections into dotted keys, recording non-string leaves."""
    if isinstance(node, str):
        return {prefix: node}
    if not isinstance(node, dict):
        problems.append(f"{name}: {prefix or '<root>'} is not a string or section")
        return {prefix: None}
    flat: Flat = {}
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat[path + "."] = None  # marks a section, so section/string swaps show
        flat.update(flatten(value, path, name, problems))
    return flat


def describe(key: str) -> str:
    """Name a flattened key for a message: a section or a string key."""
    return f"section {key[:-1]}" if key.endswith(".") else f"key {key}"


def placeholders(text: str) -> set[str]:
    """Return the names of the ``{placeholders}`` in ``text``."""
    return set(PLACEHOLDER.findall(text))


def compare(reference: Flat, other: Flat, name: str) -> list[str]:
    """Return the key and placeholder differences of ``other`` against ``reference``."""
    problems = [
        f"{name}: missing {describe(key)}"
        for key in sorted(reference.keys() - other.keys())
    ]
    problems += [
        f"{name}: extra {describe(key)}"
        for key in sorted(other.keys() - reference.keys())
    ]
    for key in sorted(reference.keys() & other.keys()):
        ref_text, text = reference[key], other[key]
        if ref_text is None or text is None:
            continue
        expected, found = placeholders(ref_text), placeholders(text)
        if expected != found:
            problems.append(
                f"{name}: {key} has placeholders {sorted(found)},"
                f" en has {sorted(expected)}"
            )
    return problems


def check() -> list[str]:
    """Run all checks and return the problems found (empty when all is well)."""
    problems: list[str] = []
    strings = load(STRINGS_FILE, problems)
    english = load(TRANSLATIONS_DIR / "en.json", problems)
    if strings is None or english is None:
        return problems

    strings_flat = flatten(strings, "", "strings.json", problems)
    english_flat = flatten(english, "", "en.json", problems)
    if english != strings:
        problems.append("en.json: differs from strings.json")
        problems += compare(strings_flat, english_flat, "en.json")
        problems += [
            f"en.json: {key} differs from strings.json"
            for key in sorted(strings_flat.keys() & english_flat.keys())
            if strings_flat[key] != english_flat[key]
        ]

    languages = set(REQUIRED_LANGUAGES)
    languages |= {path.stem for path in TRANSLATIONS_DIR.glob("*.json")}
    languages.discard("en")
    for language in sorted(languages):
        name = f"{language}.json"
        data = load(TRANSLATIONS_DIR / name, problems)
        if data is not None:
            problems += compare(english_flat, flatten(data, "", name, problems), name)
    return problems


def main() -> int:
    """Print the problems found and return the process exit code."""
    problems = check()
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} translation problem(s) found.", file=sys.stderr)
        return 1
    print("Translations OK.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
