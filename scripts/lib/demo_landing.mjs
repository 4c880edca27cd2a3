// The demo's landing page as a first-time user meets it (scripts/demo --check):
// headless Chromium opens `/` with no stored login, logs in on HA's login page
// as the demo user, and must land on the demo dashboard with the schedule card
// drawing bars, no HTTP-config dialog, and no console errors.
//
//   node scripts/lib/demo_landing.mjs BASE_URL USERNAME PASSWORD DASHBOARD_PATH SCREENSHOT
// Exit 0 and one summary line when all holds; 1 and the reasons otherwise.
import { launchChromium, logIn, watchPage } from "./ha_client.mjs";

const [base, username, password, dashboard, screenshot] = process.argv.slice(2);
const CARD = "flexmeasures-schedule-card";
const problems = [];
const errors = [];
const browser = await launchChromium();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, serviceWorkers: "block", locale: "en-GB" });
  const page = await context.newPage();
  watchPage(page, errors);
  await page.goto(`${base}/`);
  await logIn(page, username, password);
  await page.waitForURL((url) => url.pathname !== "/" && !url.pathname.startsWith("/auth"), { timeout: 60_000 });
  const bars = page.locator(`${CARD} rect.bar`);
  await page.locator(`${CARD} svg`).first().waitFor({ timeout: 60_000 }).catch(() => problems.push("no schedule card on the landing page"));
  // The site's card: both devices' bars under the grid connection's line.
  await page.locator(`${CARD} line.capacity`).first().waitFor({ state: "attached", timeout: 60_000 }).catch(() => problems.push("the site card shows no grid capacity line"));
  await page.waitForFunction(() => !document.getElementById("ha-launch-screen"));
  await page.waitForTimeout(1500); // a dialog opened after load would show by now
  const landed = new URL(page.url()).pathname;
  if (!landed.startsWith(dashboard)) problems.push(`landed on ${landed}, not on ${dashboard}`);
  const count = await bars.count();
  if (count === 0) problems.push("the schedule card shows no bars");
  const text = await page.locator("body").innerText();
  for (const unwanted of ["Confirm new HTTP server configuration", "Translation error", "Entity not found"]) {
    if (text.includes(unwanted)) problems.push(`the page shows "${unwanted}"`);
  }
  if (await page.locator("ha-dialog[open], ha-md-dialog[open], ha-wa-dialog[open]").count()) problems.push("a dialog covers the page");
  if (!(await page.locator("ha-sidebar").getByText("FlexMeasures", { exact: true }).count())) problems.push("no FlexMeasures dashboard in the sidebar");
  await page.screenshot({ path: screenshot });
  problems.push(...errors.map((e) => `console: ${e}`));
  if (problems.length) {
    console.error(`landing page check FAILED (${landed}, screenshot ${screenshot}):\n  ${problems.join("\n  ")}`);
    process.exitCode = 1;
  } else {
    console.log(`landing page: ${landed} with the schedule cards (site and battery), ${count} bars, no dialog, no console errors (${screenshot})`);
  }
} finally {
  await browser.close();
}
