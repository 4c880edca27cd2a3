"""One resource manager's conversation: reports posted or planned, the plan followed.

What the resource manager reports goes to FlexMeasures sensors or to the device's
planner, and the device's plan becomes FRBC instructions. The library's CEM
(``api.S2Cem``) parses, acknowledges and routes the messages; this module decides
what each one means.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
import json
import math
from typing import Any, Final
from uuid import UUID

from homeassistant.util import dt as dt_util
from s2python.common import (
    CommodityQuantity,
    ReceptionStatus,
    ReceptionStatusValues,
    RevokableObjects,
    RevokeObject,
)
from s2python.frbc import FRBCInstruction

from ..api import (
    FlexMeasuresApi,
    S2Cem,
    s2_fill_level_range,
    s2_operation_mode,
    s2_unique_id,
    s2_usage_per_hour,
)
from ..const import S2_LOGGER
from .model import (
    Executor,
    S2CemSettings,
    S2PlanSlot,
    S2ResourceManagerInfo,
    S2Storage,
    StorageListener,
    TaskFactory,
)
from .uploads import S2Uploads

# The subject of a reception status for a frame that carried no usable message id.
S2_NIL_ID: Final = "00000000-0000-0000-0000-000000000000"
# Power is averaged over the power sensor's resolution, or this when it has none.
S2_DEFAULT_RESOLUTION: Final = timedelta(minutes=5)
# A usage forecast is posted at this resolution when its sensor has none.
_USAGE_FORECAST_RESOLUTION: Final = timedelta(minutes=15)

_S2_PHASES: Final = (
    CommodityQuantity.ELECTRIC_POWER_L1,
    CommodityQuantity.ELECTRIC_POWER_L2,
    CommodityQuantity.ELECTRIC_POWER_L3,
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _floor_time(moment: datetime, resolution: timedelta) -> datetime:
    """Return the start of the ``resolution`` slot that holds ``moment``."""
    return moment - (moment - _EPOCH) % resolution


def _electric_power(values: Sequence[Any]) -> float | None:
    """Return the total electric power (W) of a PowerMeasurement's values."""
    watts = {value.commodity_quantity: float(value.value) for value in values}
    symmetric = watts.get(CommodityQuantity.ELECTRIC_POWER_3_PHASE_SYMMETRIC)
    if symmetric is not None:
        return symmetric
    phases = [watts[phase] for phase in _S2_PHASES if phase in watts]
    return sum(phases) if phases else None


def _power_limits_kw(description: Any) -> tuple[float | None, float | None]:
    """Return the largest charging and discharging power (kW) the description offers.

    Charging is positive in S2 as in the plan; a side no power range reaches is None.
    """
    powers = [
        bound
        for actuator in description.actuators
        for mode in actuator.operation_modes
        for element in mode.elements
        for power_range in element.power_ranges
        for bound in (power_range.start_of_range, power_range.end_of_range)
    ]
    charge = max(powers, default=0.0)
    discharge = -min(powers, default=0.0)
    return (
        charge / 1000 if charge > 0 else None,
        discharge / 1000 if discharge > 0 else None,
    )


def frbc_instructions(
    description: Any, plan: Sequence[S2PlanSlot]
) -> list[FRBCInstruction]:
    """Return the FRBC instructions that follow a plan: one per change of power.

    Raise NotImplementedError for descriptions with more than one actuator.
    """
    if len(description.actuators) != 1:
        raise NotImplementedError(
            f"{len(description.actuators)} actuators; only one can be followed"
        )
    actuator = description.actuators[0]
    instructions: list[FRBCInstruction] = []
    previous: float | None = None
    for slot in plan:
        if previous is not None and math.isclose(slot.power_kw, previous):
            continue
        previous = slot.power_kw
        mode, factor = s2_operation_mode(
            description, slot.power_kw * 1000, slot.fill_level
        )
        instructions.append(
            FRBCInstruction(
                message_id=s2_unique_id(),
                id=s2_unique_id(),
                actuator_id=actuator.id,
                operation_mode=mode.id,
                operation_mode_factor=factor,
                execution_time=slot.start,
                abnormal_condition=False,
            )
        )
    return instructions


class S2Session:
    """One resource manager's conversation, run by the library's CEM with FRBC.

    It does not plan: a described storage goes to the device's planner (the
    ``on_storage`` callback), and instructions follow the device's plan, which
    the hub hands over with ``async_follow_plan`` whatever produced it.
    """

    def __init__(
        self,
        api: FlexMeasuresApi,
        settings: S2CemSettings,
        *,
        create_task: TaskFactory,
        executor: Executor,
        on_storage: StorageListener,
        queue_size: int,
    ) -> None:
        """Start a conversation; this does no I/O."""
        self._settings = settings
        self._uploads = S2Uploads(api, create_task)
        self._executor = executor
        self._on_storage = on_storage
        self._cem = S2Cem(api, self, queue_size=queue_size)
        self._power_slot: tuple[datetime, list[float]] | None = None
        # A system description that came before any storage status, to plan later.
        self._waiting_description: Any = None
        # One plan at a time: its revocations and instructions stay together.
        self._follow_lock = asyncio.Lock()
        # The device's plan, followed from the moment a description allows it.
        self._plan: tuple[S2PlanSlot, ...] = ()
        # Instructions sent, by id, with their execution time: revoked when replaced.
        self._sent_instructions: dict[str, datetime] = {}

    @property
    def control_type(self) -> str | None:
        """Return the active control type (lower case), or None before the details."""
        return self._cem.control_type

    @property
    def resource_manager(self) -> S2ResourceManagerInfo | None:
        """Return what the resource manager told about itself."""
        if (details := self._cem.resource_manager_details) is None:
            return None
        return S2ResourceManagerInfo(
            resource_id=str(details.resource_id),
            name=details.name,
            manufacturer=details.manufacturer,
            model=details.model,
            firmware_version=details.firmware_version,
            control_types=tuple(
                str(item.value).lower() for item in details.available_control_types
            ),
        )

    # Frames from the resource manager

    async def async_receive(self, text: str) -> None:
        """Handle one frame; anything unusable is answered, never raised."""
        try:
            message = json.loads(text)
        except ValueError:
            await self.async_reject("The frame is not JSON")
            return
        if not isinstance(message, dict) or not isinstance(
            message_type := message.get("message_type"), str
        ):
            await self.async_reject("The frame is not an S2 message")
            return
        subject = str(message.get("message_id", message.get("subject_message_id")))
        try:
            UUID(subject)
        except ValueError:
            await self.async_reject(f"{message_type} without a valid message id")
            return
        if not self._cem.supports_message(message):
            await self.async_reject(
                f"Unsupported message type {message_type}",
                subject=subject,
                status=ReceptionStatusValues.INVALID_CONTENT,
            )
            return
        try:
            await self._cem.async_handle_message(message)
        except Exception:  # noqa: BLE001 - the peer gets an answer, whatever broke
            S2_LOGGER.debug("Could not handle an S2 %s", message_type, exc_info=True)
            await self.async_reject(
                f"Could not handle {message_type}",
                subject=subject,
                status=ReceptionStatusValues.PERMANENT_ERROR,
            )

    async def async_reject(
        self,
        reason: str,
        *,
        subject: str = S2_NIL_ID,
        status: ReceptionStatusValues = ReceptionStatusValues.INVALID_MESSAGE,
    ) -> None:
        """Answer a message with an error reception status."""
        await self._cem.async_send(
            ReceptionStatus(
                subject_message_id=UUID(subject), status=status, diagnostic_label=reason
            )
        )

    async def async_next_message(self) -> dict[str, Any]:
        """Wait for the next message to send to the resource manager."""
        return await self._cem.async_next_message()

    async def async_select_control_type(self, control_type: str) -> None:
        """Ask the resource manager to switch; raise ValueError if it cannot."""
        info = self.resource_manager
        if info is None or control_type not in info.control_types:
            raise ValueError(control_type)
        await self._cem.async_activate_control_type(control_type)

    # What the CEM hands over (S2CemHandler)

    async def async_storage_status(self, status: Any) -> None:
        """Post the fill level; plan a description that waited for it."""
        if (target := self._settings.fill_level) is not None:
            start = _floor_time(
                dt_util.utcnow(), target.resolution or S2_DEFAULT_RESOLUTION
            )
            self._uploads.submit(
                target, start, [float(status.present_fill_level)], target.unit
            )
        if (description := self._waiting_description) is not None:
            self._waiting_description = None
            await self.async_system_description(description)

    async def async_actuator_status(self, status: Any) -> None:
        """Post the actuator's operation mode factor (0-1)."""
        if (target := self._settings.actuator_status) is not None:
            moment = status.transition_timestamp or dt_util.utcnow()
            start = _floor_time(moment, target.resolution or S2_DEFAULT_RESOLUTION)
            self._uploads.submit(
                target, start, [float(status.operation_mode_factor)], target.unit
            )

    async def async_usage_forecast(self, usage_forecast: Any) -> None:
        """Post the expected usage, per hour, at the sensor's resolution."""
        if (target := self._settings.usage_forecast) is None:
            return
        resolution = target.resolution or _USAGE_FORECAST_RESOLUTION
        usage = await self._executor(
            lambda: s2_usage_per_hour(usage_forecast, resolution)
        )
        if usage is not None:
            self._uploads.submit(target, usage[0], usage[1], target.unit)

    async def async_system_description(self, description: Any) -> None:
        """Follow the plan with the new description; hand the storage to the planner.

        The planner needs the fill level, so a description before any storage
        status waits for one.
        """
        await self.async_follow_plan(self._plan)
        if (status := self._cem.latest_storage_status) is None:
            self._waiting_description = description
            return
        soc_min, soc_max = s2_fill_level_range(description)
        charge, discharge = _power_limits_kw(description)
        await self._on_storage(
            S2Storage(
                fill_level=float(status.present_fill_level),
                fill_level_min=soc_min,
                fill_level_max=soc_max,
                charge_power_kw=charge,
                discharge_power_kw=discharge,
            )
        )

    async def async_power_measurement(self, measurement: Any) -> None:
        """Average power over the sensor's slots and post each finished slot in kW."""
        target = self._settings.power
        watts = _electric_power(measurement.values)
        if target is None or watts is None:
            return
        resolution = target.resolution or S2_DEFAULT_RESOLUTION
        slot = _floor_time(measurement.measurement_timestamp, resolution)
        if self._power_slot is None or slot > self._power_slot[0]:
            if self._power_slot is not None:
                start, samples = self._power_slot
                self._uploads.submit(
                    target, start, [sum(samples) / len(samples) / 1000], "kW"
                )
            self._power_slot = (slot, [watts])
        elif slot == self._power_slot[0]:
            self._power_slot[1].append(watts)

    # The device's plan

    async def async_follow_plan(self, plan: Sequence[S2PlanSlot]) -> int:
        """Send instructions for the plan's slots still ahead; return how many.

        Instructions of an earlier plan that have not been executed yet are
        revoked first. Without a description the plan is kept for the first one.
        """
        async with self._follow_lock:
            return await self._async_follow(tuple(plan))

    async def _async_follow(self, plan: tuple[S2PlanSlot, ...]) -> int:
        """Send a plan's instructions (see async_follow_plan), under the lock."""
        self._plan = plan
        now = dt_util.utcnow()
        # The slot in progress is carried out from now on; ended slots are dropped.
        ahead = [
            S2PlanSlot(
                start=max(slot.start, now),
                end=slot.end,
                power_kw=slot.power_kw,
                fill_level=slot.fill_level,
            )
            for slot in plan
            if slot.end > now
        ]
        if not ahead or (description := self._cem.latest_description) is None:
            return 0
        try:
            instructions = frbc_instructions(description, ahead)
        except NotImplementedError as err:
            S2_LOGGER.warning("Cannot follow the plan: %s", err)
            return 0
        for instruction_id, execution_time in self._sent_instructions.items():
            if execution_time > now:
                await self._cem.async_send(
                    RevokeObject(
                        message_id=s2_unique_id(),
                        object_type=RevokableObjects.FRBC_Instruction,
                        object_id=UUID(instruction_id),
                    )
                )
        self._sent_instructions.clear()
        for instruction in instructions:
            self._sent_instructions[str(instruction.id)] = instruction.execution_time
            await self._cem.async_send(instruction)
        return len(instructions)

    async def async_close(self) -> None:
        """Stop the CEM and everything it started."""
        self._uploads.cancel()
        await self._cem.async_close()
