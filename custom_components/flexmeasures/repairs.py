"""Repair flows for FlexMeasures."""

from __future__ import annotations

from homeassistant.components.repairs import RepairsFlow
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant

from .compat import vol
from .data import FlexMeasuresConfigEntry

# Repair flow steps return RepairsFlowResult on newer Home Assistant, FlowResult
# before. Both are the same TypedDict at run time.
try:
    from homeassistant.components.repairs import (  # type: ignore[attr-defined,unused-ignore]
        RepairsFlowResult,
    )
except ImportError:  # pragma: no cover - older Home Assistant
    from homeassistant.data_entry_flow import (  # type: ignore[assignment,no-redef,unused-ignore]
        FlowResult as RepairsFlowResult,
    )


class DiscardPendingMeasurementsFlow(RepairsFlow):
    """Offer to throw away the measurements FlexMeasures keeps refusing."""

    def __init__(self, entry_id: str, subentry_id: str) -> None:
        """Remember which link the issue is about."""
        self._entry_id = entry_id
        self._subentry_id = subentry_id

    async def async_step_init(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Start with the confirmation."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Explain the fix; discard the pending data when confirmed."""
        entry: FlexMeasuresConfigEntry | None = (
            self.hass.config_entries.async_get_entry(self._entry_id)
        )
        if (
            entry is None
            or entry.state is not ConfigEntryState.LOADED
            or self._subentry_id not in entry.runtime_data.uploader.links
        ):
            return self.async_abort(reason="link_not_found")
        link = entry.runtime_data.uploader.links[self._subentry_id]
        if user_input is not None:
            entry.runtime_data.uploader.async_discard(self._subentry_id)
            return self.async_create_entry(data={})
        return self.async_show_form(
            step_id="confirm",
            data_schema=vol.Schema({}),
            description_placeholders={
                "link": link.config.title,
                "sensor_id": str(link.config.sensor_id),
                "count": str(len(link.pending)),
                "error": link.rejected or "",
            },
        )


async def async_create_fix_flow(
    hass: HomeAssistant,
    issue_id: str,
    data: dict[str, str | int | float | None] | None,
) -> RepairsFlow:
    """Create the flow that fixes an issue."""
    data = data or {}
    return DiscardPendingMeasurementsFlow(
        str(data.get("entry_id")), str(data.get("subentry_id"))
    )
