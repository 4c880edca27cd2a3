// Talking to a running Home Assistant from node, and driving Chromium against it.
// Shared by the real-browser tests (tests/browser/*.browser.mjs) and the demo's
// check (scripts/lib/demo_landing.mjs): one websocket client, one REST helper,
// one way to start Chromium and to collect what a page complains about.
import { spawn } from "node:child_process";
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";

import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export const CHROMIUM = process.env.FM_BROWSER_CHROMIUM || "/usr/bin/chromium";

const STARTUP_TIMEOUT = 120_000;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** POST JSON to HA's REST API; returns the parsed answer, throws on a non-2xx. */
export async function postJson(base, url, body, token) {
  const response = await fetch(base + url, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`POST ${url}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** A minimal client of HA's websocket API: call({type, ...}) resolves with the result. */
export async function connectWs(base, token) {
  const ws = new WebSocket(`${base.replace("http", "ws")}/api/websocket`);
  const pending = new Map();
  let nextId = 1;
  await new Promise((resolve, reject) => {
    ws.onerror = () => reject(new Error("websocket error"));
    ws.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      if (msg.type === "auth_required") ws.send(JSON.stringify({ type: "auth", access_token: token }));
      else if (msg.type === "auth_ok") resolve();
      else if (msg.type === "auth_invalid") reject(new Error(msg.message));
      else if (msg.type === "result" && pending.has(msg.id)) {
        const { resolve: ok, reject: fail } = pending.get(msg.id);
        pending.delete(msg.id);
        if (msg.success) ok(msg.result);
        else fail(Object.assign(new Error(`${msg.error.code}: ${msg.error.message}`), msg.error));
      }
    };
  });
  return {
    call(message) {
      const id = nextId++;
      ws.send(JSON.stringify({ id, ...message }));
      return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
    },
    close: () => ws.close(),
  };
}

/** Headless Debian Chromium with nothing that talks to the internet by itself. */
export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** Collect a page's console errors and uncaught exceptions, with details, into `errors`. */
export function watchPage(page, errors) {
  page.on("console", async (msg) => {
    if (msg.type() !== "error") return;
    const args = await Promise.all(
      msg.args().map((arg) => arg.evaluate((v) => (v instanceof Error ? v.stack : JSON.stringify(v))).catch(() => "?")),
    );
    errors.push(`${msg.text()} ${args.join(" ")} @ ${msg.location().url}:${msg.location().lineNumber}`);
  });
  page.on("pageerror", (err) => errors.push(`uncaught ${err.name}: ${err.message} ${err.stack || ""} @ ${page.url()}`));
}

/** Log in on HA's login page as a person would (the page `/` redirects to). */
export async function logIn(page, username, password) {
  const user = page.locator('input[name="username"]');
  await user.waitFor({ timeout: 60_000 });
  await user.fill(username);
  await page.locator('input[name="password"]').fill(password);
  await page.locator('input[name="password"]').press("Enter");
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A fresh HA config dir: the integration linked in, the battery's SoC and the EV's energy as sensors. */
export function writeConfig(CONFIG, port, name) {
  rmSync(CONFIG, { recursive: true, force: true });
  mkdirSync(path.join(CONFIG, "custom_components"), { recursive: true });
  const link = (target, name) =>
    symlinkSync(path.relative(path.join(CONFIG, "custom_components"), target), path.join(CONFIG, "custom_components", name));
  link(path.join(REPO, "custom_components/flexmeasures"), "flexmeasures");
  // Onboarding's core-config step done: it would start config flows (met,
  // google_translate, ...) whose packages the test env does not install.
  mkdirSync(path.join(CONFIG, ".storage"));
  writeFileSync(
    path.join(CONFIG, ".storage", "onboarding"),
    JSON.stringify({ version: 4, minor_version: 1, key: "onboarding", data: { done: ["core_config"] } }),
  );
  writeFileSync(
    path.join(CONFIG, "configuration.yaml"),
    `homeassistant:
  name: ${name}
  time_zone: Europe/Amsterdam
  country: NL
  currency: EUR
  unit_system: metric
  latitude: 52.37
  longitude: 4.89
http:
  server_host: 127.0.0.1
  server_port: ${port}
frontend:
recorder:
  purge_keep_days: 1
template:
  - sensor:
      - name: Home battery SoC
        unique_id: home_battery_soc
        unit_of_measurement: "%"
        device_class: battery
        state_class: measurement
        state: "40"
      - name: EV energy
        unique_id: ev_energy
        unit_of_measurement: "kWh"
        device_class: energy_storage
        state: "20"
logger:
  default: warning
`,
  );
}

/** Start `hass` (the command line HASS) on a config dir; resolves once its API answers. */
export async function startHass({ hass: HASS, repo: REPO, config: CONFIG, base, log }) {
  const out = [];
  // Paths relative to the repo: the same inside scripts/in-env's chroot (/src).
  const proc = spawn(HASS[0], [...HASS.slice(1), "--config", path.relative(REPO, CONFIG), "--skip-pip"], {
    cwd: REPO,
    stdio: ["ignore", "pipe", "pipe"],
  });
  for (const stream of [proc.stdout, proc.stderr]) stream.on("data", (chunk) => out.push(chunk));
  proc.writeLog = () => writeFileSync(log, Buffer.concat(out));
  proc.logText = () => Buffer.concat(out).toString();
  const deadline = Date.now() + STARTUP_TIMEOUT;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) {
      proc.writeLog();
      throw new Error(`hass exited with ${proc.exitCode}; see ${log}`);
    }
    try {
      const response = await fetch(`${base}/api/onboarding`);
      if (response.ok) return proc;
    } catch {
      // not listening yet
    }
    await sleep(250);
  }
  proc.kill("SIGTERM");
  throw new Error(`hass did not answer within ${STARTUP_TIMEOUT / 1000} s`);
}

export async function stopHass(proc) {
  if (!proc || proc.exitCode !== null) return;
  const exited = new Promise((resolve) => proc.once("exit", resolve));
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
  await exited;
  clearTimeout(timer);
}

/** Onboard through HA's REST API; returns the tokens as the frontend stores them. */
export async function onboard(base, USER) {
  const clientId = `${base}/`;
  const { auth_code: code } = await postJson(base, "/api/onboarding/users", { client_id: clientId, language: "en", ...USER });
  const response = await fetch(`${base}/auth/token`, {
    method: "POST",
    body: new URLSearchParams({ grant_type: "authorization_code", code, client_id: clientId }),
  });
  if (!response.ok) throw new Error(`token: ${response.status}`);
  const tokens = await response.json();
  const done = new Set((await (await fetch(`${base}/api/onboarding`)).json()).filter((s) => s.done).map((s) => s.step));
  for (const step of ["core_config", "analytics"]) {
    if (!done.has(step)) await postJson(base, `/api/onboarding/${step}`, {}, tokens.access_token);
  }
  await postJson(base, "/api/onboarding/integration", { client_id: clientId, redirect_uri: `${base}/?auth_callback=1` }, tokens.access_token);
  return { ...tokens, hassUrl: base, clientId, expires: Date.now() + tokens.expires_in * 1000 };
}


/** All text a page shows, shadow roots included (what `innerText` of a host misses). */
export function deepText(page) {
  return page.evaluate(() => {
    const parts = [];
    const walk = (node) => {
      if (node.nodeType === Node.TEXT_NODE) {
        if (node.textContent.trim()) parts.push(node.textContent.trim());
        return;
      }
      if (node.nodeType === Node.ELEMENT_NODE && ["SCRIPT", "STYLE"].includes(node.tagName)) return;
      if (node.shadowRoot) walk(node.shadowRoot);
      for (const child of node.childNodes) walk(child);
    };
    walk(document.body);
    return parts.join("\n");
  });
}

/** Texts that show a translation went wrong: HA's error text, raw keys, unfilled placeholders. */
export function translationProblems(text) {
  const problems = [];
  if (text.includes("Translation error")) problems.push("Translation error");
  for (const m of text.matchAll(/component\.flexmeasures\.[\w.]+/g)) problems.push(`raw key ${m[0]}`);
  for (const m of text.matchAll(/\{[a-z_]+\}/g)) problems.push(`placeholder ${m[0]}`);
  return problems;
}
