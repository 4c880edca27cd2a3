"""Scheduling of controlled devices, one concern a module.

- ``model``: the plan model (settings, requests, plans, windows, missed targets).
- ``request``: request validation and the flex-model and flex-context.
- ``jobs``: the polling plan and what a job's status means.
- ``waiting``: following a device's jobs to their end, learning their durations.
- ``rounds``: one scheduling job and its waiters, retried after an outage.
- ``store``: what of the plan survives a restart, and when it is written.
- ``recovery``: taking up a job queued before a restart, or planning it anew
  (a device's or a site's).
- ``targets``: the repair issue about targets the plan misses.
- ``replan``: replans debounced and rate limited; a device's automatic triggers.
- ``prices``: the consumption prices the dashboard card shows over the plan.
- ``scheduler``: the device scheduler, the plan coordinator every consumer follows.
- ``site``: several devices planned together in one asset-level job.
- ``devices``: the schedulers of an entry's devices and sites, set up and removed.
"""

from __future__ import annotations

from .devices import async_remove_schedules, async_setup_schedulers
from .jobs import (
    JOB_FAILED,
    JOB_FINISHED,
    JOB_UNSUCCESSFUL,
    POLL_FINE_MAX,
    POLL_FINE_MIN,
    POLL_FIRST,
    POLL_MAX,
    ScheduleFailedError,
    job_failure,
    job_status,
    poll_delays,
)
from .model import (
    DEFAULT_RESOLUTION,
    ENERGY_TO_KWH,
    MAX_DURATION,
    POWER_EPSILON,
    AutoReschedule,
    DeviceConfig,
    DeviceKind,
    FailureReason,
    PendingJob,
    Schedule,
    ScheduleRecovery,
    ScheduleRequest,
    ScheduleStatus,
    SiteConfig,
    SitePendingJob,
    SocTarget,
    SocUnit,
    UnmetTarget,
    Window,
    WindowKind,
    merge_windows,
    quantity,
    schedule_from_series,
    schedule_response,
    schedule_summary,
    simulate_soc,
    slot_start,
    unmet_target_attributes,
    unmet_targets,
)
from .prices import DEFAULT_PRICE_RESOLUTION, DEFAULT_PRICE_UNIT
from .recovery import PENDING_JOB_MAX_AGE
from .replan import AUTO_DEBOUNCE, AUTO_MIN_INTERVAL
from .request import build_flex_context, build_flex_model, build_request, read_soc_kwh
from .rounds import RESPONSE_TIMEOUT, RETRY_FIRST, RETRY_MAX
from .scheduler import DeviceScheduler
from .site import SiteScheduler
from .store import STORAGE_MINOR_VERSION, STORAGE_VERSION, STORE_DELAY, ScheduleStore
from .targets import ISSUE_UNMET_TARGETS, unmet_targets_issue_id
from .waiting import JOB_TIMEOUT

__all__ = [
    "AUTO_DEBOUNCE",
    "AUTO_MIN_INTERVAL",
    "DEFAULT_PRICE_RESOLUTION",
    "DEFAULT_PRICE_UNIT",
    "DEFAULT_RESOLUTION",
    "ENERGY_TO_KWH",
    "ISSUE_UNMET_TARGETS",
    "JOB_FAILED",
    "JOB_FINISHED",
    "JOB_TIMEOUT",
    "JOB_UNSUCCESSFUL",
    "MAX_DURATION",
    "PENDING_JOB_MAX_AGE",
    "POLL_FINE_MAX",
    "POLL_FINE_MIN",
    "POLL_FIRST",
    "POLL_MAX",
    "POWER_EPSILON",
    "RESPONSE_TIMEOUT",
    "RETRY_FIRST",
    "RETRY_MAX",
    "STORAGE_MINOR_VERSION",
    "STORAGE_VERSION",
    "STORE_DELAY",
    "AutoReschedule",
    "DeviceConfig",
    "DeviceKind",
    "DeviceScheduler",
    "FailureReason",
    "PendingJob",
    "Schedule",
    "ScheduleFailedError",
    "ScheduleRecovery",
    "ScheduleRequest",
    "ScheduleStatus",
    "ScheduleStore",
    "SiteConfig",
    "SitePendingJob",
    "SiteScheduler",
    "SocTarget",
    "SocUnit",
    "UnmetTarget",
    "Window",
    "WindowKind",
    "async_remove_schedules",
    "async_setup_schedulers",
    "build_flex_context",
    "build_flex_model",
    "build_request",
    "job_failure",
    "job_status",
    "merge_windows",
    "poll_delays",
    "quantity",
    "read_soc_kwh",
    "schedule_from_series",
    "schedule_response",
    "schedule_summary",
    "simulate_soc",
    "slot_start",
    "unmet_target_attributes",
    "unmet_targets",
    "unmet_targets_issue_id",
]
