"""Verify a running demo the way its user would notice problems (scripts/demo --check).

Run in the `develop` env against the hass that scripts/lib/demo_ha.py set up:

    python scripts/lib/demo_verify.py --state STATE.json --log hass.log [--timeout S]

Waits until Home Assistant answers and the flexmeasures entry is loaded (so it
also serves after a restart), then checks, through HA's APIs:
- HTTP config: nothing pending, no auto-revert scheduled, the stable config runs
  (`http/config`);
- repairs: no issue at all (`repairs/list_issues`), apart from those listed in
  NOT_OURS, which HA raises about the machine, not about the demo's setup;
- the demo battery's schedule status is `ready`;
- the HA log: no WARNING or ERROR line apart from HA's note on custom
  integrations.
Prints one line per check; exit 1 with the reasons when any fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
import re
import sys
import time
from typing import Any

import aiohttp
from demo_ha import DemoError, wait_loaded, ws_call, ws_connect

# Repair issues about how Home Assistant is installed, not about the demo's setup:
# HA deprecates running from a plain virtualenv ("Core" installation method),
# which is what a development install (and this demo) is.
NOT_OURS = {("homeassistant", "deprecated_method")}
LOG_PROBLEM = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) ")
LOG_EXPECTED = ("We found a custom integration flexmeasures",)


def log_problems(log: Path) -> list[str]:
    """Return the HA log's warning and error lines the demo should not cause."""
    return [
        line
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
        if LOG_PROBLEM.match(line) and not any(e in line for e in LOG_EXPECTED)
    ]


async def wait_for_api(
    session: aiohttp.ClientSession, base: str, auth: dict[str, str], deadline: float
) -> None:
    """Wait until Home Assistant's REST API answers (onboarded: no onboarding API)."""
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{base}/api/", headers=auth) as response:
                if response.status == 200:
                    return
        except (aiohttp.ClientError, TimeoutError):
            pass
        await asyncio.sleep(0.5)
    raise DemoError(f"Home Assistant at {base} does not answer")


async def verify(state: dict[str, Any], log: Path, wait_s: float) -> list[str]:
    """Run the checks; return the problems found."""
    base = state["ha_url"]
    auth = {"Authorization": f"Bearer {state['access_token']}"}
    deadline = time.monotonic() + wait_s
    problems: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        await wait_for_api(s, base, auth, deadline)
        entry = await wait_loaded(s, base, auth, deadline)
        print(f"[demo-verify] entry {entry['title']!r} is loaded")
        ws = await ws_connect(s, base, state["access_token"])
        async with ws:
            http = await ws_call(ws, type="http/config")
            if http["pending"] is not None or http["revert_at"] is not None:
                problems.append(f"HTTP config pending: {http['pending']}")
            if http["active_config_type"] != "stable":
                problems.append(f"HTTP runs the {http['active_config_type']} config")
            print(
                f"[demo-verify] HTTP: {http['active_config_type']} config, "
                f"port {http['stable'].get('server_port')}, "
                f"pending {http['pending']}, revert at {http['revert_at']}"
            )
            issues = (await ws_call(ws, type="repairs/list_issues"))["issues"]
            ours = [
                f"{i['domain']}.{i['issue_id']}"
                for i in issues
                if (i["domain"], i["issue_id"]) not in NOT_OURS
            ]
            ignored = len(issues) - len(ours)
            print(f"[demo-verify] repairs: {ours or 'none'} ({ignored} not the demo's)")
            problems.extend(f"repair issue {i}" for i in ours)
        status_entity = state["schedule_status_entity"]
        for _ in range(120):
            async with s.get(
                f"{base}/api/states/{status_entity}", headers=auth
            ) as response:
                status = (await response.json())["state"]
            if status == "ready":
                break
            await asyncio.sleep(0.5)
        print(f"[demo-verify] {status_entity}: {status}")
        if status != "ready":
            problems.append(f"{status_entity} is {status!r}, expected 'ready'")
    lines = log_problems(log)
    print(f"[demo-verify] HA log: {len(lines)} warnings/errors")
    problems.extend(f"log: {line[:300]}" for line in lines)
    return problems


def main() -> int:
    """Parse the options, verify, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", required=True, type=Path)
    parser.add_argument("--log", required=True, type=Path)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    state = json.loads(args.state.read_text(encoding="utf-8"))
    try:
        problems = asyncio.run(verify(state, args.log, args.timeout))
    except DemoError as err:
        problems = [str(err)]
    for problem in problems:
        print(f"[demo-verify] PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
