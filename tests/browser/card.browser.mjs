// Real-browser test of the schedule card: a real `hass`, onboarded and given a
// dashboard through its APIs, against the real FlexMeasures server of
// scripts/flexmeasures-server, and headless Chromium driven by playwright-core.
//
// The flexmeasures entry comes from its config flow with the seeded user, the
// seeded battery becomes a controlled device through the subentry flow (REST),
// and flexmeasures.trigger_schedule (with a response, so it waits) has the
// server compute a real plan that the card then draws. The seeded EV charger
// joins it under their site (the seeded parent asset) and one real site job
// plans both: a second view shows the site's card, its devices stacked.
//
// Run it with scripts/browser-test, which installs everything and sets:
//   FM_BROWSER_HASS      JSON array: the command that runs `python -m homeassistant`
//   FM_BROWSER_SEED      the server's seed.json (default $FLEXMEASURES_SERVER_DIR/seed.json)
//   FM_BROWSER_OUTPUT    where screenshots and the HA log go (test-output/browser)
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import { connectWs, freePort, launchChromium, onboard, postJson, sleep, startHass, stopHass, watchPage, writeConfig } from "../../scripts/lib/ha_client.mjs";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const OUTPUT = path.resolve(REPO, process.env.FM_BROWSER_OUTPUT || "test-output/browser");
const CONFIG = path.join(OUTPUT, "config");
const HASS = JSON.parse(process.env.FM_BROWSER_HASS || '["python3", "-P", "-m", "homeassistant"]');
const DASHBOARD = "flexmeasures-card";
const CARD = "flexmeasures-schedule-card";
const USER = { name: "Browser Test", username: "browser", password: "browser-test-password" };

/** Add the integration through its config flow, as a user would; returns the entry id. */
async function addIntegration(base, tokens, { url, email, password }) {
  const auth = tokens.access_token;
  let flow = await postJson(base, "/api/config/config_entries/flow", { handler: "flexmeasures" }, auth);
  flow = await postJson(base, `/api/config/config_entries/flow/${flow.flow_id}`, { url, email, password, verify_ssl: false }, auth);
  assert.equal(flow.type, "create_entry", JSON.stringify(flow));
  return flow.result.entry_id;
}

/** The controlled-device subentry form, filled in for the seeded battery. */
function controlledDeviceInput(seed, socEntity) {
  return {
    name: "Home battery",
    kind: "battery",
    power_sensor: String(seed.sensors.battery_power),
    soc_entity: socEntity,
    soc_unit: "percent",
    capacity: seed.battery.capacity_kwh,
    soc_min: 10,
    soc_max: 100,
    charge_power: seed.battery.power_kw,
    discharge_power: seed.battery.power_kw,
    roundtrip_efficiency: 90,
    consumption_price_sensor: String(seed.sensors.price),
    horizon: 24,
    auto_reschedule: { interval: 0, soc_drift: 0 },
    s2: {},
  };
}

/** The EV charger's subentry form: the seeded charger, its energy in kWh. */
function evChargerInput(seed, socEntity) {
  return {
    name: "EV charger",
    kind: "ev_charger",
    power_sensor: String(seed.sensors.ev_charger_power),
    soc_entity: socEntity,
    soc_unit: "kwh",
    capacity: 60,
    soc_min: 0,
    soc_max: 60,
    charge_power: 11,
    discharge_power: 0,
    consumption_price_sensor: String(seed.sensors.price),
    horizon: 24,
    auto_reschedule: { interval: 0, soc_drift: 0 },
    s2: {},
  };
}

/** Run a subentry flow of the entry with one form; returns nothing, asserts it was created. */
async function addSubentry(base, auth, entryId, type, input) {
  let sub = await postJson(base, "/api/config/config_entries/subentries/flow", { handler: [entryId, type] }, auth);
  assert.equal(sub.type, "form", JSON.stringify(sub));
  sub = await postJson(base, `/api/config/config_entries/subentries/flow/${sub.flow_id}`, input, auth);
  assert.equal(sub.type, "create_entry", JSON.stringify(sub));
}

/** Wait until a listing command names what was just added; return that item. */
async function listed(ws, type, name) {
  for (let i = 0; i < 120; i++) {
    const found = (await ws.call({ type })).find((item) => item.name === name);
    if (found) return found;
    await sleep(250);
  }
  assert.fail(`${type} lists no ${name}`);
}

/**
 * The seeded EV charger as a second controlled device, and the site that plans
 * it with the battery (the seeded parent asset, its grid connection and price),
 * planned by one real asset-level job. Returns the site's device.
 */
async function setupSite(base, tokens, ws, seed, entryId, capacity) {
  const auth = tokens.access_token;
  await addSubentry(base, auth, entryId, "controlled_device", evChargerInput(seed, "sensor.ev_energy"));
  const ev = await listed(ws, "flexmeasures/schedule/devices", "EV charger");
  const subentries = await ws.call({ type: "config_entries/subentries/list", entry_id: entryId });
  const devices = subentries.filter((s) => s.subentry_type === "controlled_device").map((s) => s.subentry_id);
  assert.equal(devices.length, 2, JSON.stringify(subentries));
  await addSubentry(base, auth, entryId, "site", {
    name: "Home site",
    devices,
    asset_id: String(seed.assets.site),
    site_power_capacity: capacity,
    consumption_price_sensor: String(seed.sensors.price),
    replan_on_prices: false,
  });
  const site = await listed(ws, "flexmeasures/schedule/sites", "Home site");
  // The car must hold 50 kWh by the end of the horizon: it charges for hours.
  const target = new Date(Date.now() + 20 * 3600_000);
  target.setUTCMinutes(0, 0, 0);
  const { response } = await ws.call({
    type: "call_service",
    domain: "flexmeasures",
    service: "trigger_schedule",
    service_data: { device_id: site.device_id, devices: [{ device_id: ev.device_id, soc_targets: [{ datetime: target.toISOString(), value: 50 }] }] },
    return_response: true,
  });
  assert.equal(response.status, "ready", JSON.stringify(response));
  return site;
}

/** The integration against the real FlexMeasures server, a device, a computed plan. */
async function setupSchedule(base, tokens, ws) {
  // The seed file scripts/flexmeasures-server writes into its state dir.
  const seedPath = process.env.FM_BROWSER_SEED || path.join(process.env.FLEXMEASURES_SERVER_DIR || "", "seed.json");
  const seed = JSON.parse(readFileSync(seedPath, "utf8"));
  const entryId = await addIntegration(base, tokens, seed);
  await addSubentry(base, tokens.access_token, entryId, "controlled_device", controlledDeviceInput(seed, "sensor.home_battery_soc"));
  const device = await listed(ws, "flexmeasures/schedule/devices", "Home battery");
  // Charge to 90 % by the end of the horizon; with a response the action waits
  // until the server has computed the plan.
  const target = new Date(Date.now() + 20 * 3600_000);
  target.setUTCMinutes(0, 0, 0);
  const { response } = await ws.call({
    type: "call_service",
    domain: "flexmeasures",
    service: "trigger_schedule",
    service_data: { device_id: device.device_id, soc_targets: [{ datetime: target.toISOString(), value: 90 }] },
    return_response: true,
  });
  assert.equal(response.status, "ready", JSON.stringify(response));
  // The site's grid connection as the seed gives it ("17 kVA").
  const capacity = parseFloat(seed.site_flex_context["site-power-capacity"]);
  return { device, capacity, site: await setupSite(base, tokens, ws, seed, entryId, capacity) };
}

/** Slots of a site's device the card draws a bar for: power planned, not ended. */
function expectedSiteBars(site, member, now) {
  const start = Date.parse(site.start);
  const step = site.resolution * 1000;
  return member.values.filter((v, i) => v !== null && v !== 0 && start + (i + 1) * step > now).length;
}

/** Slots the card shows: those with a value that have not ended yet. */
function expectedBars(schedule, now) {
  const start = Date.parse(schedule.start);
  const step = schedule.resolution * 1000;
  return schedule.values.filter((v, i) => v !== null && start + (i + 1) * step > now).length;
}

describe("schedule card in a real browser", { timeout: 300_000 }, () => {
  let clock, hass, base, tokens, ws, browser, context, page, device, schedule, horizon, site, capacity;
  const consoleErrors = [];
  const foreignRequests = [];
  const wsFramesSent = [];
  const wsFramesReceived = [];

  before(async () => {
    mkdirSync(OUTPUT, { recursive: true });
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    writeConfig(CONFIG, port, "FlexMeasures card test");
    const t0 = Date.now();
    hass = await startHass({ hass: HASS, repo: REPO, config: CONFIG, base, log: path.join(OUTPUT, "home-assistant.log") });
    console.log(`# hass answered after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    tokens = await onboard(base, USER);
    ws = await connectWs(base, tokens.access_token);
    // The API answers during start-up: wait until every integration is set up.
    for (let i = 0; i < 240 && (await ws.call({ type: "get_config" })).state !== "RUNNING"; i++) await sleep(250);
    console.log(`# hass running after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    // HA >= 2026.11 tries the http: YAML as a "pending" config and asks the user
    // to confirm it (a dialog over every page); confirm it as an admin would.
    await ws.call({ type: "http/config/promote" }).catch((err) => {
      if (!["unknown_command", "not_allowed"].includes(err.code)) throw err;
    });

    const t1 = Date.now();
    ({ device, site, capacity } = await setupSchedule(base, tokens, ws));
    console.log(`# entry, two controlled devices, a site and computed schedules after ${((Date.now() - t1) / 1000).toFixed(1)} s`);
    schedule = await ws.call({ type: "flexmeasures/schedule/get", device_id: device.device_id });
    assert.ok(schedule && schedule.values.length, "the device has a schedule");
    horizon = Math.ceil((schedule.values.length * schedule.resolution) / 3600);

    await ws.call({ type: "lovelace/dashboards/create", url_path: DASHBOARD, title: "Energy plan", icon: "mdi:battery-charging", mode: "storage", show_in_sidebar: true, require_admin: false });
    await ws.call({
      type: "lovelace/config/save",
      url_path: DASHBOARD,
      config: {
        title: "Energy plan",
        views: [
          { title: "Plan", path: "plan", cards: [{ type: `custom:${CARD}`, device_id: device.device_id, horizon }] },
          { title: "Site", path: "site", cards: [{ type: `custom:${CARD}`, site: site.device_id, horizon }] },
        ],
      },
    });

    browser = await launchChromium();
    // Service workers blocked so that every request the page makes is seen here.
    context = await browser.newContext({ viewport: { width: 1280, height: 800 }, serviceWorkers: "block", locale: "en-GB", timezoneId: "Europe/Amsterdam" });
    await context.addInitScript((stored) => localStorage.setItem("hassTokens", JSON.stringify(stored)), tokens);
    context.on("request", (request) => {
      const url = new URL(request.url());
      if (!["data:", "blob:"].includes(url.protocol) && url.hostname !== "127.0.0.1") foreignRequests.push(request.url());
    });
    // The card clips to the slot that contains "now": pin the browser's clock
    // inside the second slot so the expected bars cannot change mid-test.
    clock = Date.parse(schedule.start) + 1.5 * schedule.resolution * 1000;
    await context.clock.setFixedTime(clock);
    page = await context.newPage();
    watchPage(page, consoleErrors);
    page.on("websocket", (socket) => {
      socket.on("framesent", ({ payload }) => wsFramesSent.push(String(payload)));
      socket.on("framereceived", ({ payload }) => wsFramesReceived.push(String(payload)));
    });
    await page.goto(`${base}/${DASHBOARD}/plan`);
    await page.locator(`${CARD} svg`).waitFor({ timeout: 60_000 });
  });

  after(async () => {
    await browser?.close();
    ws?.close();
    await stopHass(hass);
    hass?.writeLog();
  });

  it("draws a bar per planned slot", async () => {
    const bars = page.locator(`${CARD} rect.bar`);
    assert.equal(await bars.count(), expectedBars(schedule, clock));
    assert.ok((await page.locator(`${CARD} rect.bar.charging`).count()) > 0, "some slots charge");
  });

  it("draws the state of charge, the price and now", async () => {
    assert.equal(await page.locator(`${CARD} path.soc`).count(), 1);
    assert.match(await page.locator(`${CARD} path.soc`).getAttribute("d"), /^M[\d.]+,[\d.]+L/);
    // The controlled device has the seeded consumption price sensor: its prices
    // over the schedule's window come with the schedule and draw a line.
    assert.ok(schedule.prices, "the schedule carries the price sensor's prices");
    assert.ok(schedule.prices.values.some((value) => value !== null), "some prices are known");
    assert.equal(await page.locator(`${CARD} path.price`).count(), 1);
    assert.match(await page.locator(`${CARD} path.price`).getAttribute("d"), /^M[\d.]+,[\d.]+/);
    assert.equal(await page.locator(`${CARD} line.now`).count(), 1);
  });

  it("names the next charging window and the device", async () => {
    assert.match(await page.locator(`${CARD} .next`).innerText(), /^(Charging .*\d\d:\d\d|No charging planned)/);
    assert.equal(await page.locator(`${CARD} .title`).innerText(), device.name);
  });

  it("looks right on a desktop, on a phone and in dark mode", async () => {
    await page.waitForFunction(() => !document.getElementById("ha-launch-screen"));
    await page.locator(CARD).screenshot({ path: path.join(OUTPUT, "schedule-card.png") });
    await page.screenshot({ path: path.join(OUTPUT, "dashboard.png") });
    const phone = await context.newPage();
    await phone.setViewportSize({ width: 360, height: 740 });
    await phone.addInitScript(() => localStorage.setItem("selectedTheme", JSON.stringify({ theme: "default", dark: true })));
    watchPage(phone, consoleErrors);
    await phone.goto(`${base}/${DASHBOARD}/plan`);
    await phone.locator(`${CARD} svg`).waitFor();
    await phone.waitForFunction(() => !document.getElementById("ha-launch-screen"));
    const box = await phone.locator(`${CARD} svg`).boundingBox();
    assert.ok(box.width >= 280 && box.width <= 360, `chart fits a 360 px phone (${box.width} px)`);
    assert.equal(await phone.locator(`${CARD} rect.bar`).count(), expectedBars(schedule, clock));
    await phone.screenshot({ path: path.join(OUTPUT, "schedule-card-phone-dark.png") });
    await phone.close();
  });

  it("opens its editor with the controlled devices and the site to pick", async () => {
    await page.goto(`${base}/${DASHBOARD}/plan?edit=1`);
    const edit = page.locator("hui-card-options").getByText("Edit", { exact: true }).first();
    await edit.click();
    const editor = page.locator("flexmeasures-schedule-card-editor");
    await editor.waitFor({ timeout: 30_000 });
    await page.locator("flexmeasures-schedule-card-editor ha-form").first().waitFor();
    const schema = await editor.evaluate((node) => node.shadowRoot.querySelector("ha-form").schema);
    const picker = schema.find((field) => field.name === "device_id");
    const devices = await ws.call({ type: "flexmeasures/schedule/devices" });
    assert.deepEqual(picker.selector.select.options, devices.map((d) => ({ value: d.device_id, label: d.name })));
    assert.ok(picker.selector.select.options.some((option) => option.value === device.device_id));
    // With a site, the editor offers it too.
    const sitePicker = schema.find((field) => field.name === "site");
    assert.deepEqual(sitePicker.selector.select.options, [{ value: site.device_id, label: site.name }]);
    await page.waitForTimeout(500);
    await page.screenshot({ path: path.join(OUTPUT, "schedule-card-editor.png") });
    await page.keyboard.press("Escape");
    await page.goto(`${base}/${DASHBOARD}/plan`);
    await page.locator(`${CARD} svg`).waitFor();
  });

  it("refreshes when a new schedule is announced", async () => {
    // The card's own subscription (any user who may read the device), not the
    // admin-only bus event: a real plan must arrive as an event frame on it.
    const subscribe = wsFramesSent.map((f) => JSON.parse(f)).find((m) => m.type === "flexmeasures/schedule/subscribe");
    assert.ok(subscribe, "the card subscribed with flexmeasures/schedule/subscribe");
    assert.ok(!wsFramesSent.some((f) => f.includes('"subscribe_events"') && f.includes("flexmeasures_schedule_updated")));
    const announced = () =>
      wsFramesReceived.some((f) => {
        const messages = [].concat(JSON.parse(f));
        return messages.some((m) => m.id === subscribe.id && m.type === "event" && m.event.device_id === device.device_id);
      });
    const asked = () => wsFramesSent.filter((f) => f.includes('"flexmeasures/schedule/get"')).length;
    const before = asked();
    const target = new Date(Date.now() + 18 * 3600_000);
    target.setUTCMinutes(0, 0, 0);
    const { response } = await ws.call({
      type: "call_service",
      domain: "flexmeasures",
      service: "trigger_schedule",
      service_data: { device_id: device.device_id, soc_targets: [{ datetime: target.toISOString(), value: 80 }] },
      return_response: true,
    });
    assert.equal(response.status, "ready", JSON.stringify(response));
    for (let i = 0; i < 40 && !(announced() && asked() > before); i++) await sleep(250);
    assert.ok(announced(), "the subscription's event frame reached the page");
    assert.ok(asked() > before, "the card asked for the schedule again");
  });

  it("stacks a site's two devices under its grid capacity", async () => {
    const sitePage = await context.newPage();
    watchPage(sitePage, consoleErrors);
    // The site's plans as the card received them (its site feed's events).
    const plans = [];
    sitePage.on("websocket", (socket) =>
      socket.on("framereceived", ({ payload }) => {
        for (const m of [].concat(JSON.parse(String(payload)))) {
          if (m.type === "event" && m.event && m.event.device_id === site.device_id) plans.push(m.event);
        }
      }),
    );
    await sitePage.goto(`${base}/${DASHBOARD}/site`);
    await sitePage.locator(`${CARD} svg`).waitFor({ timeout: 60_000 });
    await sitePage.waitForFunction(() => !document.getElementById("ha-launch-screen"));
    const plan = plans.at(-1);
    assert.ok(plan && plan.status === "ready", JSON.stringify(plan));

    const groups = sitePage.locator(`${CARD} g.bars`);
    assert.deepEqual(await groups.evaluateAll((gs) => gs.map((g) => g.getAttribute("aria-label"))), ["Home battery", "EV charger"]);
    for (const [i, member] of plan.devices.entries()) {
      const bars = await groups.nth(i).locator("rect.bar").count();
      assert.equal(bars, expectedSiteBars(plan, member, clock), `bars of ${member.name}`);
      assert.ok(bars > 0, `${member.name} has planned power`);
    }
    // Stacked: in a slot where both charge, the car's bar sits on the battery's.
    const rects = await sitePage.locator(`${CARD} g.bars rect.bar.charging`).evaluateAll((rs) =>
      rs.map((r) => ({ device: r.closest("g").getAttribute("aria-label"), x: +r.getAttribute("x"), y: +r.getAttribute("y"), height: +r.getAttribute("height") })),
    );
    const stacks = rects
      .filter((r) => r.device === "EV charger")
      .map((car) => [rects.find((r) => r.device === "Home battery" && Math.abs(r.x - car.x) < 0.01), car])
      .filter(([battery]) => battery);
    assert.ok(stacks.length > 0, "some slot has both devices charging");
    for (const [battery, car] of stacks) assert.ok(Math.abs(car.y + car.height - battery.y) < 0.01, JSON.stringify({ battery, car }));

    // The grid connection: a line at +capacity, labelled, and in the legend.
    const label = await sitePage.locator(`${CARD} .capacity-label`).textContent();
    assert.equal(parseFloat(label.replace(/^Grid /, "")), capacity, label);
    assert.ok((await sitePage.locator(`${CARD} line.capacity`).count()) >= 1);
    assert.match(await sitePage.locator(`${CARD} .legend`).innerText(), /Grid capacity/);
    assert.equal(await sitePage.locator(`${CARD} .title`).innerText(), site.name);
    await sitePage.locator(CARD).screenshot({ path: path.join(OUTPUT, "site-card.png") });
    await sitePage.close();
  });

  it("loads without console errors or requests outside the HA instance", () => {
    assert.deepEqual(consoleErrors, []);
    assert.deepEqual(foreignRequests, []);
    // Warnings and errors of the integration itself, its library, or a traceback
    // through its code (HA's own default integrations may complain about
    // packages and binaries the test does not install: ffmpeg, gtts, ...).
    const ours = hass
      .logText()
      .split("\n")
      .filter((line) => /(WARNING|ERROR) \(\w+\) \[(custom_components\.flexmeasures|flexmeasures_client)|custom_components\/flexmeasures\/|flexmeasures\/schedule/.test(line))
      .filter((line) => !line.includes("We found a custom integration"));
    assert.deepEqual(ours, []);
  });
});
