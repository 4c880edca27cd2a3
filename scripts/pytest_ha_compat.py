"""Pytest plugin: run phcc against a Home Assistant newer than the one it pins.

scripts/test loads it on every target with ``-p pytest_ha_compat`` (scripts/ on
PYTHONPATH). pytest imports ``-p`` plugins before the entry-point plugins, which
is what shim 1 needs. On a matched HA/phcc pair both shims change nothing.

1. HA >= 2026.11 aliases ``httpx`` to ``httpx2`` (and ``voluptuous`` to
   ``probatio``) in ``homeassistant/__init__.py``, which must therefore run
   before anything imports httpx. phcc's plugin imports respx, and so httpx,
   first. So import homeassistant here, and when HA brought httpx2 in, keep
   respx's own pytest plugin out (like ``-p no:respx``; HA core does the same).
2. HA 2026.11 no longer re-exports ``_clear_logger_overwrites`` from
   ``homeassistant.components.logger`` (it lives in its ``helpers`` module) but
   phcc imports it from the package: put the name back on first import.
"""

from __future__ import annotations

from collections.abc import Sequence
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Any

import homeassistant  # noqa: F401  # shim 1: must come before httpx

HA_ALIASES_HTTPX = "httpx2" in sys.modules
_LOGGER_PACKAGE = "homeassistant.components.logger"
_LOGGER_NAME = "_clear_logger_overwrites"


def pytest_addhooks(pluginmanager: Any) -> None:
    """Block respx's plugin when HA aliases httpx (runs at registration)."""
    if HA_ALIASES_HTTPX:
        pluginmanager.set_blocked("respx")


class _LoggerReexport(importlib.abc.MetaPathFinder):
    """Re-add the logger helper to its package when HA dropped it (shim 2)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        """Wrap the real loader of the logger package; ignore other modules."""
        if fullname != _LOGGER_PACKAGE:
            return None
        sys.meta_path.remove(self)  # one-shot: find the real spec, then step aside
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        real_exec = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            real_exec(module)
            if not hasattr(module, _LOGGER_NAME):
                helpers = importlib.import_module(f"{_LOGGER_PACKAGE}.helpers")
                if hasattr(helpers, _LOGGER_NAME):  # older HA has neither
                    setattr(module, _LOGGER_NAME, getattr(helpers, _LOGGER_NAME))

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if _LOGGER_PACKAGE not in sys.modules:
    sys.meta_path.insert(0, _LoggerReexport())
