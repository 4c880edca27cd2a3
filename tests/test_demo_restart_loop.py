"""scripts/lib/hass_loop.py: the demo keeps Home Assistant running across restarts.

A fake `hass` (a short Python script) plays Home Assistant: it exits with 100 when
asked to restart, 0 when stopped, or sleeps until it is signalled.
"""

from __future__ import annotations

import json
from pathlib import Path
import signal
import subprocess
import sys
import time
from typing import Any

LOOP = Path(__file__).parents[1] / "scripts" / "lib" / "hass_loop.py"

# Exit with the code listed for this run (the file counts the runs), else sleep.
FAKE_HASS = """
import pathlib, sys, time
runs = pathlib.Path(sys.argv[1])
n = int(runs.read_text()) if runs.exists() else 0
runs.write_text(str(n + 1))
codes = [int(c) for c in sys.argv[2].split(",") if c]
print(f"fake hass run {n}", flush=True)
if n < len(codes):
    sys.exit(codes[n])
time.sleep(60)
"""


def start_loop(
    tmp_path: Path, codes: str, *extra: str
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start the loop around the fake hass; return it and its events file."""
    fake = tmp_path / "fake_hass.py"
    fake.write_text(FAKE_HASS)
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen(  # noqa: S603  # our own script, sys.executable
        [
            sys.executable,
            str(LOOP),
            "--events",
            str(events),
            "--log",
            str(tmp_path / "hass.log"),
            *extra,
            "--",
            sys.executable,
            str(fake),
            str(tmp_path / "runs"),
            codes,
        ],
        stderr=subprocess.PIPE,
    )
    return proc, events


def read_events(events: Path) -> list[dict[str, Any]]:
    """Return the events written so far."""
    if not events.exists():
        return []
    return [json.loads(line) for line in events.read_text().splitlines()]


def test_restart_then_stop(tmp_path: Path) -> None:
    """Exit code 100 starts hass again on the same config; 0 ends the loop."""
    proc, events = start_loop(tmp_path, "100,100,0")
    assert proc.wait(30) == 0
    assert [e["event"] for e in read_events(events)] == [
        "started",
        "restart_requested",
        "started",
        "restart_requested",
        "started",
        "exited",
    ]
    assert read_events(events)[-1]["code"] == 0
    assert (tmp_path / "hass.log").read_text().splitlines() == [
        "fake hass run 0",
        "fake hass run 1",
        "fake hass run 2",
    ]


def test_crash_is_not_retried(tmp_path: Path) -> None:
    """Any exit code but 100 ends the loop with that code."""
    proc, events = start_loop(tmp_path, "100,1")
    assert proc.wait(30) == 1
    assert [e["event"] for e in read_events(events)][-1] == "exited"
    assert (tmp_path / "runs").read_text() == "2"


def test_crash_loop_is_reported(tmp_path: Path) -> None:
    """More restarts than allowed within the window end the loop (exit 3)."""
    proc, events = start_loop(tmp_path, "100," * 10, "--max-restarts", "3")
    assert proc.wait(30) == 3
    recorded = read_events(events)
    assert recorded[-1]["event"] == "crash_loop"
    assert recorded[-1]["restarts"] == 4
    assert (tmp_path / "runs").read_text() == "4"
    assert b"crash_loop" in proc.stderr.read()  # type: ignore[union-attr]


def test_restarts_outside_the_window_do_not_count(tmp_path: Path) -> None:
    """With a tiny window, restarts never pile up to a crash loop."""
    proc, events = start_loop(
        tmp_path, "100,100,100,0", "--max-restarts", "1", "--window", "0"
    )
    assert proc.wait(30) == 0
    assert [e["event"] for e in read_events(events)].count("started") == 4


def wait_started(events: Path) -> None:
    """Wait until the fake hass sleeps (its first start is recorded)."""
    for _ in range(300):
        if any(e["event"] == "started" for e in read_events(events)):
            return
        time.sleep(0.05)
    raise AssertionError("hass never started")


def test_ctrl_c_stops_hass(tmp_path: Path) -> None:
    """SIGINT ends hass (SIGTERM to its group) and then the loop."""
    proc, events = start_loop(tmp_path, "")
    wait_started(events)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 128 + signal.SIGINT
    last = read_events(events)[-1]
    assert (last["event"], last["reason"]) == ("stopped", "SIGINT")
    assert last["code"] == -signal.SIGTERM


def test_hass_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    """A hass that ignores SIGTERM is killed after --stop-timeout."""
    fake = tmp_path / "stubborn.py"
    fake.write_text(
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('up', flush=True)\ntime.sleep(60)\n"
    )
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen(  # noqa: S603  # our own script, sys.executable
        [
            sys.executable,
            str(LOOP),
            "--events",
            str(events),
            "--log",
            str(tmp_path / "hass.log"),
            "--stop-timeout",
            "0.5",
            "--",
            sys.executable,
            str(fake),
        ],
        stderr=subprocess.DEVNULL,
    )
    wait_started(events)
    for _ in range(300):  # the signal handler is set once the log has output
        if (tmp_path / "hass.log").read_text():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 128 + signal.SIGTERM
    assert [e["event"] for e in read_events(events)][-2:] == ["killed", "stopped"]
    assert read_events(events)[-1]["code"] == -signal.SIGKILL
