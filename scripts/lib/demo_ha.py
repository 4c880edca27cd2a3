"""Configure a fresh Home Assistant for the demo, through its public APIs only.

Run by scripts/demo in the `develop` env (it needs aiohttp), against a hass that
has just started on an empty config directory:

    python scripts/lib/demo_ha.py --ha-url http://127.0.0.1:8123 \
        --seed SERVER_DIR/seed.json --out STATE.json

Steps, each through the API a person's browser would use:
1. onboarding (REST): create the owner user, log in (authorization code ->
   access token), finish the core-config, analytics and integration steps;
2. the `flexmeasures` config flow (REST /api/config/config_entries/flow) with
   the URL and credentials of the seeded FlexMeasures user;
3. wait until that entry is `loaded` (REST /api/config/config_entries/entry);
4. subentry flows (REST /api/config/config_entries/subentries/flow): the demo
   battery as a controlled device (the seeded battery's power sensor, the
   seeded price, the demo SoC sensor), and measurement links: demo battery SoC
   -> the seeded SoC sensor, demo charger power -> the seeded charger sensor; a
   forecast link: the demo's day-ahead price stand-in -> a new price sensor on
   the seeded site; the demo car charger as a controlled device; a site of the
   battery and the car charger under a 10 kVA grid connection;
5. a first plan of the site: `flexmeasures.trigger_schedule` on the site's device
   (websocket, with return_response, so it waits for the server's plan);
6. the dashboard (websocket): a dashboard "FlexMeasures" in the sidebar
   (`lovelace/dashboards/create`) with the site's and the battery's schedule
   cards, the demo entities, the
   controlled device's entities and its plan calendar, and every other entity
   of the flexmeasures entry; the default dashboard of the demo user and of
   the system (`frontend/set_user_data`, `frontend/set_system_data`, key
   `core`, `default_panel`), so it is where the user lands.
Writes the login, the schedule status entity and timings to --out and prints
one line per step.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
import itertools
import json
from pathlib import Path
import sys
import time
from typing import Any

import aiohttp

DOMAIN = "flexmeasures"
USERNAME = "demo"
PASSWORD = "demo-password"  # noqa: S105  # loopback-only demo; printed to the user
DEMO_ENTITIES = [
    "sensor.demo_battery_state_of_charge",
    "input_number.demo_battery_state_of_charge",
    "sensor.demo_charger_power",
    "input_number.demo_charger_power",
    "sensor.demo_car_state_of_charge",
    "input_number.demo_car_state_of_charge",
    "sensor.demo_day_ahead_price",
]
T0 = time.monotonic()


def say(text: str) -> None:
    """Print a progress line with the seconds since start."""
    print(f"[demo-ha +{time.monotonic() - T0:.1f}s] {text}", flush=True)


class DemoError(Exception):
    """A step failed; the message says which and why."""


async def _json(response: aiohttp.ClientResponse, what: str) -> Any:
    """Return the JSON body of a 2xx response, or raise with the body."""
    text = await response.text()
    if response.status >= 300:
        raise DemoError(f"{what}: HTTP {response.status}: {text[:500]}")
    return json.loads(text) if text else None


async def wait_for_http(
    session: aiohttp.ClientSession, base: str, deadline: float
) -> None:
    """Wait until Home Assistant's HTTP server answers the onboarding status."""
    timeout = deadline - time.monotonic()
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{base}/api/onboarding") as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as err:
            last = f"{type(err).__name__}"
        await asyncio.sleep(0.5)
    raise DemoError(
        f"Home Assistant at {base} did not answer in {timeout:.0f} s ({last})"
    )


async def onboard(session: aiohttp.ClientSession, base: str) -> str:
    """Run the onboarding steps; return an access token of the owner user."""
    client_id = f"{base}/"
    async with session.post(
        f"{base}/api/onboarding/users",
        json={
            "client_id": client_id,
            "name": "Demo",
            "username": USERNAME,
            "password": PASSWORD,
            "language": "en",
        },
    ) as response:
        code = (await _json(response, "onboarding: create user"))["auth_code"]
    async with session.post(
        f"{base}/auth/token",
        data={"grant_type": "authorization_code", "code": code, "client_id": client_id},
    ) as response:
        token = (await _json(response, "log in"))["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    async with session.get(f"{base}/api/onboarding") as response:
        done = {s["step"] for s in await _json(response, "onboarding") if s["done"]}
    # ha_prepare.py marked core_config done: its flows (met, ...) never start.
    for step in ("core_config", "analytics"):
        if step in done:
            continue
        async with session.post(
            f"{base}/api/onboarding/{step}", headers=auth
        ) as response:
            await _json(response, f"onboarding: {step}")
    async with session.post(
        f"{base}/api/onboarding/integration",
        headers=auth,
        json={"client_id": client_id, "redirect_uri": f"{base}/?auth_callback=1"},
    ) as response:
        await _json(response, "onboarding: integration")
    return str(token)


async def add_flexmeasures(
    session: aiohttp.ClientSession,
    base: str,
    auth: dict[str, str],
    seed: dict[str, Any],
) -> str:
    """Run the integration's config flow with the seeded user; return the entry id."""
    async with session.post(
        f"{base}/api/config/config_entries/flow",
        headers=auth,
        json={"handler": DOMAIN, "show_advanced_options": False},
    ) as response:
        form = await _json(response, "config flow: start")
    if form.get("type") != "form" or form.get("step_id") != "user":
        raise DemoError(f"config flow: expected the user form, got {form}")
    async with session.post(
        f"{base}/api/config/config_entries/flow/{form['flow_id']}",
        headers=auth,
        json={
            "url": seed["url"],
            "email": seed["email"],
            "password": seed["password"],
            "verify_ssl": False,
        },
    ) as response:
        result = await _json(response, "config flow: user step")
    if result.get("type") != "create_entry":
        raise DemoError(f"config flow: no entry created: {result}")
    return str(result["result"]["entry_id"])


async def wait_loaded(
    session: aiohttp.ClientSession, base: str, auth: dict[str, str], deadline: float
) -> dict[str, Any]:
    """Wait until the flexmeasures entry reports state `loaded`; return it."""
    timeout = deadline - time.monotonic()
    entries: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        async with session.get(
            f"{base}/api/config/config_entries/entry",
            headers=auth,
            params={"domain": DOMAIN},
        ) as response:
            entries = await _json(response, "list config entries")
        for entry in entries:
            if entry.get("state") == "loaded":
                return entry
            if entry.get("state") in (
                "setup_error",
                "migration_error",
                "failed_unload",
            ):
                raise DemoError(f"the flexmeasures entry failed: {entry}")
        await asyncio.sleep(0.5)
    raise DemoError(
        f"the flexmeasures entry is not loaded after {timeout:.0f} s: {entries}"
    )


DEMO_BATTERY = "Demo battery"
DASHBOARD = "flexmeasures-demo"
DASHBOARD_TITLE = "FlexMeasures"
DEMO_SOC = "sensor.demo_battery_state_of_charge"
DEMO_CHARGER = "sensor.demo_charger_power"
DEMO_CAR = "Demo car charger"
DEMO_CAR_SOC = "sensor.demo_car_state_of_charge"
DEMO_SITE = "Demo home"
# The demo's stand-in for a day-ahead price integration (configuration.yaml).
PRICE_SOURCE = "sensor.demo_day_ahead_price"
PRICE_ATTRIBUTE = "prices"
LINKED_PRICE = "Day-ahead price from Home Assistant"
# The grid connection the site's devices share: less than both at full power.
SITE_CAPACITY_KVA = 10


async def subentry_flow(
    session: aiohttp.ClientSession,
    base: str,
    auth: dict[str, str],
    entry_id: str,
    subentry_type: str,
    steps: list[dict[str, Any] | Callable[[dict[str, Any]], list[dict[str, Any]]]],
) -> dict[str, Any]:
    """Run a subentry flow of the entry through its steps; return the result.

    A step is the form's data, or a function of the form shown that returns the
    data of this and the steps that follow.
    """
    # Adding a subentry reloads the entry: wait out the reload of the last one.
    for _ in range(240):
        async with session.post(
            f"{base}/api/config/config_entries/subentries/flow",
            headers=auth,
            json={"handler": [entry_id, subentry_type]},
        ) as response:
            result = await _json(response, f"{subentry_type} flow: start")
        if result.get("reason") != "entry_not_loaded":
            break
        await asyncio.sleep(0.25)
    pending = list(steps)
    while pending:
        step = pending.pop(0)
        if callable(step):
            data, *rest = step(result)
            pending[:0] = rest
        else:
            data = step
        if result.get("type") != "form":
            raise DemoError(f"{subentry_type} flow: expected a form, got {result}")
        async with session.post(
            f"{base}/api/config/config_entries/subentries/flow/{result['flow_id']}",
            headers=auth,
            json=data,
        ) as response:
            step_id = result["step_id"]
            result = await _json(response, f"{subentry_type} flow: {step_id}")
        if result.get("errors"):
            # The form came back: say why, instead of sending the next step to it.
            raise DemoError(f"{subentry_type} flow: {step_id}: {result['errors']}")
    if result.get("type") != "create_entry":
        raise DemoError(f"{subentry_type} flow: nothing created: {result}")
    return dict(result)


async def add_subentries(
    session: aiohttp.ClientSession,
    base: str,
    auth: dict[str, str],
    entry_id: str,
    seed: dict[str, Any],
) -> None:
    """Add the demo battery as a controlled device and link the demo sensors."""
    sensors = seed["sensors"]
    battery = seed["battery"]
    await subentry_flow(
        session,
        base,
        auth,
        entry_id,
        "controlled_device",
        [
            {
                "name": DEMO_BATTERY,
                "kind": "battery",
                "power_sensor": str(sensors["battery_power"]),
                "soc_entity": DEMO_SOC,
                "soc_unit": "percent",
                "capacity": battery["capacity_kwh"],
                "soc_min": 10,
                "soc_max": 100,
                "charge_power": battery["power_kw"],
                "discharge_power": battery["power_kw"],
                "roundtrip_efficiency": 90,
                "consumption_price_sensor": str(sensors["price"]),
                "horizon": 24,
                "auto_reschedule": {"interval": 0, "soc_drift": 0},
            }
        ],
    )
    for entity_id, sensor, aggregation in (
        (DEMO_SOC, sensors["battery_soc"], "last"),
        (DEMO_CHARGER, sensors["ev_charger_power"], "mean"),
    ):
        await subentry_flow(
            session,
            base,
            auth,
            entry_id,
            "measurement_link",
            [
                {"entity_id": entity_id},
                {
                    "sensor": str(sensor),
                    "invert": False,
                    "aggregation": aggregation,
                    "upload_interval": {"hours": 0, "minutes": 5, "seconds": 0},
                },
            ],
        )


async def subentry_ids(
    ws: aiohttp.ClientWebSocketResponse, entry_id: str
) -> dict[str, str]:
    """Return the entry's subentry ids by unique id."""
    listed = await ws_call(ws, type="config_entries/subentries/list", entry_id=entry_id)
    return {
        item["unique_id"]: item["subentry_id"] for item in listed if item["unique_id"]
    }


async def add_price_link(
    session: aiohttp.ClientSession,
    base: str,
    auth: dict[str, str],
    entry_id: str,
    seed: dict[str, Any],
) -> None:
    """Post the stand-in's day-ahead prices to a new FlexMeasures sensor."""
    await subentry_flow(
        session,
        base,
        auth,
        entry_id,
        "forecast_link",
        [
            {"source_type": "attribute"},
            {"source_entity": PRICE_SOURCE},
            {"source_attribute": PRICE_ATTRIBUTE},
            {"source_unit": "EUR/kWh"},
            lambda form: target_sensor(form, seed),
        ],
    )


def target_sensor(form: dict[str, Any], seed: dict[str, Any]) -> list[dict[str, Any]]:
    """Choose the linked price sensor: the one an earlier demo made, or a new one.

    The server outlives a demo run (a second `scripts/demo` uses it again), and
    an asset holds one sensor of a name.
    """
    options = next(
        field["selector"]["select"]["options"]
        for field in form["data_schema"]
        if field["name"] == "sensor"
    )
    made = [option["value"] for option in options if LINKED_PRICE in option["label"]]
    if made:
        return [{"sensor": made[0]}]
    return [
        {"sensor": "new"},
        {
            "asset": str(seed["assets"]["site"]),
            "name": LINKED_PRICE,
            "unit_of_measurement": "EUR/MWh",
            "resolution": {"hours": 1, "minutes": 0, "seconds": 0},
        },
    ]


async def add_site(
    session: aiohttp.ClientSession,
    base: str,
    auth: dict[str, str],
    ws: aiohttp.ClientWebSocketResponse,
    entry_id: str,
    seed: dict[str, Any],
    deadline: float,
) -> dict[str, str]:
    """Add the car charger and the site of both devices; return their subentries.

    Both plan with the prices the forecast link posted; the site replans when
    the link posts new ones. Waits until the link has posted, so the first
    plan has prices.
    """
    sensors = seed["sensors"]
    ids = await subentry_ids(ws, entry_id)
    price_sensor = next(
        unique_id.removeprefix("forecast_link_")
        for unique_id in ids
        if unique_id.startswith("forecast_link_")
    )
    await wait_for_forecast(ws, ids[f"forecast_link_{price_sensor}"], deadline)
    await subentry_flow(
        session,
        base,
        auth,
        entry_id,
        "controlled_device",
        [
            {
                "name": DEMO_CAR,
                "kind": "ev_charger",
                "power_sensor": str(sensors["ev_charger_power"]),
                "soc_entity": DEMO_CAR_SOC,
                "soc_unit": "percent",
                "capacity": 60,
                "soc_min": 0,
                "soc_max": 100,
                "charge_power": 11,
                "discharge_power": 0,
                "consumption_price_sensor": price_sensor,
                "horizon": 24,
                "auto_reschedule": {"interval": 0, "soc_drift": 0},
            }
        ],
    )
    ids = await subentry_ids(ws, entry_id)
    battery = ids[f"controlled_device_{sensors['battery_power']}"]
    car = ids[f"controlled_device_{sensors['ev_charger_power']}"]
    await subentry_flow(
        session,
        base,
        auth,
        entry_id,
        "site",
        [
            {
                "name": DEMO_SITE,
                "devices": [battery, car],
                "asset_id": str(seed["assets"]["site"]),
                "site_power_capacity": SITE_CAPACITY_KVA,
                "consumption_price_sensor": price_sensor,
                "replan_on_prices": True,
            }
        ],
    )
    return {"battery": battery, "car": car, "price_sensor": price_sensor}


async def wait_for_forecast(
    ws: aiohttp.ClientWebSocketResponse, link_subentry: str, deadline: float
) -> None:
    """Wait until the forecast link's entity says it posted."""
    unique_id = f"{link_subentry}_last_forecast_posted"
    while True:
        registry = await ws_call(ws, type="config/entity_registry/list")
        entity_id = next(
            (e["entity_id"] for e in registry if e.get("unique_id") == unique_id),
            None,
        )
        if entity_id is not None:
            states = await ws_call(ws, type="get_states")
            state = next(
                (x["state"] for x in states if x["entity_id"] == entity_id), None
            )
            if state not in (None, "unknown", "unavailable"):
                return
        if time.monotonic() > deadline:
            raise DemoError("the price forecast link did not post")
        await asyncio.sleep(0.5)


async def wait_for_value(
    session: aiohttp.ClientSession,
    base: str,
    auth: dict[str, str],
    entity_id: str,
    deadline: float,
) -> str:
    """Wait until an entity has a state other than unknown/unavailable; return it."""
    state = "missing"
    while time.monotonic() < deadline:
        async with session.get(
            f"{base}/api/states/{entity_id}", headers=auth
        ) as response:
            if response.status == 200:
                state = (await response.json())["state"]
                if state not in ("unknown", "unavailable"):
                    return str(state)
        await asyncio.sleep(0.25)
    raise DemoError(f"{entity_id} has no value ({state})")


async def ws_connect(
    session: aiohttp.ClientSession, base: str, token: str
) -> aiohttp.ClientWebSocketResponse:
    """Open an authenticated websocket to Home Assistant."""
    ws = await session.ws_connect(f"{base}/api/websocket")
    await ws.receive_json()  # auth_required
    await ws.send_json({"type": "auth", "access_token": token})
    if (answer := await ws.receive_json()).get("type") != "auth_ok":
        raise DemoError(f"websocket: {answer}")
    return ws


_MESSAGE_IDS = itertools.count(1)


async def ws_call(ws: aiohttp.ClientWebSocketResponse, **message: Any) -> Any:
    """Send one websocket command (ids increase, as HA requires); return its result."""
    message_id = next(_MESSAGE_IDS)
    await ws.send_json({"id": message_id, **message})
    while (answer := await ws.receive_json()).get("id") != message_id:
        pass
    if not answer.get("success"):
        raise DemoError(f"websocket {message['type']}: {answer.get('error')}")
    return answer.get("result")


async def listed(
    ws: aiohttp.ClientWebSocketResponse, command: str, count: int, deadline: float
) -> list[dict[str, Any]]:
    """Wait until the card's list command names ``count`` items; return them."""
    while len(items := await ws_call(ws, type=command)) < count:
        if time.monotonic() > deadline:
            raise DemoError(f"{command}: {len(items)} of {count} appeared")
        await asyncio.sleep(0.25)
    return list(items)


async def first_schedule(
    ws: aiohttp.ClientWebSocketResponse, deadline: float
) -> dict[str, Any]:
    """Plan the site (battery and car together); return its devices and plan."""
    devices = {
        device["name"]: device
        for device in await listed(ws, "flexmeasures/schedule/devices", 2, deadline)
    }
    (site,) = await listed(ws, "flexmeasures/schedule/sites", 1, deadline)
    now = datetime.now(UTC)
    # From the quarter-hour that is running, so the card has a bar for now.
    start = now.replace(minute=now.minute // 15 * 15, second=0, microsecond=0)
    morning = (now + timedelta(hours=20)).replace(minute=0, second=0, microsecond=0)
    result = await ws_call(
        ws,
        type="call_service",
        domain=DOMAIN,
        service="trigger_schedule",
        service_data={
            "device_id": site["device_id"],
            "start": start.isoformat(),
            "devices": [
                {
                    "device_id": devices[DEMO_BATTERY]["device_id"],
                    "soc_targets": [{"datetime": morning.isoformat(), "value": 90}],
                },
                {
                    "device_id": devices[DEMO_CAR]["device_id"],
                    "soc_targets": [{"datetime": morning.isoformat(), "value": 80}],
                },
            ],
        },
        return_response=True,
    )
    response = result["response"]
    if response.get("status") != "ready":
        raise DemoError(f"the first site plan is not ready: {response}")
    return {
        "device": devices[DEMO_BATTERY],
        "car": devices[DEMO_CAR],
        "site": site,
        "schedule": response,
    }


async def save_dashboard(
    ws: aiohttp.ClientWebSocketResponse,
    entry_id: str,
    planned_devices: dict[str, Any],
    seed: dict[str, Any],
) -> dict[str, Any]:
    """Make the default dashboard show the demo, the plan and the integration."""
    device_id = planned_devices["device"]["device_id"]
    registry = await ws_call(ws, type="config/entity_registry/list")
    ours = [
        e
        for e in registry
        if e.get("config_entry_id") == entry_id
        and not e.get("disabled_by")
        and not e.get("hidden_by")
    ]
    planned = sorted(e["entity_id"] for e in ours if e.get("device_id") == device_id)
    others = sorted(e["entity_id"] for e in ours if e.get("device_id") != device_id)
    calendars = [e for e in planned if e.startswith("calendar.")]
    status = [e for e in planned if e.endswith("_schedule_status")]
    measured = sorted(
        e["entity_id"]
        for e in ours
        if e.get("device_id") != device_id
        and e["entity_id"].startswith("sensor.")
        and not e.get("entity_category")
    )
    cards: list[dict[str, Any]] = [
        {
            "type": "custom:flexmeasures-schedule-card",
            "site": planned_devices["site"]["device_id"],
            "horizon": 24,
        },
        {
            "type": "custom:flexmeasures-schedule-card",
            "device_id": device_id,
            "horizon": 24,
        },
        {
            "type": "entities",
            "title": "Home (demo devices)",
            "entities": DEMO_ENTITIES,
        },
        {
            "type": "entities",
            "title": f"{DEMO_BATTERY}: schedule",
            "entities": [e for e in planned if not e.startswith("calendar.")],
        },
    ]
    if calendars:
        cards.append(
            {"type": "calendar", "initial_view": "listWeek", "entities": calendars}
        )
    if others:
        cards.append({"type": "entities", "title": "FlexMeasures", "entities": others})
    if measured:
        cards.append(
            {
                "type": "history-graph",
                "title": "FlexMeasures",
                "hours_to_show": 24,
                "entities": measured,
            }
        )
    cards.append(
        {
            "type": "markdown",
            "title": "FlexMeasures server",
            "content": (
                f"[{seed['url']}]({seed['url']}): log in as `{seed['email']}` "
                f"with password `{seed['password']}`."
            ),
        }
    )
    config = {
        "title": DASHBOARD_TITLE,
        "views": [{"title": "Plan", "path": "plan", "cards": cards}],
    }
    await ws_call(
        ws,
        type="lovelace/dashboards/create",
        url_path=DASHBOARD,
        title=DASHBOARD_TITLE,
        icon="mdi:home-battery",
        mode="storage",
        show_in_sidebar=True,
        require_admin=False,
    )
    await ws_call(ws, type="lovelace/config/save", url_path=DASHBOARD, config=config)
    # The dashboard a user lands on: the demo user's own choice (Profile ->
    # Dashboard) and the system default (Settings -> Dashboards), both the
    # frontend's `core` data; HA 2026.11 otherwise opens the generated Overview.
    system = await ws_call(ws, type="frontend/get_system_data", key="core")
    await ws_call(
        ws,
        type="frontend/set_system_data",
        key="core",
        value={**((system or {}).get("value") or {}), "default_panel": DASHBOARD},
    )
    await ws_call(
        ws,
        type="frontend/set_user_data",
        key="core",
        value={"default_panel": DASHBOARD},
    )
    return {
        "entities": len(ours),
        "schedule_status_entity": status[0] if status else None,
    }


async def main() -> int:
    """Configure Home Assistant; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ha-url", required=True)
    parser.add_argument("--seed", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--timeout", type=float, default=480)
    args = parser.parse_args()
    base = args.ha_url.rstrip("/")
    seed = json.loads(args.seed.read_text(encoding="utf-8"))
    figures: dict[str, float] = {}
    deadline = T0 + args.timeout
    try:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=60)
        ) as session:
            await wait_for_http(session, base, deadline)
            figures["http_up_s"] = round(time.monotonic() - T0, 1)
            say(f"Home Assistant answers at {base}")
            token = await onboard(session, base)
            auth = {"Authorization": f"Bearer {token}"}
            say(f"onboarded: owner user {USERNAME!r}")
            entry_id = await add_flexmeasures(session, base, auth, seed)
            say(f"config flow created entry {entry_id} for {seed['email']}")
            entry = await wait_loaded(session, base, auth, deadline)
            figures["loaded_s"] = round(time.monotonic() - T0, 1)
            say(f"entry {entry['title']!r} is {entry['state']}")
            await add_subentries(session, base, auth, entry_id, seed)
            say(f"subentries: controlled device {DEMO_BATTERY!r}, 2 measurement links")
            # The link reads the price stand-in's slots and the plan starts from
            # the devices' SoC: the templates must have run (on a slow machine
            # they may not have yet when the entry is loaded).
            for entity_id in (PRICE_SOURCE, DEMO_SOC, DEMO_CAR_SOC):
                value = await wait_for_value(session, base, auth, entity_id, deadline)
                say(f"{entity_id} is {value}")
            await add_price_link(session, base, auth, entry_id, seed)
            say(f"forecast link: {PRICE_SOURCE} -> {LINKED_PRICE!r}")
            ws = await ws_connect(session, base, token)
            async with ws:
                site = await add_site(session, base, auth, ws, entry_id, seed, deadline)
                say(
                    f"site {DEMO_SITE!r}: {DEMO_BATTERY!r} and {DEMO_CAR!r} under "
                    f"{SITE_CAPACITY_KVA} kVA, prices from sensor "
                    f"{site['price_sensor']}"
                )
                planned = await first_schedule(ws, deadline)
                figures["scheduled_s"] = round(time.monotonic() - T0, 1)
                plan = planned["schedule"]
                say(
                    f"first site plan {plan['status']}: "
                    f"{len(plan.get('devices', {}))} devices"
                )
                dashboard = await save_dashboard(ws, entry_id, planned, seed)
            say(f"dashboard saved ({dashboard['entities']} flexmeasures entities)")
    except DemoError as err:
        print(f"[demo-ha] ERROR: {err}", file=sys.stderr)
        return 1
    args.out.write_text(
        json.dumps(
            {
                "ha_url": base,
                "username": USERNAME,
                "password": PASSWORD,
                "access_token": token,
                "entry_id": entry_id,
                "schedule_status_entity": dashboard["schedule_status_entity"],
                "dashboard": f"/{DASHBOARD}/plan",
                **figures,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
