// The setup wizard in a real browser: a fresh, onboarded `hass` (HA 2026.11) without
// a flexmeasures entry, the real FlexMeasures server of scripts/flexmeasures-server,
// and headless Chromium clicking through Settings -> Devices & services as a user:
// Add integration -> FlexMeasures (a wrong password first), then the entry's
// "Add controlled device" and "Add measurement link" subentry forms.
//
// Every step: no "Translation error", no raw `component.flexmeasures.` key, no
// unfilled `{placeholder}` anywhere on the page (shadow roots included), no console
// error; a screenshot per step in $FM_BROWSER_OUTPUT/wizard/.
//
// Run it with scripts/browser-test (see card.browser.mjs for the environment).
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";

import {
  REPO,
  connectWs,
  deepText,
  freePort,
  launchChromium,
  onboard,
  sleep,
  startHass,
  stopHass,
  translationProblems,
  watchPage,
  writeConfig,
} from "../../scripts/lib/ha_client.mjs";

const OUTPUT = path.join(path.resolve(REPO, process.env.FM_BROWSER_OUTPUT || "test-output/browser"), "wizard");
const CONFIG = path.join(OUTPUT, "config");
const HASS = JSON.parse(process.env.FM_BROWSER_HASS || '["python3", "-P", "-m", "homeassistant"]');
const USER = { name: "Wizard Test", username: "wizard", password: "wizard-test-password" };
// HA's brand images come from the internet, which the test machine does not reach.
const FOREIGN_404 = /Failed to load resource: .*404.* @ http:\/\/127\.0\.0\.1:\d+\/api\/brands\/integration\/(?!flexmeasures\/)/;

describe("setup wizard in a real browser", { timeout: 300_000 }, () => {
  let hass, base, tokens, ws, browser, page, seed, dialog;
  const consoleErrors = [];
  const shown = [];

  /** Screenshot the page and check the text it shows for translation problems. */
  async function step(name) {
    await page.waitForTimeout(400); // let the dialog finish animating
    await page.screenshot({ path: path.join(OUTPUT, `${name}.png`) });
    const text = await deepText(page);
    shown.push(text);
    assert.deepEqual(translationProblems(text), [], `${name}: translation problems`);
    return text;
  }

  /** In an opened entity picker: search for an entity by name and choose it. */
  async function pickEntity(name) {
    const picker = dialog.locator("ha-picker-combo-box");
    await picker.locator("input").fill(name);
    await picker.getByText(name, { exact: true }).click();
    await picker.waitFor({ state: "hidden" });
  }

  before(async () => {
    mkdirSync(OUTPUT, { recursive: true });
    const seedPath = process.env.FM_BROWSER_SEED || path.join(process.env.FLEXMEASURES_SERVER_DIR || "", "seed.json");
    seed = JSON.parse(readFileSync(seedPath, "utf8"));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    writeConfig(CONFIG, port, "FlexMeasures wizard test");
    hass = await startHass({ hass: HASS, repo: REPO, config: CONFIG, base, log: path.join(OUTPUT, "home-assistant.log") });
    tokens = await onboard(base, USER);
    ws = await connectWs(base, tokens.access_token);
    for (let i = 0; i < 240 && (await ws.call({ type: "get_config" })).state !== "RUNNING"; i++) await sleep(250);
    await ws.call({ type: "http/config/promote" }).catch((err) => {
      if (!["unknown_command", "not_allowed", "home_assistant_error"].includes(err.code)) throw err;
    });
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, serviceWorkers: "block", locale: "en-GB", timezoneId: "Europe/Amsterdam" });
    await context.addInitScript((stored) => localStorage.setItem("hassTokens", JSON.stringify(stored)), tokens);
    page = await context.newPage();
    page.setDefaultTimeout(90_000); // a busy 2-core machine: waits, not timings
    watchPage(page, consoleErrors);
    dialog = page.locator("dialog-data-entry-flow");
  });

  after(async () => {
    await page?.screenshot({ path: path.join(OUTPUT, "last.png") }); // what a failure left
    await browser?.close();
    ws?.close();
    await stopHass(hass);
    hass?.writeLog();
  });

  it("shows the setup form as a user meets it", async () => {
    await page.goto(`${base}/config/integrations/dashboard`);
    await page.getByRole("button", { name: "Add integration" }).click();
    await page.getByRole("textbox").first().fill("FlexMeasures");
    await page.getByText("FlexMeasures", { exact: true }).click();
    await dialog.getByText("Connect to FlexMeasures").waitFor();
    const text = await step("1-setup-form");
    for (const label of ["Server URL", "E-mail", "Password", "Verify SSL certificate"]) assert.match(text, new RegExp(`^${label}`, "m"), label);
    assert.match(text, /Enter the address of your FlexMeasures server/);
    assert.match(text, /The e-mail address of the FlexMeasures user Home Assistant logs in as/);
    assert.equal(await dialog.locator('input[type="password"]').count(), 1, "the password field is masked");
  });

  it("says exactly what is wrong with a wrong password, in the form", async () => {
    await dialog.getByRole("textbox", { name: /^Server URL/ }).fill(seed.url);
    await dialog.getByRole("textbox", { name: /^E-mail/ }).fill(seed.email);
    await dialog.locator('input[type="password"]').fill("not-the-password");
    await dialog.getByRole("checkbox", { name: "Verify SSL certificate" }).setChecked(false, { force: true });
    await dialog.getByRole("button", { name: "Submit" }).click();
    await dialog.getByText("FlexMeasures refused this e-mail and password.").waitFor();
    await step("2-wrong-password");
  });

  it("creates the entry with its devices with the right password", async () => {
    await dialog.locator('input[type="password"]').fill(seed.password);
    await dialog.getByRole("button", { name: "Submit" }).click();
    // HA's "Name and assign" step: one row per new device, named as on the server.
    await dialog.getByRole("button", { name: /finish/i }).waitFor({ timeout: 90_000 });
    await step("3-devices-created");
    const names = await dialog.getByRole("textbox", { name: /^Device name/ }).evaluateAll((els) => els.map((el) => el.value));
    assert.ok(names.includes("Home battery") && names.includes("EV charger"), JSON.stringify(names));
    await dialog.getByRole("button", { name: /finish/i }).click();
    await dialog.waitFor({ state: "hidden" });
    await page.goto(`${base}/config/integrations/integration/flexmeasures`);
    await page.getByText(`Home (${seed.url})`).waitFor();
    const text = await step("4-entry");
    for (const device of ["Home battery", "EV charger"]) assert.match(text, new RegExp(device));
    assert.match(text, /\d+ devices/);
  });

  it("adds a controlled device through its form", async () => {
    await page.getByRole("button", { name: "Add controlled device" }).click();
    await dialog.getByText("Add a controlled device").waitFor();
    await dialog.getByRole("textbox", { name: /^Name/ }).fill("Wizard battery");
    // The dropdowns list the account's sensors (their asset, name and unit).
    const options = await dialog.locator("ha-selector-select").evaluateAll((els) => els.map((el) => (el.selector.select.options || []).map((o) => o.label ?? o)));
    assert.ok(options.flat().includes("Home battery › power (kW)"), JSON.stringify(options));
    await dialog.getByRole("button", { name: /^State of charge entity/ }).click();
    await pickEntity("Home battery SoC");
    for (const [label, value] of [[/^Capacity/, seed.battery.capacity_kwh], [/^Maximum charging power/, seed.battery.power_kw]]) {
      const field = dialog.getByRole("spinbutton", { name: label });
      await field.click();
      await field.fill(String(value));
      await field.press("Tab");
    }
    await dialog.getByRole("heading", { name: "Automatic rescheduling" }).click();
    await dialog.getByRole("heading", { name: "S2 connection" }).click();
    const text = await step("5-controlled-device-form");
    assert.match(text, /The FlexMeasures sensor whose power FlexMeasures plans/);
    assert.match(text, /Minutes between new plans/);
    assert.match(text, /Accept S2 connections/);
    // What the form will submit: the fields typed and picked above.
    const data = await dialog.locator("step-flow-form ha-form").first().evaluate((el) => el.data);
    assert.deepEqual(
      [data.name, data.power_sensor, data.soc_entity, data.capacity, data.charge_power],
      ["Wizard battery", String(seed.sensors.battery_power), "sensor.home_battery_soc", seed.battery.capacity_kwh, seed.battery.power_kw],
      JSON.stringify(data),
    );
    await dialog.getByRole("button", { name: "Submit" }).click();
    await dialog.getByText(/Created configuration for/).first().waitFor({ timeout: 90_000 });
    await step("6-controlled-device-created");
    await dialog.getByRole("button", { name: /finish|close/i }).first().click();
    const subentries = await ws.call({ type: "config_entries/subentries/list", entry_id: (await ws.call({ type: "config_entries/get", domain: "flexmeasures" }))[0].entry_id });
    assert.ok(subentries.some((s) => s.title === "Wizard battery" && s.subentry_type === "controlled_device"), JSON.stringify(subentries));
  });

  it("adds a measurement link through its forms", async () => {
    // Adding the controlled device reloads the entry; a subentry flow starts once
    // it is loaded again (slow on a busy machine with many sensors on the server).
    for (let i = 0; i < 240; i++) {
      const [entry] = await ws.call({ type: "config_entries/get", domain: "flexmeasures" });
      if (entry.state === "loaded") break;
      await sleep(250);
    }
    await page.getByRole("button", { name: "Add measurement link" }).click();
    await dialog.getByText("Send an entity to FlexMeasures").waitFor({ timeout: 90_000 });
    await dialog.getByRole("button", { name: /^Entity/ }).click();
    await pickEntity("Home battery SoC");
    await step("7-measurement-link-entity");
    await dialog.getByRole("button", { name: "Submit" }).click();
    await dialog.getByText("Where to send Home battery SoC").waitFor();
    const text = await step("8-measurement-link-sensor");
    assert.match(text, /Home battery SoC reports in %/);
    const options = await dialog.locator("ha-selector-select").first().evaluate((el) => el.selector.select.options.map((o) => o.label ?? o));
    assert.ok(options.includes("Home battery › state of charge (%)"), JSON.stringify(options));
    await dialog.getByRole("button", { name: "Submit" }).click();
    await dialog.getByText(/Created configuration for/).first().waitFor({ timeout: 90_000 });
    await step("9-measurement-link-created");
    await dialog.getByRole("button", { name: /finish|close/i }).first().click();
  });

  it("showed no console errors", () => {
    assert.ok(shown.length >= 9, "every step was checked");
    assert.deepEqual(consoleErrors.filter((e) => !FOREIGN_404.test(e)), []);
  });
});
