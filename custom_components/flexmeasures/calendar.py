"""Calendar of the FlexMeasures integration: planned (dis)charging windows."""

from __future__ import annotations

from datetime import datetime

from homeassistant.components.calendar import (
    CalendarEntity,
    CalendarEntityDescription,
    CalendarEvent,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .controlled_device import FlexMeasuresControlledDeviceEntity
from .data import FlexMeasuresConfigEntry
from .scheduling import Window, WindowKind

PARALLEL_UPDATES = 0

# Event summaries stay English: automations match on them.
SUMMARIES: dict[WindowKind, str] = {
    WindowKind.CHARGING: "Charging",
    WindowKind.DISCHARGING: "Discharging",
}

PLAN_CALENDAR = CalendarEntityDescription(key="plan", translation_key="plan")


async def async_setup_entry(
    hass: HomeAssistant,
    entry: FlexMeasuresConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Set up a plan calendar per controlled device."""
    for subentry_id, scheduler in entry.runtime_data.schedulers.items():
        async_add_entities(
            [FlexMeasuresPlanCalendar(scheduler=scheduler, description=PLAN_CALENDAR)],
            config_subentry_id=subentry_id,
        )


def _event(window: Window) -> CalendarEvent:
    """Turn a merged window into a calendar event."""
    return CalendarEvent(
        start=window.start,
        end=window.end,
        summary=SUMMARIES[window.kind],
        description=f"{window.energy_kwh:.2f} kWh, up to {window.peak_kw:.2f} kW",
        uid=f"{window.kind.value}_{window.start.isoformat()}",
    )


class FlexMeasuresPlanCalendar(FlexMeasuresControlledDeviceEntity, CalendarEntity):
    """Planned charging and discharging windows, contiguous slots merged."""

    def _windows(self) -> list[Window]:
        """Return the windows of the current schedule."""
        schedule = self.coordinator.schedule
        return schedule.windows if schedule else []

    @property
    def event(self) -> CalendarEvent | None:
        """Return the ongoing or next window."""
        now = dt_util.utcnow()
        return next(
            (_event(window) for window in self._windows() if window.end > now), None
        )

    async def async_get_events(
        self, hass: HomeAssistant, start_date: datetime, end_date: datetime
    ) -> list[CalendarEvent]:
        """Return the windows overlapping the requested range."""
        return [
            _event(window)
            for window in self._windows()
            if window.start < end_date and window.end > start_date
        ]
