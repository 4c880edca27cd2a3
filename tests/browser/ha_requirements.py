"""Print the requirements of the integrations a bare `hass` sets up.

Run with the Python of a venv that has `homeassistant` installed: prints, one a
line, the requirements of HA's default integrations, of `frontend` and
`recorder` (what the test's configuration.yaml sets up), and of their
dependencies, so that `hass --skip-pip` starts without import errors.
"""

from __future__ import annotations

import json
from pathlib import Path
import sys

from homeassistant import bootstrap
import homeassistant.components

COMPONENTS = Path(homeassistant.components.__path__[0])


def closure(domains: set[str]) -> set[str]:
    """Return the domains plus everything they depend on."""
    seen: set[str] = set()
    todo = list(domains)
    while todo:
        domain = todo.pop()
        if domain in seen or not (COMPONENTS / domain / "manifest.json").exists():
            continue
        seen.add(domain)
        manifest = json.loads((COMPONENTS / domain / "manifest.json").read_text())
        todo.extend(manifest.get("dependencies", []))
        todo.extend(manifest.get("after_dependencies", []))
    return seen


def main() -> None:
    """Print the requirement lines."""
    domains = closure({*bootstrap.DEFAULT_INTEGRATIONS, "frontend", "recorder"})
    requirements: set[str] = set()
    for domain in domains:
        manifest = json.loads((COMPONENTS / domain / "manifest.json").read_text())
        requirements.update(manifest.get("requirements", []))
    sys.stdout.write("".join(f"{line}\n" for line in sorted(requirements)))


if __name__ == "__main__":
    main()
