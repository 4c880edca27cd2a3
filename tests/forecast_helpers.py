"""The ``forecasts.sources`` interface as tests see it: its two names patched.

``custom_components/flexmeasures/forecasts/sources.py`` reads the price and
solar integrations (written separately). Tests replace its two functions; when
the module is not there (a branch without it), a module holding just those two
names stands in for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import AsyncMock, MagicMock, patch

from homeassistant.exceptions import HomeAssistantError

from custom_components.flexmeasures.forecasts.model import SourceSeries

SOURCES_MODULE = "custom_components.flexmeasures.forecasts.sources"


class FakeSources:
    """What the patched ``source_entries`` and ``async_read_source`` answer."""

    def __init__(self) -> None:
        """Start with no entries and nothing to read."""
        self.entries: dict[str, list[tuple[str, str]]] = {}
        self.series: SourceSeries | None = None
        self.source_entries = MagicMock(side_effect=self._entries)
        self.async_read_source = AsyncMock(side_effect=self._read)

    def _entries(self, hass: object, source_type: str) -> list[tuple[str, str]]:
        """Return the entries of a source type."""
        return self.entries.get(source_type, [])

    async def _read(
        self, hass: object, source_type: str, entry_id: str
    ) -> SourceSeries:
        """Return the series, or fail like an unreadable source."""
        if self.series is None:
            raise HomeAssistantError("cannot read")
        return self.series


@contextmanager
def patched_sources() -> Iterator[FakeSources]:
    """Patch ``source_entries`` and ``async_read_source`` of the sources module."""
    fake = FakeSources()
    with (
        patch(f"{SOURCES_MODULE}.source_entries", fake.source_entries),
        patch(f"{SOURCES_MODULE}.async_read_source", fake.async_read_source),
    ):
        yield fake
