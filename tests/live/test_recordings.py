"""The real server still answers as recorded in tests/fixtures/recorded.

The unit tier's fake server answers from recordings of FlexMeasures 1.0.1 made by
``scripts/fmserver/record.py``. This test re-records against the live server and
fails when an answer's shape changed: its HTTP status, its keys or its value types
(null matches any type). Values may differ; shapes may not, or the unit tier tests
the integration against answers the server no longer gives.

Here the recorder runs without ``rq`` (the live tier cannot reach the server's
queues), so the CANCELED and STOPPED job answers are re-recorded only by running
record.py with the server's own venv; every other recording is checked here.
"""

from __future__ import annotations

from collections.abc import Callable
import importlib.util
import json
from pathlib import Path
import re
import sys
from types import ModuleType
from typing import Any

from homeassistant.core import HomeAssistant

from tests.conftest import FIXTURES, load_fixture
from tests.test_recordings import shape_differences

from .conftest import LiveServer, _seed_path

RECORDER = Path(__file__).parents[2] / "scripts" / "fmserver" / "record.py"
# Made with RQ's commands, which need the server's venv (see the module docstring).
RQ_ONLY = frozenset({"job_canceled", "job_stopped"})
# Job statuses seen only when a poll falls inside them: a fast worker skips them.
TRANSIENT = re.compile(r"(site_)?job(_[a-z_]+)?_(queued|started)")
# A deployment gives one of each pair: with an ingestion worker, or without one.
ONE_OF_PAIRS = (
    frozenset({"sensor_data_post", "sensor_data_post_accepted"}),
    frozenset({"sensor_data_post_forecast", "sensor_data_post_forecast_accepted"}),
)
ONE_OF = frozenset().union(*ONE_OF_PAIRS)


def _recorder() -> ModuleType:
    """Import scripts/fmserver/record.py."""
    spec = importlib.util.spec_from_file_location("fmha_record", RECORDER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first: its dataclasses look their module up while being built.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _differences(stored: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """Return how a fresh recording's answer differs in shape from the stored one."""
    found = []
    if fresh["status"] != stored["status"]:
        found.append(f"HTTP {fresh['status']}, recorded {stored['status']}")
    if (fresh["location"] is None) != (stored["location"] is None):
        found.append(f"Location {fresh['location']}, recorded {stored['location']}")
    # Both ways round: keys the server dropped and keys it added.
    found += shape_differences(stored["body"], fresh["body"])
    found += [
        f"{difference} (recorded)"
        for difference in shape_differences(fresh["body"], stored["body"])
        if "not sent by" not in difference
    ]
    return found


async def test_answers_keep_their_recorded_shape(
    hass: HomeAssistant, live_server: LiveServer
) -> None:
    """Re-record every answer; each has the status, keys and types recorded."""
    seed = json.loads(_seed_path().read_text(encoding="utf-8"))
    record: Callable[[dict[str, Any]], dict[str, dict[str, Any]]] = _recorder().record
    fresh = await hass.async_add_executor_job(record, seed)
    stored = {
        path.stem: load_fixture(f"recorded/{path.name}")
        for path in (FIXTURES / "recorded").glob("*.json")
    }
    required = (
        {name for name in stored if not TRANSIENT.fullmatch(name)} - RQ_ONLY - ONE_OF
    )
    assert required <= set(fresh), "requests no longer recorded"
    for pair in ONE_OF_PAIRS:
        assert len(pair & set(fresh)) == 1, f"one of {sorted(pair)}"
    # The forecast POST was recorded with an ingestion worker only.
    assert set(fresh) - ONE_OF_PAIRS[1] <= set(stored), (
        "answers never recorded: run record.py"
    )
    changed = {
        name: found
        for name in sorted(fresh)
        if (found := _differences(stored[name], fresh[name]))
    }
    assert changed == {}, (
        f"FlexMeasures {live_server.version} answers differently from the "
        "recordings; re-record with scripts/fmserver/record.py and adapt the "
        f"integration: {json.dumps(changed, indent=1)}"
    )
    assert {doc["flexmeasures_version"] for doc in fresh.values()} == {
        live_server.version
    }
