"""Read pins for scripts/setup from pyproject.toml and downloaded wheels.

Usage (host Python >= 3.11, standard library only):
    pins.py group PYPROJECT GROUP...   requirements of [dependency-groups]
    pins.py requires WHEEL             the wheel's unconditional Requires-Dist
    pins.py ha-constraints WHEEL OUT   homeassistant/package_constraints.txt
    pins.py mypy-files PYPROJECT       [tool.mypy] files that hold Python code
    pins.py ha-requirements COMPONENTS DOMAIN...
                                       requirements of installed HA integrations
"""

from __future__ import annotations

from email.parser import Parser
import json
from pathlib import Path
import re
import sys
import tomllib
import zipfile


def _group(pyproject: Path, names: list[str]) -> list[str]:
    """Return the requirements of the named dependency groups."""
    groups = tomllib.loads(pyproject.read_text())["dependency-groups"]
    return [req for name in names for req in groups[name]]


def _requires(wheel: Path) -> list[str]:
    """Return Requires-Dist lines without an environment marker."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(zf.read(name).decode())
    return [req for req in meta.get_all("Requires-Dist") or [] if ";" not in req]


def _ha_constraints(wheel: Path, out: Path) -> None:
    """Extract Home Assistant's own package constraints from its wheel."""
    with zipfile.ZipFile(wheel) as zf:
        out.write_bytes(zf.read("homeassistant/package_constraints.txt"))


def _ha_requirements(components: Path, domains: list[str]) -> list[str]:
    """Return the requirements the manifests of HA's own integrations pin."""
    return [
        req
        for domain in domains
        for req in json.loads((components / domain / "manifest.json").read_text())[
            "requirements"
        ]
    ]


def _mypy_files(pyproject: Path) -> list[str]:
    """Return the configured mypy paths that exist and hold .py files.

    mypy refuses a configured folder without Python files (an empty
    ``benchmarks/``, say), so scripts/test passes only the populated ones.
    """
    files = tomllib.loads(pyproject.read_text())["tool"]["mypy"]["files"]
    root = pyproject.parent
    return [f for f in files if (root / f).is_file() or any((root / f).rglob("*.py"))]


def main(argv: list[str]) -> int:
    """Dispatch the sub-command."""
    match argv:
        case ["group", pyproject, *names] if names:
            lines = _group(Path(pyproject), names)
        case ["requires", wheel]:
            lines = _requires(Path(wheel))
        case ["ha-requirements", components, *domains] if domains:
            lines = _ha_requirements(Path(components), domains)
        case ["mypy-files", pyproject]:
            lines = _mypy_files(Path(pyproject))
        case ["ha-constraints", wheel, out]:
            _ha_constraints(Path(wheel), Path(out))
            lines = []
        case _:
            print(__doc__, file=sys.stderr)
            return 2
    for line in lines:
        print(re.sub(r"\s+", "", line))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
