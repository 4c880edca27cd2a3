"""End-to-end check of the local FlexMeasures server with flexmeasures-client.

Needs a Python with flexmeasures-client[s2]==0.9.6 installed (not the server's
venv), and a server started by scripts/flexmeasures-server:

    python scripts/fmserver/smoke.py [--seed STATE_DIR/seed.json] [--record DIR]

It logs in as the seeded user, lists assets and sensors, posts a state of charge
and reads it back, triggers a battery schedule (explicit flex-model, minimal
flex-model, flex-context from the site), fetches the schedules and checks a few
server behaviours the integration depends on (cached identical triggers, legacy
flex-context keys, access to another account's sensor). With --record it writes
the raw JSON responses of the server, one file per call, into DIR.
Exit code 0 when every check passed.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
import json
import os
from pathlib import Path
import sys
import time

import aiohttp
from flexmeasures_client import FlexMeasuresClient

FAILURES: list[str] = []


def check(ok: bool, what: str) -> None:
    """Print the outcome of one check and remember it when it failed."""
    print(("  ok    " if ok else "  FAIL  ") + what)
    if not ok:
        FAILURES.append(what)


class Recorder:
    """Writes raw server responses, one JSON file per call (for --record)."""

    def __init__(self) -> None:
        """Start switched off: nothing is written until `directory` is set."""
        self.directory: Path | None = None

    def __call__(
        self,
        name: str,
        payload: object,
        status: int | None = None,
        request: dict | None = None,
    ) -> None:
        """Write the response (and the request, if given) to DIRECTORY/NAME.json."""
        if self.directory is None:
            return
        body = {"status": status, "response": payload}
        if request is not None:
            body = {"request": request, **body}
        (self.directory / f"{name}.json").write_text(
            json.dumps(body, indent=2, default=str) + "\n"
        )


record = Recorder()


def quarter_floor(t: datetime) -> datetime:
    """Round `t` down to the quarter-hour."""
    return t.replace(minute=t.minute - t.minute % 15, second=0, microsecond=0)


async def main() -> int:
    """Run all checks against the server; return the exit code."""
    server_dir = os.environ.get(
        "FLEXMEASURES_SERVER_DIR",
        Path("~/.cache/flexmeasures-ha/server").expanduser(),
    )
    default_seed = Path(server_dir) / "seed.json"
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", default=default_seed)
    parser.add_argument("--record", help="directory for raw JSON responses")
    args = parser.parse_args()
    if args.record:
        record.directory = Path(args.record)
        record.directory.mkdir(parents=True, exist_ok=True)
    seed = json.loads(Path(args.seed).read_text())
    s, a = seed["sensors"], seed["assets"]

    async with aiohttp.ClientSession() as session:
        client = FlexMeasuresClient(
            email=seed["email"],
            password=seed["password"],
            host=seed["host"],
            ssl=False,
            session=session,
            request_timeout=20,
            request_retry_timeout=30,
            max_request_attempts=3,
            job_polling_interval=0.2,
            job_polling_max_interval=2,
            job_polling_timeout=120,
        )
        base = seed["url"] + "/api/v3_0/"

        async def raw(method: str, path: str, payload: dict | None = None, c=client):
            headers = await c.get_headers(include_auth=True)
            async with session.request(
                method, base + path, json=payload, headers=headers
            ) as r:
                try:
                    body = await r.json(content_type=None)
                except ValueError:
                    body = (await r.text())[:2000]
                return body, r.status

        print("login, versions, account")
        await client.get_access_token()
        check(bool(client.access_token), "requestAuthToken gave a token")
        versions, status = await client.request(uri="", method="GET", path="/api/")
        record("get_api_versions", versions, status)
        account = await client.get_account()
        record("get_account", account, 200)
        check(account["id"] == seed["account_id"], f"account id {account['id']}")
        user = await client.get_user()
        record("get_user", user, 200)

        print("assets and sensors")
        assets_raw, status = await raw("GET", "assets")
        record("get_assets_raw", assets_raw, status)
        assets = await client.get_assets(parse_json_fields=True)
        record("get_assets_parsed", assets, 200)
        ids = {x["id"] for x in assets}
        check(
            set(a.values()) <= ids,
            f"get_assets lists the seeded assets {sorted(a.values())} "
            f"(got {sorted(ids)})",
        )
        sensors_raw, status = await raw("GET", "sensors")
        record("get_sensors_raw", sensors_raw, status)
        sensors = await client.get_sensors(parse_json_fields=True)
        record("get_sensors_parsed", sensors, 200)
        check(
            set(s.values()) <= {x["id"] for x in sensors},
            "get_sensors lists the seeded sensors",
        )
        battery_sensors = await client.get_sensors(
            asset_id=a["battery"], parse_json_fields=True
        )
        record("get_sensors_battery_asset", battery_sensors, 200)
        check(
            {x["id"] for x in battery_sensors}
            == {s["battery_power"], s["battery_soc"]},
            "get_sensors(asset_id=battery) gives power and SoC",
        )
        battery_asset = await client.get_asset(a["battery"], parse_json_fields=True)
        record("get_asset_battery", battery_asset, 200)
        check(
            battery_asset["flex_model"].get("soc-max") == "10 kWh",
            "battery flex_model stored on the asset",
        )
        sensor = await client.get_sensor(s["battery_power"], parse_json_fields=True)
        record("get_sensor_battery_power", sensor, 200)

        print("post a state of charge and read it back")
        now = datetime.now(UTC)
        t = quarter_floor(now)
        req = {
            "start": t.isoformat(),
            "duration": "PT0M",
            "values": [55.0],
            "unit": "%",
        }
        resp, status = await client.post_sensor_data(sensor_id=s["battery_soc"], **req)
        record("post_sensor_data_soc", resp, status, req)
        data = await client.get_sensor_data(
            sensor_id=s["battery_soc"],
            start=t,
            duration="PT15M",
            unit="%",
            resolution="PT15M",
        )
        record("get_sensor_data_soc", data, 200)
        check(data["values"][:1] == [55.0], f"SoC read back: {data['values']}")
        data_raw, status = await raw(
            "GET",
            f"sensors/{s['battery_soc']}/data?start={t.isoformat().replace('+', '%2B')}"
            f"&duration=PT1H&unit=%25&resolution=PT15M",
        )
        record("get_sensor_data_soc_raw", data_raw, status)
        prices = await client.get_sensor_data(
            sensor_id=s["price"],
            start=t.replace(minute=0),
            duration="PT24H",
            unit="EUR/MWh",
            resolution="PT1H",
        )
        record("get_sensor_data_prices", prices, 200)
        check(
            len(prices["values"]) == 24 and None not in prices["values"],
            "24 h of prices ahead",
        )

        print("schedule with an explicit flex-model")
        start = t + timedelta(minutes=15)
        flex_model = {
            "soc-at-start": "5 kWh",
            "soc-min": "1 kWh",
            "soc-max": "10 kWh",
            "soc-targets": [
                {"datetime": (start + timedelta(hours=8)).isoformat(), "value": "9 kWh"}
            ],
        }
        flex_context = {"consumption-price": {"sensor": s["price"]}}
        t0 = time.monotonic()
        job = await client.trigger_schedule(
            sensor_id=s["battery_power"],
            start=start,
            duration="PT12H",
            flex_model=flex_model,
            flex_context=flex_context,
        )
        status_early, st = await raw("GET", f"jobs/{job}")
        record("get_job_status_early_raw", status_early, st)
        sched_early, st = await raw(
            "GET", f"sensors/{s['battery_power']}/schedules/{job}?duration=PT12H"
        )
        record("get_schedule_before_finished_raw", sched_early, st)
        done = await client.wait_for_job(job)
        record("get_job_status_finished", done, 200)
        schedule = await client.get_schedule(
            sensor_id=s["battery_power"], schedule_id=job, duration="PT12H"
        )
        record("get_schedule", schedule, 200)
        sched_raw, st = await raw(
            "GET", f"sensors/{s['battery_power']}/schedules/{job}?duration=PT12H"
        )
        record("get_schedule_raw", sched_raw, st)
        print(
            f"        job {job} took {time.monotonic() - t0:.1f} s; "
            f"unit {schedule['unit']}, "
            f"{len(schedule['values'])} values from {schedule['start']}"
        )
        check(len(schedule["values"]) == 48, "12 h at 15 min = 48 values")
        check(max(abs(v) for v in schedule["values"]) <= 5.0001, "power within 5 kW")
        # kWh charged in the first 8 h (consumption positive)
        energy = sum(schedule["values"][:32]) / 4
        check(
            abs(5 + energy * 0.9487 - 9) < 1.0 or energy > 0,
            f"charges towards the 9 kWh target (net {energy:.2f} kWh)",
        )
        soc_sched = await client.get_sensor_data(
            sensor_id=s["battery_soc"],
            start=start,
            duration="PT12H",
            unit="%",
            resolution="PT15M",
        )
        record("get_sensor_data_soc_after_schedule", soc_sched, 200)

        print("identical trigger -> same job (cached); Redis reset clears that")
        job2 = await client.trigger_schedule(
            sensor_id=s["battery_power"],
            start=start,
            duration="PT12H",
            flex_model=flex_model,
            flex_context=flex_context,
        )
        check(job2 == job, f"identical trigger returns the cached job ({job2 == job})")

        print("raw trigger request/response")
        payload = {
            "start": start.isoformat(),
            "duration": "PT6H",
            "flex-model": [
                {"sensor": s["battery_power"], **flex_model, "soc-targets": []}
            ],
            "flex-context": flex_context,
        }
        trig, st = await raw(
            "POST", f"assets/{a['battery']}/schedules/trigger", payload
        )
        record("post_trigger_schedule_raw", trig, st, payload)
        check(st in (200, 202) and "job" in trig, f"raw trigger answered {st}")
        job_raw, st = await raw("GET", f"jobs/{trig.get('job')}")
        record("get_job_status_raw", job_raw, st)

        print(
            "minimal flex-model "
            "(SoC from the state-of-charge sensor, site flex-context)"
        )
        t0 = time.monotonic()
        job3 = await client.trigger_schedule(
            sensor_id=s["battery_power"], start=t, duration="PT6H"
        )
        try:
            await client.wait_for_job(job3)
            sched3 = await client.get_schedule(
                sensor_id=s["battery_power"], schedule_id=job3, duration="PT6H"
            )
            record("get_schedule_minimal", sched3, 200)
            check(
                len(sched3["values"]) == 24,
                f"minimal trigger works ({time.monotonic() - t0:.1f} s)",
            )
        except Exception as err:  # noqa: BLE001
            check(False, f"minimal trigger failed: {err}")

        print(
            "numeric flex-model with soc-unit (client helper create_storage_flex_model)"
        )
        fm_numeric = client.create_storage_flex_model(
            soc_unit="kWh",
            soc_at_start=3,
            soc_min=1,
            soc_max=10,
            soc_targets=[
                {"datetime": (start + timedelta(hours=4)).isoformat(), "value": 6}
            ],
        )
        job4 = await client.trigger_schedule(
            sensor_id=s["battery_power"],
            start=start,
            duration="PT6H",
            flex_model=fm_numeric,
            flex_context=flex_context,
        )
        try:
            await client.wait_for_job(job4)
            check(True, "numeric values + soc-unit accepted")
        except Exception as err:  # noqa: BLE001
            check(False, f"numeric flex-model failed: {err}")

        print("error shapes")
        legacy = {"consumption-price-sensor": s["price"]}
        body, st = await raw(
            "POST",
            f"assets/{a['battery']}/schedules/trigger",
            {
                "start": start.isoformat(),
                "duration": "PT6H",
                "flex-model": [{"sensor": s["battery_power"], "soc-at-start": "5 kWh"}],
                "flex-context": legacy,
            },
        )
        record("post_trigger_legacy_price_sensor_raw", body, st)
        print(f"        legacy consumption-price-sensor -> HTTP {st}")
        body, st = await raw(
            "POST",
            f"assets/{a['battery']}/schedules/trigger",
            {
                "start": start.isoformat(),
                "duration": "PT6H",
                "flex-model": [
                    {"sensor": s["battery_power"], "soc-at-start": "5 bananas"}
                ],
            },
        )
        record("post_trigger_bad_flex_model_raw", body, st)
        check(st == 422, f"bad unit in flex-model -> HTTP {st}")
        body, st = await raw("GET", "jobs/00000000-0000-0000-0000-000000000000")
        record("get_job_status_unknown_raw", body, st)
        body, st = await raw(
            "GET",
            f"sensors/{s['battery_power']}/schedules/00000000-0000-0000-0000-000000000000",
        )
        record("get_schedule_unknown_job_raw", body, st)

        print("another account's user")
        other = FlexMeasuresClient(
            email=seed["other"]["email"],
            password=seed["other"]["password"],
            host=seed["host"],
            ssl=False,
            session=session,
            request_timeout=20,
            request_retry_timeout=30,
            max_request_attempts=3,
        )
        body, st = await raw("GET", f"sensors/{s['battery_power']}", c=other)
        record("get_sensor_other_account_raw", body, st)
        check(
            st in (403, 404), f"other account cannot read the home sensor (HTTP {st})"
        )
        try:
            await other.get_sensor(s["battery_power"], parse_json_fields=True)
            check(False, "client raised for another account's sensor")
        except Exception as err:  # noqa: BLE001
            check(True, f"client raises {type(err).__name__}: {str(err)[:100]}")

        bad = FlexMeasuresClient(
            email=seed["email"],
            password="wrong-password",
            host=seed["host"],
            ssl=False,
            session=session,
            request_timeout=20,
            request_retry_timeout=30,
            max_request_attempts=3,
        )
        async with session.post(
            seed["url"] + "/api/requestAuthToken",
            json={"email": seed["email"], "password": "wrong-password"},
        ) as r:
            record(
                "post_request_auth_token_bad_password_raw",
                await r.json(content_type=None),
                r.status,
            )
        try:
            await bad.get_access_token()
            check(False, "wrong password raises")
        except Exception as err:  # noqa: BLE001
            check(True, f"wrong password -> {type(err).__name__}: {str(err)[:100]}")

    print(f"{len(FAILURES)} failed" if FAILURES else "all checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
