"""Where a controlled device's plan and job in flight are kept across restarts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store

from ..const import DOMAIN

STORAGE_VERSION: Final = 1
# 1.2 adds the job in flight ("pending_job"), so a restart can pick it up.
STORAGE_MINOR_VERSION: Final = 2
STORE_DELAY: Final = 1.0
# A job still in flight at a restart is picked up if it was queued less than this
# long ago; an older one was planned from a state of charge too old to trust, so
# it is replaced by a fresh job (as is a job the server lost or could not finish).
PENDING_JOB_MAX_AGE: Final = timedelta(hours=1)


class ScheduleStore(Store[dict[str, Any]]):
    """A controlled device's stored schedule, migrated from older versions."""

    def __init__(self, hass: HomeAssistant, subentry_id: str) -> None:
        """Open the store of one controlled device."""
        super().__init__(
            hass,
            STORAGE_VERSION,
            f"{DOMAIN}.schedule.{subentry_id}",
            minor_version=STORAGE_MINOR_VERSION,
        )

    async def _async_migrate_func(
        self,
        old_major_version: int,
        old_minor_version: int,
        old_data: dict[str, Any],
    ) -> dict[str, Any]:
        """Bring a store from an older version to the current shape."""
        if old_major_version != STORAGE_VERSION:
            raise NotImplementedError
        data = dict(old_data)
        if old_minor_version < 2:
            data.setdefault("pending_job", None)
        return data
