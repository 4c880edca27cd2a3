// Talking to a running Home Assistant from node, and driving Chromium against it.
// Shared by the real-browser tests (tests/browser/*.browser.mjs) and the demo's
// check (scripts/lib/demo_landing.mjs): one websocket client, one REST helper,
// one way to start Chromium and to collect what a page complains about.
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.FM_BROWSER_CHROMIUM || "/usr/bin/chromium";

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
