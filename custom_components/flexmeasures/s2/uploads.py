"""A connection's posts to FlexMeasures, one at a time, from a bounded queue."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Final

from ..api import FlexMeasuresApi, FlexMeasuresConnectionError, FlexMeasuresError
from ..availability import ServerAvailability
from ..const import S2_LOGGER
from .model import S2SensorTarget, TaskFactory

# Uploads waiting per connection; more are dropped (with a warning), never queued.
S2_UPLOAD_QUEUE_SIZE: Final = 32


class S2Uploads:
    """Posts a connection's data to FlexMeasures one at a time, from a bounded queue."""

    def __init__(self, api: FlexMeasuresApi, create_task: TaskFactory) -> None:
        """Prepare an idle uploader."""
        self._api = api
        self._create_task = create_task
        # Shared by the connection's uploads and plans: one line down, one back.
        self.availability = ServerAvailability(S2_LOGGER, "S2", api.url)
        self._queue: asyncio.Queue[tuple[S2SensorTarget, datetime, list[float], str]]
        self._queue = asyncio.Queue(maxsize=S2_UPLOAD_QUEUE_SIZE)
        self._task: asyncio.Task[None] | None = None

    def submit(
        self, target: S2SensorTarget, start: datetime, values: list[float], unit: str
    ) -> None:
        """Queue equidistant values for the target sensor; drop them when full."""
        try:
            self._queue.put_nowait((target, start, values, unit))
        except asyncio.QueueFull:
            S2_LOGGER.warning(
                "FlexMeasures is not keeping up; dropped S2 data for sensor %s",
                target.id,
            )
            return
        if self._task is None or self._task.done():
            self._task = self._create_task(self._run(), "flexmeasures S2 uploads")

    async def _run(self) -> None:
        """Post until the queue is empty."""
        while not self._queue.empty():
            target, start, values, unit = self._queue.get_nowait()
            try:
                await self._api.async_post_sensor_data(
                    target.id,
                    start=start,
                    resolution=target.resolution,
                    values=values,
                    unit=unit,
                )
            except FlexMeasuresConnectionError as err:
                self.availability.mark_down(
                    f"S2 data for sensor {target.id} is not kept: {err}"
                )
            except FlexMeasuresError as err:
                S2_LOGGER.warning(
                    "Could not post S2 data to sensor %s: %s", target.id, err
                )
            else:
                self.availability.mark_up()

    def cancel(self) -> None:
        """Stop posting."""
        if self._task is not None:
            self._task.cancel()
