"""Post hourly consumption prices around "now" to the local FlexMeasures server.

Standard library only (fast to start); run by scripts/flexmeasures-server after
every start/reset:

    python prices.py STATE_DIR/seed.json [--if-stale]

Window: from 00:00 UTC yesterday to 00:00 UTC three days later (96 hourly
values), so the start of today (UTC and Europe/Amsterdam) and at least 48 hours
ahead are always covered. The daily shape follows the local (Europe/Amsterdam)
clock: cheap night (01-06h), morning and evening peaks, a solar dip at midday
with one negative hour (13:00-14:00 local) every day. Values depend only on the
calendar date and hour, so the same hour always gets the same price.

It posts through the REST API as the seeded user (FlexMeasures' own ingestion
path) and records the window and values in seed.json under "prices".
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
import json
from pathlib import Path
import sys
import time
import urllib.error
import urllib.request
from zoneinfo import ZoneInfo

# EUR/MWh by local hour of day
DAILY_SHAPE = [
    72, 65, 60, 58, 57, 62, 85, 120, 135, 110, 70, 35,
    12, -8, 20, 45, 90, 150, 195, 210, 170, 130, 105, 85,
]  # fmt: skip
NEGATIVE_HOUR = DAILY_SHAPE.index(min(DAILY_SHAPE))
UNIT = "EUR/MWh"


def price_at(utc_time: datetime, tz: ZoneInfo) -> float:
    """Return the price (EUR/MWh) of the hour starting at `utc_time`."""
    local = utc_time.astimezone(tz)
    factor = 1 + 0.05 * ((local.date().toordinal() % 5) - 2)  # 0.9 .. 1.1 by date
    return round(DAILY_SHAPE[local.hour] * factor, 2)


def window(now: datetime) -> tuple[datetime, datetime]:
    """Return the price window (start, end): 96 hours from 00:00 UTC yesterday."""
    start = now.astimezone(UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    ) - timedelta(days=1)
    return start, start + timedelta(days=4)


def request(url: str, payload: dict, token: str | None = None) -> dict:
    """POST `payload` as JSON to `url` and return the JSON answer.

    Exits the script with the server's answer on an HTTP error.
    """
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = token
    req = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        body = err.read().decode(errors="replace")[:2000]
        sys.exit(f"prices.py: POST {url} -> HTTP {err.code}: {body}")


def wait_for_job(base: str, job: str, token: str, timeout: float = 180) -> None:
    """Wait until an ingestion job finished; exit the script if it failed."""
    deadline = time.monotonic() + timeout
    status = "unknown"
    while time.monotonic() < deadline:
        req = urllib.request.Request(
            f"{base}/api/v3_0/jobs/{job}", headers={"Authorization": token}
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status = json.loads(resp.read() or b"{}").get("status", "unknown")
        except urllib.error.HTTPError as err:
            status = json.loads(err.read() or b"{}").get("status", str(err.code))
        if status == "FINISHED":
            return
        if status in ("FAILED", "CANCELED", "STOPPED"):
            sys.exit(f"prices.py: the ingestion job {job} of the prices {status}")
        time.sleep(0.5)
    sys.exit(f"prices.py: the ingestion job {job} of the prices is still {status}")


def main() -> None:
    """Post the prices of the current window unless --if-stale finds them fresh."""
    parser = argparse.ArgumentParser()
    parser.add_argument("seed_json")
    parser.add_argument(
        "--if-stale",
        action="store_true",
        help="do nothing when the posted prices still reach 36 h ahead",
    )
    args = parser.parse_args()

    seed_json = Path(args.seed_json)
    seed = json.loads(seed_json.read_text())
    now = datetime.now(UTC)
    if args.if_stale and "prices" in seed:
        end = datetime.fromisoformat(seed["prices"]["end"])
        start = datetime.fromisoformat(seed["prices"]["start"])
        if start <= window(now)[0] and end - now >= timedelta(hours=36):
            fresh = seed["prices"]
            print(f"prices still fresh ({fresh['start']} .. {fresh['end']})")
            return

    tz = ZoneInfo(seed["timezone"])
    start, end = window(now)
    hours = int((end - start) / timedelta(hours=1))
    values = [price_at(start + timedelta(hours=h), tz) for h in range(hours)]

    base = seed["url"]
    token = request(
        f"{base}/api/requestAuthToken",
        {"email": seed["email"], "password": seed["password"]},
    )["auth_token"]
    answer = request(
        f"{base}/api/v3_0/sensors/{seed['sensors']['price']}/data",
        {
            "start": start.isoformat(),
            "duration": f"PT{hours}H",
            "values": values,
            "unit": UNIT,
            # Day-ahead prices are known the day before: believed since a day
            # before the window, so plans asked for "as of" a moment in the
            # recent past (tests run Home Assistant's clock back) see them too.
            "prior": (start - timedelta(days=1)).isoformat(),
        },
        token,
    )
    if "job" in answer:
        # An ingestion worker stores them later: wait, so that what comes next
        # (the template database that `reset` restores) holds them.
        wait_for_job(base, str(answer["job"]), token)

    seed["prices"] = {
        "sensor": seed["sensors"]["price"],
        "start": start.isoformat(),
        "end": end.isoformat(),
        "resolution": "PT1H",
        "unit": UNIT,
        "shape_timezone": seed["timezone"],
        "negative_hour_local": f"{NEGATIVE_HOUR:02d}:00",
        "posted_at": now.replace(microsecond=0).isoformat(),
        "values": values,
    }
    tmp = seed_json.with_name(seed_json.name + ".tmp")
    tmp.write_text(json.dumps(seed, indent=2) + "\n")
    tmp.replace(seed_json)
    print(
        f"posted {hours} hourly prices ({UNIT}) to sensor {seed['sensors']['price']}: "
        f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC, "
        f"min {min(values)} max {max(values)}"
    )


if __name__ == "__main__":
    main()
