"""Schedulers of the local FlexMeasures server: the storage scheduler with a fallback.

A deployed FlexMeasures can give a scheduler class a ``fallback_scheduler_class``:
when a job of the first fails with an infeasible problem, FlexMeasures queues a job
of the fallback, and with ``FLEXMEASURES_FALLBACK_REDIRECT`` a schedule request for
the failed job answers ``303 See Other`` to the fallback job's schedule. The home
battery of scripts/fmserver/seed.py uses ``HomeStorageScheduler`` (its asset's
``custom-scheduler`` attribute), so the live tier meets that answer for real.

This directory is on the server processes' PYTHONPATH (scripts/flexmeasures-server),
so the worker that runs a fallback job imports this module by name, in any process.
"""

from __future__ import annotations

from typing import Any

from flexmeasures.data.models.planning.storage import StorageScheduler

# The state-of-charge constraints an infeasible home plan stems from (a battery
# below its soc-min that cannot charge fast enough, an unreachable target).
# soc-min is zeroed, not dropped: the asset's own flex-model would fill it in again.
RELAXED_FIELDS = ("soc-minima", "soc-maxima", "soc-targets")
RELAXED_SOC_MIN = "0 kWh"


def _relax(flex_model: Any) -> Any:
    """Return the flex-model without state-of-charge targets and minimum."""
    if isinstance(flex_model, dict):
        relaxed = {k: v for k, v in flex_model.items() if k not in RELAXED_FIELDS}
        return {**relaxed, "soc-min": RELAXED_SOC_MIN}
    if isinstance(flex_model, list):
        return [_relax(model) for model in flex_model]
    return flex_model


class RelaxedStorageScheduler(StorageScheduler):
    """The fallback: the same plan, without the targets that made it infeasible."""

    __version__ = "1"
    __author__ = "flexmeasures-ha"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Drop the state-of-charge targets, then schedule as usual."""
        if "flex_model" in kwargs:
            kwargs["flex_model"] = _relax(kwargs["flex_model"])
        super().__init__(*args, **kwargs)


class HomeStorageScheduler(StorageScheduler):
    """FlexMeasures' storage scheduler, falling back to the relaxed plan."""

    __version__ = "1"
    __author__ = "flexmeasures-ha"
    fallback_scheduler_class = RelaxedStorageScheduler
