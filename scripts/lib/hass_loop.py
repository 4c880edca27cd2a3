"""Run Home Assistant the way an installation does: start it again when it asks.

    python3 scripts/lib/hass_loop.py --events EVENTS.jsonl --log hass.log -- CMD...

Runs CMD (a `hass` command line) in its own process group, its output appended
to --log, and waits for it:

- exit code 100 (`homeassistant.restart`: Settings -> Restart, a setting that
  needs a restart, HA's own HTTP-config revert): started again on the same
  config;
- more than --max-restarts restarts within --window seconds: a crash loop,
  reported and not retried (exit 3);
- any other exit code: Home Assistant stopped (0) or crashed; the loop ends with
  that code;
- SIGINT/SIGTERM (Ctrl-C): Home Assistant's process group gets SIGTERM (SIGKILL
  after --stop-timeout seconds) and the loop ends with 130/143.

Every start, exit and decision is appended to --events as one JSON object a
line ({"time", "event", ...}), so scripts/demo and its check can follow it.
Standard library only: it runs with the host's python3.
"""

from __future__ import annotations

import argparse
from collections import deque
from datetime import UTC, datetime
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Any

RESTART_CODE = 100
CRASH_LOOP_CODE = 3


class Loop:
    """The restart loop around one command."""

    def __init__(self, args: argparse.Namespace) -> None:
        """Keep the options; nothing runs yet."""
        self.command: list[str] = args.command
        self.events = Path(args.events)
        self.log = Path(args.log)
        self.max_restarts: int = args.max_restarts
        self.window: float = args.window
        self.stop_timeout: float = args.stop_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.signal: int | None = None
        self.kill_at: float | None = None
        self.restarts: deque[float] = deque()

    def event(self, name: str, **fields: Any) -> None:
        """Append one event to the events file and say it on stderr."""
        record = {"time": datetime.now(UTC).isoformat(), "event": name, **fields}
        with self.events.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        details = " ".join(f"{k}={v}" for k, v in fields.items())
        print(f"[hass-loop] {name} {details}".rstrip(), file=sys.stderr, flush=True)

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """Remember the signal and pass SIGTERM to Home Assistant's group."""
        self.signal = signum
        self.kill_at = time.monotonic() + self.stop_timeout
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)

    def wait(self, proc: subprocess.Popen[bytes]) -> int:
        """Wait for Home Assistant; SIGKILL its group if it ignores SIGTERM."""
        while (code := proc.poll()) is None:
            if self.kill_at is not None and time.monotonic() > self.kill_at:
                self.event("killed", pid=proc.pid, after_s=self.stop_timeout)
                os.killpg(proc.pid, signal.SIGKILL)
                self.kill_at = None
            time.sleep(0.1)
        return code

    def run(self) -> int:
        """Run until Home Assistant stops for good; return the exit code."""
        signal.signal(signal.SIGINT, self.on_signal)
        signal.signal(signal.SIGTERM, self.on_signal)
        while True:
            with self.log.open("ab") as log:
                self.proc = subprocess.Popen(
                    self.command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.event("started", pid=self.proc.pid, restarts=len(self.restarts))
            if self.signal is not None:  # a signal between two starts
                os.killpg(self.proc.pid, signal.SIGTERM)
            code = self.wait(self.proc)
            if self.signal is not None:
                self.event(
                    "stopped", reason=signal.Signals(self.signal).name, code=code
                )
                return 128 + self.signal
            if code != RESTART_CODE:
                self.event("exited", code=code)
                return code
            now = time.monotonic()
            self.restarts.append(now)
            while self.restarts and now - self.restarts[0] > self.window:
                self.restarts.popleft()
            if len(self.restarts) > self.max_restarts:
                self.event(
                    "crash_loop",
                    restarts=len(self.restarts),
                    window_s=self.window,
                )
                return CRASH_LOOP_CODE
            self.event("restart_requested", code=code)


def main() -> int:
    """Parse the options and run the loop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--max-restarts", type=int, default=5)
    parser.add_argument("--window", type=float, default=300.0)
    parser.add_argument("--stop-timeout", type=float, default=30.0)
    parser.add_argument("command", nargs="+")
    return Loop(parser.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
