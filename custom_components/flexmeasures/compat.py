"""The schema library Home Assistant validates with.

Home Assistant 2026.10 moved from voluptuous to probatio (and aliases ``voluptuous``
to it at run time). Importing probatio where it exists gives type checkers the types
Home Assistant's APIs declare; older releases still get voluptuous.
"""

from __future__ import annotations

try:
    import probatio as vol
except ImportError:  # Home Assistant before 2026.10
    import voluptuous as vol  # type: ignore[no-redef]

__all__ = ["vol"]
