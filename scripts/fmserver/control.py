"""The control agent: lets live tests stop and start parts of this FlexMeasures server.

The live tier runs in a chroot (scripts/in-env) that shares this machine's PID and
network namespaces and sees the server's state dir at the same path, but cannot run
the server's programs (pg_ctl, FlexMeasures' venv). This agent runs on the host,
started by ``FLEXMEASURES_SERVER_CONTROL=1 scripts/flexmeasures-server start`` (or in
the foreground by ``scripts/flexmeasures-server control``), and serves requests
written as files into ``STATE_DIR/control/``:

    <id>.request  {"command": "stop-web", "args": [], "lease": 300}; written by the
                  test as <id>.tmp and renamed, so the agent never reads half a file
    <id>.result   {"rc": 0, "output": "...", "seconds": 1.2, "time": 1764151234.5};
                  written the same way when the command has finished. ``time`` is
                  this machine's clock (tests run with a frozen clock).

A command is ``ping`` or one of the server script's subcommands in COMMANDS, run for
the same state dir with an argument list (no shell). One request at a time, oldest
first; a request older than STALE seconds (its writer is gone) is refused.

Leases: a disruptive command (stop-web, stop-db, freeze-web, set-password) opens a
lease of ``lease`` seconds (default 300). Unless a ``restore`` succeeds before it runs
out, the agent runs ``restore`` itself: a test that crashed or was killed never leaves
the shared server broken for the tests after it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

# command -> (fewest arguments, most arguments, disruptive)
COMMANDS: dict[str, tuple[int, int, bool]] = {
    "ping": (0, 0, False),
    "status": (0, 0, False),
    "stop-web": (0, 0, True),
    "start-web": (0, 0, False),
    "stop-db": (0, 0, True),
    "start-db": (0, 0, False),
    "freeze-web": (0, 0, True),
    "thaw-web": (0, 0, False),
    "set-password": (2, 2, True),
    "restore": (0, 0, False),
    "beliefs": (2, 1000, False),
    "cancel-job": (1, 1, False),
    "stop-job": (1, 1, False),
}
ARGUMENT = re.compile(r"[\w.@+:,-]{1,200}")
DEFAULT_LEASE = 300.0
MAX_LEASE = 1800.0
STALE = 120.0  # seconds a request may wait before its writer counts as gone
POLL = 0.1
RESTORE_RETRY = 60.0


def log(message: str) -> None:
    """Write a timestamped line to the agent's log (stdout)."""
    print(f"[control {time.strftime('%H:%M:%S')}] {message}", flush=True)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to ``path`` atomically (a reader sees all of it or nothing)."""
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8"
    ) as handle:
        json.dump(data, handle)
    Path(handle.name).replace(path)


def _mtime(path: Path) -> float:
    """Return when a file was last written (0 if it is gone)."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


class Agent:
    """Runs the requests of one state dir's tests, and restores after leases."""

    def __init__(self, state_dir: Path, server: Path) -> None:
        """Serve ``state_dir/control`` with the server script ``server``."""
        self.state_dir = state_dir
        self.server = server
        self.inbox = state_dir / "control"
        self.restore_at: float | None = None

    def run_server(self, command: str, args: list[str]) -> tuple[int, str]:
        """Run a subcommand of the server script; return its exit code and output."""
        env = {**os.environ, "FLEXMEASURES_SERVER_DIR": str(self.state_dir)}
        # Output to a file, not a pipe: daemons the command starts must not keep
        # a pipe open (the agent would wait for them to exit).
        with tempfile.TemporaryFile("w+", encoding="utf-8") as output:
            rc = subprocess.call(
                [str(self.server), command, *args],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                cwd="/",  # the postgres user may not enter the state dir
            )
            output.seek(0)
            return rc, output.read()

    def handle(self, request: dict[str, Any], age: float) -> dict[str, Any]:
        """Validate and run one request; return the result to write."""
        command = request.get("command")
        args = request.get("args", [])
        if command not in COMMANDS:
            return {"rc": 2, "output": f"unknown command {command!r}"}
        fewest, most, disruptive = COMMANDS[command]
        if (
            not isinstance(args, list)
            or not fewest <= len(args) <= most
            or not all(isinstance(a, str) and ARGUMENT.fullmatch(a) for a in args)
        ):
            return {"rc": 2, "output": f"bad arguments for {command}: {args!r}"}
        if age > STALE:
            return {"rc": 2, "output": f"request waited {age:.0f} s: refused"}
        if command == "ping":
            return {"rc": 0, "output": "pong"}
        if disruptive:
            lease = min(float(request.get("lease") or DEFAULT_LEASE), MAX_LEASE)
            self.restore_at = time.time() + lease
        rc, output = self.run_server(command, args)
        if command == "restore" and rc == 0:
            self.restore_at = None
        return {"rc": rc, "output": output}

    def serve_one(self, path: Path) -> None:
        """Answer the request in ``path``."""
        started = time.time()
        result_path = path.with_suffix(".result")
        try:
            age = started - path.stat().st_mtime
            request = json.loads(path.read_text(encoding="utf-8"))
            path.unlink()
        except (OSError, ValueError) as err:
            path.unlink(missing_ok=True)
            write_json(result_path, {"rc": 2, "output": f"unreadable request: {err}"})
            return
        if not isinstance(request, dict):
            request = {}
        log(f"{path.stem}: {request.get('command')} {request.get('args', [])}")
        result = self.handle(request, age)
        result["seconds"] = round(time.time() - started, 3)
        result["time"] = time.time()
        log(f"{path.stem}: exit {result['rc']} after {result['seconds']} s")
        write_json(result_path, result)

    def check_lease(self) -> None:
        """Restore the server if a disruptive command's lease ran out."""
        if self.restore_at is None or time.time() < self.restore_at:
            return
        log("lease ran out without a restore (a test died?): restoring")
        rc, output = self.run_server("restore", [])
        sys.stdout.write(output)
        if rc == 0:
            self.restore_at = None
        else:
            log(f"restore failed (exit {rc}); trying again in {RESTORE_RETRY:.0f} s")
            self.restore_at = time.time() + RESTORE_RETRY

    def clean(self) -> None:
        """Delete results nobody fetched and temporary files left behind."""
        now = time.time()
        for path in [*self.inbox.glob("*.result"), *self.inbox.glob("*.tmp")]:
            try:
                if now - path.stat().st_mtime > 600:
                    path.unlink()
            except OSError:
                pass

    def serve(self) -> None:
        """Serve until the state dir goes away."""
        self.inbox.mkdir(parents=True, exist_ok=True)
        # Tests check this pid (the chroot shares the PID namespace) before asking.
        (self.state_dir / "run").mkdir(exist_ok=True)
        (self.state_dir / "run" / "control.pid").write_text(f"{os.getpid()}\n")
        log(f"serving {self.inbox} (pid {os.getpid()})")
        last_clean = 0.0
        while (self.state_dir / "settings.env").exists():
            for path in sorted(self.inbox.glob("*.request"), key=_mtime):
                self.serve_one(path)
            self.check_lease()
            if time.time() - last_clean > 60:
                self.clean()
                last_clean = time.time()
            time.sleep(POLL)
        log("state dir gone: exiting")


def main() -> None:
    """Parse the arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--server", required=True, type=Path)
    args = parser.parse_args()
    Agent(args.state_dir.resolve(), args.server.resolve()).serve()


if __name__ == "__main__":
    main()
