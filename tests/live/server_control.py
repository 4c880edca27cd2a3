"""Stop and start parts of the live FlexMeasures server from a test.

The tests run in a chroot that cannot run the server's programs; the server's
control agent (scripts/fmserver/control.py, on the host) does it for them. A
request is a file in ``$FLEXMEASURES_SERVER_DIR/control/``; the agent runs the
server script's subcommand and writes the result next to it.

Requests block, so tests call them through the executor. The clock of a test is
frozen, so waits count polls rather than reading the time.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import os
from pathlib import Path
import time
from typing import Any
import uuid

import pytest

from .conftest import DEFAULT_SERVER_DIR

POLL = 0.1
HOW_TO_ENABLE = (
    "Start the server with `FLEXMEASURES_SERVER_CONTROL=1 "
    "scripts/flexmeasures-server start` (scripts/test's live stage does)."
)


@dataclass(frozen=True, kw_only=True)
class ControlResult:
    """What the agent answered: exit code, output, and its clock at the end."""

    rc: int
    output: str
    seconds: float
    time: float


class ServerControl:
    """Sends commands to the control agent of one server state dir."""

    def __init__(self, server_dir: Path) -> None:
        """Talk to the agent serving ``server_dir``."""
        self.server_dir = server_dir
        self.inbox = server_dir / "control"

    def _agent_problem(self) -> str | None:
        """Return why the agent cannot answer, or None if its process runs."""
        pid_file = self.server_dir / "run" / "control.pid"
        try:
            pid = int(pid_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return f"No control agent for {self.server_dir} ({pid_file} is missing)."
        # The chroot shares the host's PID namespace: its /proc shows the agent.
        if not Path(f"/proc/{pid}").exists():
            return f"The control agent (pid {pid}) of {self.server_dir} is not running."
        return None

    def run(
        self, command: str, *args: str, timeout: float = 60, lease: float = 300
    ) -> ControlResult:
        """Run a command on the host; fail the test unless it succeeds in time."""
        if problem := self._agent_problem():
            pytest.fail(f"{problem} {HOW_TO_ENABLE}")
        name = uuid.uuid4().hex
        request = self.inbox / f"{name}.request"
        result = self.inbox / f"{name}.result"
        draft = self.inbox / f"{name}.tmp"
        draft.write_text(
            json.dumps({"command": command, "args": list(args), "lease": lease}),
            encoding="utf-8",
        )
        draft.replace(request)
        for _ in range(int(timeout / POLL)):
            if result.exists():
                break
            time.sleep(POLL)
        else:
            request.unlink(missing_ok=True)
            pytest.fail(
                f"`{command}` got no answer in {timeout:.0f} s from the control "
                f"agent of {self.server_dir} ({self._agent_problem() or 'running'})."
            )
        answer: dict[str, Any] = json.loads(result.read_text(encoding="utf-8"))
        result.unlink()
        outcome = ControlResult(
            rc=int(answer["rc"]),
            output=str(answer["output"]),
            seconds=float(answer.get("seconds", 0)),
            time=float(answer.get("time", 0)),
        )
        if outcome.rc != 0:
            pytest.fail(
                f"`flexmeasures-server {command}` failed (exit {outcome.rc}):\n"
                f"{outcome.output}"
            )
        return outcome


def server_control() -> ServerControl:
    """Return the control of the server the live tier uses."""
    server_dir = os.environ.get("FLEXMEASURES_SERVER_DIR") or DEFAULT_SERVER_DIR
    return ServerControl(Path(server_dir))
