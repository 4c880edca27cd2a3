"""Record how a real FlexMeasures server answers every request the integration makes.

    python3 scripts/fmserver/record.py --seed $FLEXMEASURES_SERVER_DIR/seed.json \
        --out tests/fixtures/recorded

Runs against the server of ``scripts/flexmeasures-server`` (its seed file gives the
URL, accounts and ids), with the standard library only, so any Python >= 3.11 runs
it: the server's own venv (then ``rq`` is importable and the CANCELED and STOPPED job
statuses are recorded too, with RQ's own cancel and stop-job commands) or a Home
Assistant test environment (``tests/live/test_recordings.py`` imports it).

Each recording is ``<name>.json``: the FlexMeasures version, the request (method,
path, query, body), the HTTP status and the body, with volatile values (job ids,
timestamps, access tokens) replaced by placeholders, so a re-recording differs only
where the server's answers did. Ids come from the seed and are the same on every
fresh server. The sensor it creates is deleted again, where the server manages to.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import http.client
import json
from pathlib import Path
import re
import sys
import time
from typing import Any
from urllib.error import HTTPError
from urllib.parse import parse_qsl, urlencode, urlsplit
import urllib.request

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIMESTAMP = re.compile(
    r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?"
)
UUID_MARK = "<uuid>"
TIMESTAMP_MARK = "<timestamp>"
TOKEN_MARK = "<token>"
SECRET_KEYS = frozenset({"auth_token", "password"})
# Server tracebacks name this machine's paths: kept as a marker, their type kept.
TRACEBACK_KEYS = frozenset({"exc-info", "exc_info"})
TRACEBACK_MARK = "<traceback>"
JOB_WAIT = 60.0  # seconds a scheduling job may take here
TERMINAL = frozenset({"FINISHED", "FAILED", "CANCELED", "STOPPED"})


@dataclass(frozen=True, kw_only=True)
class Answer:
    """One HTTP exchange, as sent and as answered (not normalised yet)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    answer: Any
    location: str | None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hand 3xx answers back instead of following them, as the client does."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        """Do not follow."""
        return


class Server:
    """A FlexMeasures server reached with urllib, with one user's access token."""

    def __init__(self, url: str, email: str, password: str) -> None:
        """Remember where and who; no I/O."""
        self.url = url.rstrip("/")
        self.email = email
        self.password = password
        self.token: str | None = None
        self._opener = urllib.request.build_opener(_NoRedirect)

    def send(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        auth: bool = True,
    ) -> Answer:
        """Send one request and return the answer, whatever its status."""
        if auth and self.token is None:
            self.login()
        full = self.url + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Content-Type": "application/json"}
        if auth and self.token:
            headers["Authorization"] = self.token
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            full, data=data, method=method, headers=headers
        )
        try:
            with self._opener.open(request, timeout=30) as response:
                status, raw, location = response.status, response.read(), None
        except HTTPError as err:
            status, raw = err.code, err.read()
            location = err.headers.get("Location")
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = raw.decode(errors="replace")
        return Answer(
            method=method,
            path=path,
            query=dict(query or {}),
            body=body,
            status=status,
            answer=answer,
            location=location,
        )

    def login(self) -> Answer:
        """Get an access token for this user."""
        answer = self.send(
            "POST",
            "/api/requestAuthToken",
            body={"email": self.email, "password": self.password},
            auth=False,
        )
        if answer.status != http.client.OK:
            raise RuntimeError(f"Cannot log in: {answer.status} {answer.answer}")
        self.token = str(answer.answer["auth_token"])
        return answer


def normalise(value: Any, key: str | None = None) -> Any:
    """Replace job ids, timestamps and tokens by placeholders, keeping types."""
    if isinstance(value, dict):
        return {k: normalise(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(item) for item in value]
    if isinstance(value, str):
        if key in SECRET_KEYS:
            return TOKEN_MARK
        if key in TRACEBACK_KEYS:
            return TRACEBACK_MARK
        return TIMESTAMP.sub(TIMESTAMP_MARK, UUID.sub(UUID_MARK, value))
    return value


def shape(value: Any) -> Any:
    """Return the shape of a JSON value: keys and value types, not values.

    A list's shape is the shapes of its items, each once, in order of appearance.
    """
    if isinstance(value, dict):
        return {key: shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        shapes: list[Any] = []
        for item in value:
            if (item_shape := shape(item)) not in shapes:
                shapes.append(item_shape)
        return shapes
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    if isinstance(value, (int, float)):
        return "number"
    return "str"


def document(answer: Answer, version: str, note: str) -> dict[str, Any]:
    """Return what a recording file holds."""
    return {
        "flexmeasures_version": version,
        "note": note,
        "request": normalise(
            {
                "method": answer.method,
                "path": answer.path,
                "query": answer.query,
                "json": answer.body,
            }
        ),
        "status": answer.status,
        "location": normalise(answer.location),
        "body": normalise(answer.answer),
    }


def _slot(moment: datetime, minutes: int = 15) -> datetime:
    """Return the start of the slot holding ``moment``."""
    return moment.replace(
        minute=moment.minute - moment.minute % minutes, second=0, microsecond=0
    )


class Recorder:
    """Drives one seeded server through the integration's requests."""

    def __init__(self, seed: dict[str, Any], *, rq_control: bool) -> None:
        """Use the seed's home account; RQ commands only when ``rq`` imports."""
        self.seed = seed
        self.home = Server(seed["url"], seed["email"], seed["password"])
        self.version = str(seed["flexmeasures_version"])
        self.rq_control = rq_control
        self.recordings: dict[str, dict[str, Any]] = {}
        self.now = datetime.now(UTC)

    def keep(self, name: str, answer: Answer, note: str) -> Answer:
        """Store one answer under a name."""
        self.recordings[name] = document(answer, self.version, note)
        return answer

    # --- the requests -----------------------------------------------------------

    def record_all(self) -> dict[str, dict[str, Any]]:
        """Record every request; return the recordings by name."""
        for step in (
            self.record_connection,
            self.record_inventory,
            self.record_sensor_data,
            self.record_forecasts,
            self.record_add_sensor,
            self.record_scheduling,
            self.record_job_control,
            self.record_fallback,
            self.record_unmet_target,
            self.record_site,
            self.record_site_prices,
        ):
            step()
        return self.recordings

    def record_connection(self) -> None:
        """Versions, health and logins, good and bad."""
        home = self.home
        self.keep("versions", home.send("GET", "/api/", auth=False), "get_versions")
        self.keep(
            "health_ready",
            home.send("GET", "/api/v3_0/health/ready", auth=False),
            "readiness",
        )
        self.keep("auth_token", home.login(), "get_access_token")
        for name, email, password, note in (
            ("auth_token_wrong_password", home.email, "not-the-password", "401"),
            ("auth_token_unknown_email", "nobody@example.com", "whatever1", "404"),
            ("auth_token_empty_password", home.email, "", "no password"),
        ):
            self.keep(
                name,
                home.send(
                    "POST",
                    "/api/requestAuthToken",
                    body={"email": email, "password": password},
                    auth=False,
                ),
                note,
            )
        self.keep(
            "unauthorized",
            Server(home.url, home.email, home.password).send(
                "GET", "/api/v3_0/users", auth=False
            ),
            "an API request without a token",
        )

    def record_inventory(self) -> None:
        """Users, account, assets and sensors, as the client asks for them."""
        home = self.home
        self.keep("users", home.send("GET", "/api/v3_0/users"), "get_user/account")
        self.keep(
            "account",
            home.send("GET", f"/api/v3_0/accounts/{self.seed['account_id']}"),
            "get_account",
        )
        self.keep(
            "account_other",
            home.send("GET", f"/api/v3_0/accounts/{self.seed['other']['account_id']}"),
            "another account's",
        )
        self.keep(
            "assets",
            home.send(
                "GET",
                "/api/v3_0/assets",
                query={
                    "all_accessible": "False",
                    "sort_by": "id",
                    "sort_dir": "asc",
                    "include_public": "False",
                },
            ),
            "get_assets: flex_model, flex_context, attributes arrive as JSON strings",
        )
        self.keep("sensors", home.send("GET", "/api/v3_0/sensors"), "get_sensors")
        battery = self.seed["sensors"]["battery_power"]
        self.keep(
            "sensor", home.send("GET", f"/api/v3_0/sensors/{battery}"), "get_sensor"
        )
        self.keep(
            "sensor_unknown",
            home.send("GET", "/api/v3_0/sensors/999999"),
            "get_sensor of a sensor that does not exist",
        )

    def _data_query(self, unit: str) -> dict[str, str]:
        """Return the query of a sensor-data GET for the last 6 hours."""
        start = _slot(self.now) - timedelta(hours=6)
        return {
            "start": start.isoformat(),
            "duration": "PT6H",
            "unit": unit,
            "resolution": "PT15M",
        }

    def record_sensor_data(self) -> None:
        """Sensor data: read, post, and the refusals of both."""
        home = self.home
        sensors, units = self.seed["sensors"], self.seed["units"]
        power = sensors["battery_power"]
        # A month back: no live test counts rows there, so re-recording is harmless.
        start = _slot(self.now) - timedelta(days=30)
        post = {
            "type": "PostSensorDataRequest",
            "start": start.isoformat(),
            "duration": "PT30M",
            # New values each run: the same ones again answer ALREADY_RECEIVED.
            "values": [
                round(self.now.timestamp() % 1000, 3),
                -round(self.now.timestamp() % 7, 3),
            ],
            "unit": units["battery_power"],
        }
        answer = home.send("POST", f"/api/v3_0/sensors/{power}/data", body=post)
        # Both deployments exist: stored at once (200) without an ingestion worker,
        # accepted with a job (202) with one; each has its own recording.
        if answer.status == 202:
            self.keep(
                "sensor_data_post_accepted",
                answer,
                "post_sensor_data with an ingestion worker: 202 with its job",
            )
        else:
            self.keep(
                "sensor_data_post",
                answer,
                "post_sensor_data without an ingestion worker: stored at once",
            )
        self.keep(
            "sensor_data_post_wrong_unit",
            home.send(
                "POST",
                f"/api/v3_0/sensors/{power}/data",
                body={**post, "unit": "°C"},
            ),
            "422 with a dict message",
        )
        self.keep(
            "sensor_data_post_other_account",
            home.send(
                "POST",
                f"/api/v3_0/sensors/{self.seed['other']['sensors']['battery_power']}"
                "/data",
                body=post,
            ),
            "a sensor of another account",
        )
        self.keep(
            "sensor_data_get",
            home.send(
                "GET",
                f"/api/v3_0/sensors/{power}/data",
                query=self._data_query(units["battery_power"]),
            ),
            "get_sensor_data",
        )
        self.keep(
            "sensor_data_get_unknown_sensor",
            home.send(
                "GET", "/api/v3_0/sensors/999999/data", query=self._data_query("kW")
            ),
            "get_sensor_data of a deleted sensor",
        )
        self.keep(
            "sensor_data_get_wrong_unit",
            home.send(
                "GET",
                f"/api/v3_0/sensors/{power}/data",
                query=self._data_query("°C"),
            ),
            "get_sensor_data in an incompatible unit",
        )

    def record_forecasts(self) -> None:
        """Forecasts: prices posted with a belief time (``prior``), and a refusal."""
        home = self.home
        price = self.seed["sensors"]["price"]
        # Two months back: no schedule or live test reads prices there.
        start = _slot(self.now, 60) - timedelta(days=60)
        post = {
            "type": "PostSensorDataRequest",
            "start": start.isoformat(),
            "duration": "PT2H",
            "values": [round(self.now.timestamp() % 100, 2), 61.5],
            "unit": self.seed["units"]["price"],
            "prior": (start - timedelta(hours=12)).isoformat(),
        }
        answer = home.send("POST", f"/api/v3_0/sensors/{price}/data", body=post)
        self.keep(
            "sensor_data_post_forecast_accepted"
            if answer.status == 202
            else "sensor_data_post_forecast",
            answer,
            "forecast prices with a prior (their belief time)",
        )
        self.keep(
            "sensor_data_post_forecast_other_currency",
            home.send(
                "POST",
                f"/api/v3_0/sensors/{price}/data",
                body={**post, "unit": "SEK/MWh"},
            ),
            "prices in another currency than the sensor's: 422",
        )

    def record_add_sensor(self) -> None:
        """Create a sensor (then delete it again) and a refused creation."""
        home = self.home
        sensor = {
            # Unique per run: FlexMeasures 1.0.1 here fails to delete a sensor
            # (HTTP 500), and a second probe of the same name would be refused.
            "name": f"recording probe {self.now:%Y%m%d%H%M%S}",
            "event_resolution": "PT15M",
            "unit": "kW",
            "generic_asset_id": self.seed["assets"]["battery"],
        }
        answer = self.keep(
            "sensor_add",
            home.send("POST", "/api/v3_0/sensors", body=sensor),
            "add_sensor",
        )
        if isinstance(answer.answer, dict) and "id" in answer.answer:
            home.send("DELETE", f"/api/v3_0/sensors/{answer.answer['id']}")
        self.keep(
            "sensor_add_invalid",
            home.send(
                "POST",
                "/api/v3_0/sensors",
                body={**sensor, "event_resolution": "not a duration"},
            ),
            "add_sensor refused",
        )

    def _trigger(self, start: datetime, hours: int, **changes: Any) -> Answer:
        """Ask for a battery plan as the integration does."""
        body: dict[str, Any] = {
            "start": start.isoformat(),
            "duration": f"PT{hours}H",
            "flex-model": [
                {
                    "sensor": self.seed["sensors"]["battery_power"],
                    "soc-at-start": "5 kWh",
                    "soc-min": "1 kWh",
                    "soc-max": "10 kWh",
                    "power-capacity": "5 kW",
                }
            ],
            "flex-context": {
                "consumption-price": {"sensor": self.seed["sensors"]["price"]}
            },
            "force-new-job-creation": True,
        }
        body.update(changes)
        return self.home.send(
            "POST",
            f"/api/v3_0/assets/{self.seed['assets']['battery']}/schedules/trigger",
            body=body,
        )

    def _job(self, job_id: str) -> Answer:
        """Look a job up once."""
        return self.home.send("GET", f"/api/v3_0/jobs/{job_id}")

    def _follow(self, job_id: str, prefix: str) -> Answer:
        """Poll a job until it ends, keeping the first answer per status."""
        deadline = time.monotonic() + JOB_WAIT
        seen: set[str] = set()
        while True:
            answer = self._job(job_id)
            status = str((answer.answer or {}).get("status", "")).upper()
            if status not in seen:
                seen.add(status)
                self.keep(f"{prefix}_{status.lower()}", answer, f"job status {status}")
            if status in TERMINAL or time.monotonic() > deadline:
                return answer
            time.sleep(0.05)

    def _schedule(self, job_id: str, hours: int) -> Answer:
        """Fetch a schedule as the integration does."""
        return self.home.send(
            "GET",
            f"/api/v3_0/sensors/{self.seed['sensors']['battery_power']}"
            f"/schedules/{job_id}",
            query={"duration": f"PT{hours}H", "unit": "kW"},
        )

    def record_scheduling(self) -> None:
        """Trigger, job statuses, schedules, and their refusals."""
        start = _slot(self.now)
        trigger = self.keep(
            "schedule_trigger", self._trigger(start, 12), "trigger_schedule: 202"
        )
        job_id = str(trigger.answer["job"])
        self._follow(job_id, "job")
        self.keep("schedule", self._schedule(job_id, 12), "get_schedule")
        self.keep(
            "schedule_unknown",
            self._schedule("00000000-0000-4000-8000-000000000000", 12),
            "get_schedule of a job the server does not know",
        )
        self.keep(
            "job_unknown",
            self._job("00000000-0000-4000-8000-000000000000"),
            "job status of a job the server does not know",
        )
        self.keep(
            "schedule_trigger_invalid",
            self._trigger(
                start,
                12,
                **{
                    "flex-model": [
                        {
                            "sensor": self.seed["sensors"]["battery_power"],
                            "soc-at-start": "5 kWh",
                            "soc-max": "banana",
                        }
                    ]
                },
            ),
            "422 with a dict message",
        )
        self.keep(
            "schedule_trigger_other_account",
            self.home.send(
                "POST",
                f"/api/v3_0/assets/{self.seed['other']['assets']['battery']}"
                "/schedules/trigger",
                body={"start": start.isoformat(), "duration": "PT1H"},
            ),
            "another account's asset",
        )
        # A plan far ahead, where no prices are known: the job fails.
        failed = self._trigger(start + timedelta(days=400), 6)
        self.keep("schedule_trigger_no_prices", failed, "a plan without prices")
        if failed.status == http.client.ACCEPTED:
            failed_id = str(failed.answer["job"])
            self._follow(failed_id, "job_no_prices")
            self.keep(
                "schedule_failed_job",
                self._schedule(failed_id, 6),
                "get_schedule of a failed job (may redirect to a fallback)",
            )

    def record_job_control(self) -> None:
        """Record CANCELED and STOPPED, made with RQ's own commands (server venv)."""
        if not self.rq_control:
            return
        from redis import Redis
        from rq.command import send_stop_job_command
        from rq.job import Job

        redis = Redis(port=int(self.seed.get("redis_port", 6379)))
        start = _slot(self.now)
        # A week-long plan keeps the only worker busy for a few seconds: stop it.
        long = self._trigger(start, 168)
        long_id = str(long.answer["job"])
        queued = self._trigger(start, 24)
        queued_id = str(queued.answer["job"])
        Job.fetch(queued_id, connection=redis).cancel()
        self.keep("job_canceled", self._job(queued_id), "job status CANCELED")
        for _ in _until(lambda: _status(self._job(long_id)) != "QUEUED"):
            pass
        send_stop_job_command(redis, long_id)
        for _ in _until(lambda: _status(self._job(long_id)) == "STOPPED"):
            pass
        self.keep("job_stopped", self._job(long_id), "job status STOPPED")

    def record_fallback(self) -> None:
        """Record an infeasible plan: its job fails, its schedule 303s to a fallback.

        The seeded home battery uses scripts/fmserver/pyhooks/fmha_schedulers.py,
        whose fallback drops the state-of-charge minimum; a server seeded before
        that answers 400 here, which is recorded as such.
        """
        battery = self.seed["sensors"]["battery_power"]
        failed = self._trigger(
            _slot(self.now),
            6,
            **{
                "flex-model": [
                    {
                        "sensor": battery,
                        "soc-at-start": "0 kWh",
                        "soc-min": "5 kWh",
                        "soc-max": "10 kWh",
                        "power-capacity": "1 kW",
                    }
                ]
            },
        )
        if failed.status != http.client.ACCEPTED:
            return
        job_id = str(failed.answer["job"])
        self._follow(job_id, "job_infeasible")
        redirect = self._schedule(job_id, 6)
        if redirect.status != http.client.SEE_OTHER or not redirect.location:
            self.keep("schedule_infeasible", redirect, "no fallback configured")
            return
        location = redirect.location.replace(self.home.url, "")
        self.keep(
            "schedule_fallback_redirect",
            dataclasses.replace(redirect, location=location),
            "get_schedule of a job that failed with a fallback: 303 See Other",
        )
        path, _, query = location.partition("?")
        for _ in _until(
            lambda: self.home.send("GET", path, query=dict(parse_qsl(query))).status
            == http.client.OK
        ):
            pass
        self.keep(
            "schedule_fallback",
            self.home.send("GET", path, query=dict(parse_qsl(query))),
            "the fallback job's schedule, where the 303 points",
        )

    def record_unmet_target(self) -> None:
        """Record a target that cannot be reached in time: the job still finishes.

        State-of-charge targets are soft in FlexMeasures 1.0: the plan comes as
        close as it can and the finished job's result lists the target under
        ``unresolved`` with the deviation. Here 1 kWh cannot become 10 kWh
        within an hour at 5 kW.
        """
        start = _slot(self.now)
        trigger = self._trigger(
            start,
            3,
            **{
                "flex-model": [
                    {
                        "sensor": self.seed["sensors"]["battery_power"],
                        "soc-at-start": "1 kWh",
                        "soc-min": "1 kWh",
                        "soc-max": "10 kWh",
                        "power-capacity": "5 kW",
                        "soc-targets": [
                            {
                                "datetime": (start + timedelta(hours=1)).isoformat(),
                                "value": "10 kWh",
                            }
                        ],
                    }
                ]
            },
        )
        job_id = str(trigger.answer["job"])
        for _ in _until(lambda: _status(self._job(job_id)) in TERMINAL):
            pass
        self.keep(
            "job_unmet_target",
            self._job(job_id),
            "job status of a plan that cannot reach its target in time",
        )

    def record_site(self) -> None:
        """Record a site plan: one asset-level job for the battery and the EV charger.

        The trigger names the site (the parent asset) with a flex-model per
        device, each with its power sensor, and a flex-context with the price
        and the grid connection's capacity; each device's plan is then fetched
        from its own sensor with the one job.
        """
        sensors, assets = self.seed["sensors"], self.seed["assets"]
        start = _slot(self.now)
        body = {
            "start": start.isoformat(),
            "duration": "PT12H",
            "flex-model": [
                {
                    "sensor": sensors["battery_power"],
                    "soc-at-start": "5 kWh",
                    "soc-min": "1 kWh",
                    "soc-max": "10 kWh",
                    "power-capacity": "5 kW",
                    "consumption-capacity": "5 kW",
                    "production-capacity": "5 kW",
                },
                {
                    "sensor": sensors["ev_charger_power"],
                    "soc-at-start": "10 kWh",
                    "soc-min": "0 kWh",
                    "soc-max": "60 kWh",
                    "power-capacity": "11 kW",
                    "consumption-capacity": "11 kW",
                    "production-capacity": "0 kW",
                    "soc-targets": [
                        {
                            "datetime": (start + timedelta(hours=8)).isoformat(),
                            "value": "40 kWh",
                        }
                    ],
                },
            ],
            "flex-context": {
                "consumption-price": {"sensor": sensors["price"]},
                "site-power-capacity": "10 kVA",
            },
            "force-new-job-creation": True,
        }
        trigger = self.keep(
            "site_schedule_trigger",
            self.home.send(
                "POST",
                f"/api/v3_0/assets/{assets['site']}/schedules/trigger",
                body=body,
            ),
            "trigger_schedule of a site: one job for several devices (202)",
        )
        job_id = str(trigger.answer["job"])
        self._follow(job_id, "site_job")
        for device, sensor in (
            ("battery", sensors["battery_power"]),
            ("ev_charger", sensors["ev_charger_power"]),
        ):
            self.keep(
                f"site_schedule_{device}",
                self.home.send(
                    "GET",
                    f"/api/v3_0/sensors/{sensor}/schedules/{job_id}",
                    query={"duration": "PT12H", "unit": "kW"},
                ),
                f"get_schedule of the site job for the {device}'s sensor",
            )
        # A battery target that cannot be met in time: the finished job lists it
        # under ``unresolved`` with the battery's asset, not the EV charger's.
        battery_model, ev_model = body["flex-model"]
        unmet = {
            **body,
            "duration": "PT3H",
            "flex-model": [
                {
                    **battery_model,
                    "soc-at-start": "1 kWh",
                    "soc-targets": [
                        {
                            "datetime": (start + timedelta(hours=1)).isoformat(),
                            "value": "10 kWh",
                        }
                    ],
                },
                # No "soc-targets" at all: an empty list fails the job (1.0.1).
                {key: value for key, value in ev_model.items() if key != "soc-targets"},
            ],
        }
        trigger = self.home.send(
            "POST", f"/api/v3_0/assets/{assets['site']}/schedules/trigger", body=unmet
        )
        unmet_id = str(trigger.answer["job"])
        for _ in _until(lambda: _status(self._job(unmet_id)) in TERMINAL):
            pass
        self.keep(
            "site_job_unmet_target",
            self._job(unmet_id),
            "job status of a site plan that misses the battery's target",
        )

    def record_site_prices(self) -> None:
        """Record the prices the card shows over a site's plan.

        A 12-hour plan from a quarter past the hour covers 13 hours: the card
        asks the price sensor for them, hourly, in its unit.
        """
        self.keep(
            "site_prices",
            self.home.send(
                "GET",
                f"/api/v3_0/sensors/{self.seed['sensors']['price']}/data",
                query={
                    "start": _slot(self.now, 60).isoformat(),
                    "duration": "PT13H",
                    "unit": self.seed["units"]["price"],
                    "resolution": "PT1H",
                },
            ),
            "get_sensor_data of the prices over a 12-hour site plan (13 hours)",
        )


def _status(answer: Answer) -> str:
    """Return the job status of a job-status answer."""
    return str((answer.answer or {}).get("status", "")).upper()


def _until(done: Callable[[], bool]) -> Iterator[None]:
    """Yield while ``done`` is false, for at most JOB_WAIT seconds."""
    deadline = time.monotonic() + JOB_WAIT
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)
        yield


def record(seed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Record every answer of the seeded server; RQ commands when rq imports."""
    try:
        import rq  # noqa: F401
    except ImportError:
        rq_control = False
    else:
        rq_control = True
    return Recorder(seed, rq_control=rq_control).record_all()


def main() -> int:
    """Record and write one file per answer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--redis-port", type=int)
    parser.add_argument(
        "--only",
        help="record one step of Recorder only, e.g. 'site' for record_site",
    )
    args = parser.parse_args()
    seed = json.loads(args.seed.read_text(encoding="utf-8"))
    if args.redis_port:
        seed["redis_port"] = args.redis_port
    if args.only:
        recorder = Recorder(seed, rq_control=False)
        getattr(recorder, f"record_{args.only}")()
        recordings = recorder.recordings
    else:
        recordings = record(seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, doc in sorted(recordings.items()):
        path = args.out / f"{name}.json"
        path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        print(f"{doc['status']} {name}", file=sys.stderr)
    host = urlsplit(seed["url"]).netloc
    print(f"{len(recordings)} recordings of {host} in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
