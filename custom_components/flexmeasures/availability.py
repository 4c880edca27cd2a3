"""One log line when a path loses the FlexMeasures server, one when it is back.

Sensor values follow the same rule through Home Assistant's coordinator; uploads,
scheduling rounds (automatic replans included) and S2 each keep one of these, so
an outage of any length reads as two lines per path, never one per attempt.
"""

from __future__ import annotations

import logging


class ServerAvailability:
    """Remembers whether a path reached the server last time, and says so once."""

    def __init__(self, logger: logging.Logger, path: str, url: str) -> None:
        """Prepare for a path (``"Scheduling home battery"``) to a server URL."""
        self._logger = logger
        self._path = path
        self._url = url
        self.down = False

    def mark_down(self, consequence: str) -> None:
        """Record a failed attempt; log only the first of a series.

        ``consequence`` says what the path does meanwhile, and why it failed.
        """
        if self.down:
            self._logger.debug(
                "%s: FlexMeasures is still unavailable, %s", self._path, consequence
            )
            return
        self.down = True
        self._logger.info(
            "%s: FlexMeasures at %s is unavailable, %s",
            self._path,
            self._url,
            consequence,
        )

    def mark_up(self) -> None:
        """Record a successful attempt; log only the first after an outage."""
        if not self.down:
            return
        self.down = False
        self._logger.info(
            "%s: FlexMeasures at %s is available again", self._path, self._url
        )
