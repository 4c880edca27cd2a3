// Unit tests of the card's data shaping: `node --test frontend-tests/`.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  chartModel,
  clipPrices,
  clipSchedule,
  clipSite,
  FlexMeasuresScheduleCard,
  linear,
  makeFormatters,
  niceScale,
  normalizeConfig,
  peakText,
  powerBars,
  priceStepPath,
  scheduleWindows,
  siteChartModel,
  siteLabel,
  socPath,
  stackedBars,
  stackExtent,
  timeTicks,
  windowText,
} from "../custom_components/flexmeasures/frontend/flexmeasures-schedule-card.js";

const HOUR = 3600 * 1000;
const T0 = Date.parse("2026-11-20T00:00:00Z");
const iso = (ms) => new Date(ms).toISOString();
const fmt = makeFormatters("en-GB", "UTC");

/** A schedule of `values` in slots of `minutes`, starting at T0. */
function schedule(values, { minutes = 15, soc = null, prices = null, ...rest } = {}) {
  return {
    device_id: "dev1",
    name: "Home battery",
    status: "ready",
    start: iso(T0),
    end: iso(T0 + values.length * minutes * 60 * 1000),
    resolution: minutes * 60,
    unit: "kW",
    values,
    soc,
    soc_unit: soc ? "%" : null,
    prices,
    windows: [],
    updated: null,
    ...rest,
  };
}

describe("clipSchedule", () => {
  it("returns no slots for a missing or empty schedule", () => {
    for (const s of [null, undefined, schedule([]), { values: [1], start: "nonsense", resolution: 900 }]) {
      const clip = clipSchedule(s, T0, 24);
      assert.deepEqual(clip.slots, []);
      assert.deepEqual(clip.prices, []);
    }
  });

  it("keeps every slot of a schedule inside the horizon, gaps as null", () => {
    const clip = clipSchedule(schedule([1, null, -2, 0]), T0 - HOUR, 24);
    assert.equal(clip.start, T0);
    assert.equal(clip.end, T0 + HOUR);
    assert.deepEqual(clip.slots.map((s) => s.value), [1, null, -2, 0]);
    assert.deepEqual(clip.slots.map((s) => s.start - T0), [0, 15, 30, 45].map((m) => m * 60000));
  });

  it("starts at the slot that contains now and cuts at the horizon", () => {
    const values = Array.from({ length: 96 }, (_, i) => i); // 24 h of 15 min
    const now = T0 + 2 * HOUR + 7 * 60000; // inside slot 8
    const clip = clipSchedule(schedule(values), now, 3);
    assert.equal(clip.start, T0 + 2 * HOUR);
    assert.equal(clip.end, T0 + 5 * HOUR);
    assert.equal(clip.slots.length, 12);
    assert.equal(clip.slots[0].value, 8);
    assert.equal(clip.slots.at(-1).value, 19);
  });

  it("cuts the last slot at a horizon that is not a slot multiple", () => {
    const clip = clipSchedule(schedule([1, 1, 1], { minutes: 60 }), T0, 1.5);
    assert.equal(clip.slots.length, 2);
    assert.equal(clip.slots[1].end, T0 + 1.5 * HOUR);
  });

  it("shows the last horizon of a schedule that is over", () => {
    const clip = clipSchedule(schedule([1, 2, 3, 4], { minutes: 60 }), T0 + 10 * HOUR, 2);
    assert.deepEqual(clip.slots.map((s) => s.value), [3, 4]);
  });

  it("carries the SoC of the slot before the view as the line's start", () => {
    const s = schedule([1, 1, 1], { minutes: 60, soc: [20, 40, null] });
    const clip = clipSchedule(s, T0 + HOUR + 1, 24);
    assert.equal(clip.socBefore, 20);
    assert.deepEqual(clip.slots.map((x) => x.soc), [40, null]);
    assert.equal(clipSchedule(s, T0, 24).socBefore, null);
  });

  it("treats non-numbers in the series as gaps", () => {
    const clip = clipSchedule(schedule([Number.NaN, "3", 2], { soc: [null, 10, Infinity] }), T0, 24);
    assert.deepEqual(clip.slots.map((s) => [s.value, s.soc]), [[null, null], [null, 10], [2, null]]);
  });
});

describe("clipPrices", () => {
  const prices = { start: iso(T0 - HOUR), resolution: 3600, unit: "EUR/MWh", values: [50, 100, null, 80] };

  it("returns nothing without prices", () => {
    assert.deepEqual(clipPrices(null, T0, T0 + HOUR), []);
    assert.deepEqual(clipPrices({ start: iso(T0), resolution: 0, values: [1] }, T0, T0 + HOUR), []);
  });

  it("cuts hourly prices to the view of quarter-hour slots", () => {
    const out = clipPrices(prices, T0 + 15 * 60000, T0 + 2.5 * HOUR);
    assert.deepEqual(
      out.map((p) => [p.start - T0, p.end - T0, p.value]),
      [
        [15 * 60000, HOUR, 100],
        [HOUR, 2 * HOUR, null],
        [2 * HOUR, 2.5 * HOUR, 80],
      ],
    );
  });
});

describe("niceScale", () => {
  it("rounds limits outwards and includes zero for a flat series", () => {
    assert.deepEqual(niceScale(0, 0), { min: 0, max: 1, step: 0.25, ticks: [0, 0.25, 0.5, 0.75, 1] });
    assert.equal(niceScale(3, 3).min, 0);
    assert.equal(niceScale(-3, -3).max, 0);
    const s = niceScale(-3.2, 7.4);
    assert.ok(s.min <= -3.2 && s.max >= 7.4);
    assert.ok(s.ticks.includes(0));
  });

  it("survives non-finite input", () => {
    assert.deepEqual(niceScale(Infinity, -Infinity).ticks, [0, 0.25, 0.5, 0.75, 1]);
  });
});

describe("powerBars", () => {
  const x = linear(T0, T0 + HOUR, 0, 400);
  const y = linear(-5, 5, 100, 0); // zero at 50 px

  it("draws charging up and discharging down from the zero line", () => {
    const clip = clipSchedule(schedule([5, -2.5, 0, null]), T0, 24);
    const bars = powerBars(clip.slots, x, y, 0);
    assert.equal(bars.length, 3, "a gap has no bar");
    const [up, down, idle] = bars;
    assert.deepEqual([up.kind, up.y, up.height], ["charging", 0, 50]);
    assert.deepEqual([down.kind, down.y, down.height], ["discharging", 50, 25]);
    assert.deepEqual([idle.kind, idle.height], ["idle", 0]);
    assert.deepEqual(bars.map((b) => b.x), [0, 100, 200]);
    assert.ok(bars.every((b) => b.width === 100));
  });
});

describe("socPath", () => {
  const x = linear(T0, T0 + 4 * HOUR, 0, 400);
  const y = linear(0, 100, 100, 0);

  it("puts each value at the end of its slot and breaks at gaps", () => {
    const clip = clipSchedule(schedule([1, 1, 1, 1], { minutes: 60, soc: [10, null, 30, 40] }), T0, 24);
    assert.equal(socPath(clip, x, y), "M100,90M300,70L400,60");
  });

  it("starts at the left edge with the SoC before the view", () => {
    const s = schedule([1, 1, 1, 1, 1], { minutes: 60, soc: [10, 20, 30, 40, 50] });
    const clip = clipSchedule(s, T0 + HOUR, 24);
    const xv = linear(clip.start, clip.end, 0, 400);
    assert.equal(socPath(clip, xv, y), "M0,90L100,80L200,70L300,60L400,50");
  });

  it("is empty without SoC", () => {
    assert.equal(socPath(clipSchedule(schedule([1, 2]), T0, 24), x, y), "");
  });
});

describe("priceStepPath", () => {
  it("draws steps and breaks at gaps", () => {
    const x = linear(T0, T0 + 3 * HOUR, 0, 300);
    const y = linear(0, 100, 100, 0);
    const prices = clipPrices({ start: iso(T0), resolution: 3600, values: [10, 20, null] }, T0, T0 + 3 * HOUR);
    assert.equal(priceStepPath(prices, x, y), "M0,90L100,90L100,80L200,80");
    const split = clipPrices({ start: iso(T0), resolution: 3600, values: [10, null, 30] }, T0, T0 + 3 * HOUR);
    assert.equal(priceStepPath(split, x, y), "M0,90L100,90M200,70L300,70");
  });
});

describe("scheduleWindows", () => {
  it("keeps the windows the integration sent", () => {
    const windows = [{ start: iso(T0), end: iso(T0 + HOUR), kind: "charging" }];
    assert.equal(scheduleWindows(schedule([0], { windows })), windows);
  });

  it("merges contiguous slots; zero and gaps end a window", () => {
    const s = schedule([0, 2, 3, 0, -1, -1, null, 4], { minutes: 60 });
    assert.deepEqual(scheduleWindows(s), [
      { start: iso(T0 + HOUR), end: iso(T0 + 3 * HOUR), kind: "charging" },
      { start: iso(T0 + 4 * HOUR), end: iso(T0 + 6 * HOUR), kind: "discharging" },
      { start: iso(T0 + 7 * HOUR), end: iso(T0 + 8 * HOUR), kind: "charging" },
    ]);
  });

  it("is empty for an empty or missing schedule", () => {
    assert.deepEqual(scheduleWindows(null), []);
    assert.deepEqual(scheduleWindows(schedule([])), []);
    assert.deepEqual(scheduleWindows({ values: [1], start: "x", resolution: 900 }), []);
  });
});

describe("windowText", () => {
  const w = (from, to, kind = "charging") => ({ start: iso(T0 + from * HOUR), end: iso(T0 + to * HOUR), kind });

  it("names the next charging window today", () => {
    assert.equal(windowText([w(1, 2, "discharging"), w(2, 5)], T0, fmt), "Charging 02:00–05:00");
  });

  it("says charging now while a window runs", () => {
    assert.equal(windowText([w(-1, 3)], T0 + HOUR, fmt), "Charging now until 03:00");
  });

  it("skips windows that are over and says tomorrow or the date", () => {
    assert.equal(windowText([w(1, 2), w(26, 29)], T0 + 3 * HOUR, fmt), "Charging tomorrow 02:00–05:00");
    assert.equal(windowText([w(50, 51)], T0, fmt), "Charging Sun 22 Nov 02:00–03:00");
  });

  it("says when nothing is planned", () => {
    assert.equal(windowText([], T0, fmt), "No charging planned");
    assert.equal(windowText(undefined, T0, fmt), "No charging planned");
    assert.equal(windowText([w(1, 2, "discharging")], T0, fmt), "No charging planned");
    assert.equal(windowText([w(1, 2, "discharging")], T0, fmt, "discharging"), "Discharging 01:00–02:00");
  });

  it("follows the time zone of the formatter", () => {
    const amsterdam = makeFormatters("en-GB", "Europe/Amsterdam");
    assert.equal(windowText([w(2, 5)], T0, amsterdam), "Charging 03:00–06:00");
  });
});

describe("timeTicks", () => {
  it("spaces hour ticks so labels fit", () => {
    const wide = timeTicks(T0, T0 + 24 * HOUR, 1200, fmt);
    const narrow = timeTicks(T0, T0 + 24 * HOUR, 300, fmt);
    assert.equal(wide.length, 13); // every 2 h, both ends
    assert.deepEqual(narrow.map((t) => (t - T0) / HOUR), [0, 6, 12, 18, 24]);
    assert.deepEqual(timeTicks(T0, T0, 300, fmt), []);
  });
});

describe("normalizeConfig", () => {
  it("fills in defaults", () => {
    assert.deepEqual(normalizeConfig({ type: "custom:flexmeasures-schedule-card" }), {
      type: "custom:flexmeasures-schedule-card",
      horizon: 24,
      show_power: true,
      show_soc: true,
      show_price: true,
    });
    assert.equal(normalizeConfig({ horizon: "12", show_soc: false }).show_soc, false);
  });

  it("rejects a bad horizon or no config", () => {
    for (const horizon of [0, -1, "abc", 500]) {
      assert.throws(() => normalizeConfig({ horizon }), /horizon/);
    }
    assert.throws(() => normalizeConfig(null), /Invalid/);
  });

  it("is what the card's stub config passes", () => {
    assert.deepEqual(normalizeConfig(FlexMeasuresScheduleCard.getStubConfig()).horizon, 24);
  });
});

describe("chartModel", () => {
  const prices = { start: iso(T0), resolution: 3600, unit: "EUR/MWh", values: [100, 50, 200, 150] };
  const full = schedule([2, 2, -1, 0, null, 3, 3, 3], { minutes: 30, soc: [20, 40, 30, 30, null, 50, 70, 90], prices });

  it("draws a bar per slot with a value, the SoC line, the price and now", () => {
    const m = chartModel(full, normalizeConfig({}), T0 + 10 * 60000, 360, 190, fmt);
    assert.equal(m.power.bars.length, 7);
    assert.ok(m.soc.path.startsWith("M"));
    assert.deepEqual([m.soc.scale.min, m.soc.scale.max], [0, 100]);
    assert.deepEqual([m.price.min, m.price.max], [50, 200]);
    assert.ok(m.price.path.length > 0);
    assert.ok(m.now > m.plot.left && m.now < m.plot.right);
    assert.ok(m.power.scale.min < 0 && m.power.scale.max >= 3);
  });

  it("leaves out hidden and missing series", () => {
    const hidden = chartModel(full, normalizeConfig({ show_power: false, show_soc: false, show_price: false }), T0, 360, 190, fmt);
    assert.deepEqual([hidden.power.bars.length, hidden.soc, hidden.price], [0, null, null]);
    const bare = chartModel(schedule([1, 2]), normalizeConfig({}), T0, 360, 190, fmt);
    assert.deepEqual([bare.power.bars.length, bare.soc, bare.price], [2, null, null]);
  });

  it("scales a SoC in kWh from zero and has no now marker outside the view", () => {
    const kwh = schedule([1, 1], { minutes: 60, soc: [4, 9.5], soc_unit: "kWh" });
    const m = chartModel(kwh, normalizeConfig({}), T0 - 5 * HOUR, 360, 190, fmt);
    assert.equal(m.soc.scale.min, 0);
    assert.ok(m.soc.scale.max >= 9.5);
    assert.equal(m.now, null);
  });

  it("copes with an empty schedule", () => {
    const m = chartModel(schedule([]), normalizeConfig({}), T0, 360, 190, fmt);
    assert.deepEqual([m.power.bars.length, m.soc, m.price, m.ticks.length], [0, null, null, 0]);
  });

  it("flat prices still get a visible range", () => {
    const flat = schedule([1], { minutes: 60, prices: { ...prices, values: [80] } });
    const m = chartModel(flat, normalizeConfig({}), T0, 360, 190, fmt);
    assert.ok(Number.isFinite(m.price.y(80)));
    assert.ok(m.price.y(80) > m.plot.top && m.price.y(80) < m.plot.bottom);
  });
});

/** A card outside a DOM (no shadow root) with this configuration. */
function bareCard(config) {
  const Card = class extends FlexMeasuresScheduleCard {
    attachShadow() {}
  };
  const card = new Card();
  card.setConfig(config);
  return card;
}

/** A connection that records each subscription and counts the unsubscribes. */
function recordingConnection(extra = {}) {
  const feed = { subscriptions: [], unsubscribed: 0 };
  feed.connection = {
    subscribeMessage: async (callback, msg) => {
      feed.subscriptions.push({ callback, msg });
      return () => feed.unsubscribed++;
    },
    ...extra,
  };
  return feed;
}

describe("live refresh", () => {
  /** A device's card with a fake connection and callWS. */
  function cardWith(connection, calls) {
    const card = bareCard({ device_id: "dev1" });
    card._hass = {
      connection,
      callWS: async (msg) => {
        calls.push(msg);
        return schedule([1]);
      },
    };
    return card;
  }

  it("subscribes with the integration's command, not to the bus event", async () => {
    const feed = recordingConnection({
      subscribeEvents: async () => assert.fail("the bus event is for administrators only"),
    });
    const { subscriptions } = feed;
    const calls = [];
    const card = cardWith(feed.connection, calls);
    await card._subscribe();
    assert.deepEqual(subscriptions.map((s) => s.msg), [{ type: "flexmeasures/schedule/subscribe" }]);

    subscriptions[0].callback({ device_id: "other" });
    assert.deepEqual(calls, []);
    subscriptions[0].callback({ device_id: "dev1", name: "Home battery" });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(calls, [{ type: "flexmeasures/schedule/get", device_id: "dev1" }]);

    card._unsubscribe();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(feed.unsubscribed, 1);
  });

  it("still loads when the subscription is refused", async () => {
    const connection = { subscribeMessage: async () => Promise.reject(new Error("unknown_command")) };
    const card = cardWith(connection, []);
    await card._subscribe();
    assert.equal(card._unsub, undefined);
  });
});

/* ------------------------------------------------------------------------ */
/* Site view                                                                */
/* ------------------------------------------------------------------------ */

/** A site's plan: `devices` maps names to power series in slots of `minutes`. */
function sitePlan(devices, { minutes = 15, capacity = 11, prices = null, start = T0 } = {}) {
  const entries = Object.entries(devices);
  const slots = entries.length ? entries[0][1].length : 0;
  const total = Array.from({ length: slots }, (_, i) => {
    const values = entries.map(([, v]) => v[i]).filter((v) => v !== null);
    return values.length ? values.reduce((a, b) => a + b, 0) : null;
  });
  return {
    device_id: "site1",
    name: "Home",
    status: "ready",
    start: iso(start),
    end: iso(start + slots * minutes * 60000),
    resolution: minutes * 60,
    unit: "kW",
    capacity,
    devices: entries.map(([name, values]) => ({ device_id: `dev-${name}`, name, kind: "battery", status: "ready", values })),
    total,
    peak: null,
    prices,
    updated: null,
  };
}

describe("clipSite", () => {
  it("cuts every device's series to the view, keeping the totals", () => {
    const site = sitePlan({ Battery: [1, 2, 3, 4], Car: [null, 7, 7, 0] }, { minutes: 60 });
    const clip = clipSite(site, T0 + HOUR + 5, 2);
    assert.equal(clip.start, T0 + HOUR);
    assert.deepEqual(clip.slots.map((s) => s.values), [[2, 7], [3, 7]]);
    assert.deepEqual(clip.slots.map((s) => s.total), [9, 10]);
  });

  it("returns no slots without a plan and treats non-numbers as gaps", () => {
    for (const site of [null, sitePlan({}), { ...sitePlan({ A: [1] }), start: null, total: [1] }]) {
      assert.deepEqual(clipSite(site, T0, 24).slots, []);
    }
    const odd = sitePlan({ A: [1, 2] });
    odd.devices[0].values = [Number.NaN, "2"];
    odd.devices.push({ name: "B", values: null });
    assert.deepEqual(clipSite(odd, T0, 24).slots.map((s) => s.values), [[null, null], [null, null]]);
  });
});

describe("stackedBars", () => {
  const x = linear(T0, T0 + HOUR, 0, 400);
  const y = linear(-10, 10, 200, 0); // zero at 100 px, 10 px per kW

  it("stacks charging up and discharging down from zero, in device order", () => {
    const site = sitePlan({ Battery: [3, -2, 0, null], Car: [5, 4, null, null], Boiler: [-1, -1, 0, null] });
    const bars = stackedBars(clipSite(site, T0, 24).slots, x, y, 0);
    const slot0 = bars.filter((b) => b.slot.start === T0);
    assert.deepEqual(
      slot0.map((b) => [b.device, b.kind, b.y, b.height]),
      [
        [0, "charging", 70, 30],
        [1, "charging", 20, 50],
        [2, "discharging", 100, 10],
      ],
    );
    const slot1 = bars.filter((b) => b.slot.start === T0 + 15 * 60000);
    assert.deepEqual(
      slot1.map((b) => [b.device, b.y, b.height]),
      [
        [0, 100, 20],
        [1, 60, 40],
        [2, 120, 10],
      ],
    );
    assert.equal(bars.length, 6, "idle and unplanned slots draw nothing");
    assert.ok(bars.every((b) => b.width === 100));
  });

  it("measures the highest and deepest stacks", () => {
    const site = sitePlan({ A: [3, -2], B: [5, -4] });
    assert.deepEqual(stackExtent(clipSite(site, T0, 24).slots), { min: -6, max: 8 });
    assert.deepEqual(stackExtent([]), { min: 0, max: 0 });
  });
});

describe("siteChartModel", () => {
  const prices = { start: iso(T0), resolution: 3600, unit: "EUR/MWh", values: [100, 50] };

  it("scales to the grid capacity and draws its line, the price and now", () => {
    const site = sitePlan({ Battery: [2, 2, -1, 0], Car: [3, 3, 3, 3] }, { minutes: 30, prices });
    const m = siteChartModel(site, normalizeConfig({ site: "site1" }), T0 + 10 * 60000, 360, 190, fmt);
    assert.ok(m.power.scale.max >= 11, "the capacity is on the scale");
    assert.deepEqual(m.capacity.lines.map((l) => l.value), [11]);
    assert.ok(Math.abs(m.capacity.lines[0].y - m.power.y(11)) < 1e-9);
    assert.equal(m.power.bars.length, 7);
    assert.deepEqual([m.price.min, m.price.max], [50, 100]);
    assert.ok(m.now > m.plot.left && m.now < m.plot.right);
  });

  it("draws the export limit when the discharging reaches it", () => {
    const site = sitePlan({ Battery: [-9, -9], Car: [-4, 0] }, { capacity: 11 });
    const m = siteChartModel(site, normalizeConfig({ site: "site1" }), T0, 360, 190, fmt);
    assert.deepEqual(m.capacity.lines.map((l) => l.value), [11, -11]);
  });

  it("leaves out hidden or missing parts", () => {
    const site = sitePlan({ Battery: [1] }, { capacity: null, prices });
    const m = siteChartModel(site, normalizeConfig({ site: "s", show_power: false, show_price: false }), T0, 360, 190, fmt);
    assert.deepEqual([m.power.bars.length, m.capacity, m.price], [0, null, null]);
    const empty = siteChartModel(sitePlan({}), normalizeConfig({ site: "s" }), T0, 360, 190, fmt);
    assert.deepEqual([empty.power.bars.length, empty.now, empty.ticks.length], [0, null, 0]);
  });
});

describe("peakText and siteLabel", () => {
  const site = sitePlan({ Battery: [2, -9, 0], Car: [7.4, 0, 0] }, { minutes: 60 });
  const clip = clipSite(site, T0, 24);

  it("names the peak of the summed power against the capacity", () => {
    assert.deepEqual(peakText(clip, 11, fmt), { text: "Peak 9.4 kW at 00:00 of 11 kW grid capacity", over: false });
    assert.deepEqual(peakText(clip, 9, fmt), { text: "Peak 9.4 kW at 00:00, above the grid capacity of 9 kW", over: true });
    assert.equal(peakText(clip, null, fmt).text, "Peak 9.4 kW at 00:00");
    assert.equal(peakText(clipSite(sitePlan({ A: [0, null] }), T0, 24), 11, fmt).text, "No power planned");
  });

  it("tells a screen reader the devices, the capacity and the peak", () => {
    const m = siteChartModel(site, normalizeConfig({ site: "site1" }), T0, 360, 190, fmt);
    assert.equal(
      siteLabel(site, m, fmt),
      "Planned power of Battery, Car, stacked per device; grid capacity 11 kW; Peak 9.4 kW at 00:00 of 11 kW grid capacity",
    );
    assert.match(siteLabel(null, siteChartModel(null, normalizeConfig({ site: "s" }), T0, 360, 190, fmt), fmt), /no devices/);
  });

  it("accepts a site's device id in the card configuration", () => {
    assert.equal(normalizeConfig({ site: "abc" }).site, "abc");
    for (const site of ["", 3, null]) assert.throws(() => normalizeConfig({ site }), /site/);
  });
});

describe("site feed", () => {
  it("subscribes to the site and shows each plan it sends", async () => {
    const feed = recordingConnection();
    const { subscriptions } = feed;
    const card = bareCard({ site: "site1" });
    const calls = [];
    card._hass = { connection: feed.connection, callWS: async (msg) => calls.push(msg) };
    await card._subscribe();
    await card._refresh();
    assert.deepEqual(subscriptions.map((s) => s.msg), [{ type: "flexmeasures/schedule/site/subscribe", device_id: "site1" }]);
    assert.deepEqual(calls, [], "the plan comes with the subscription");

    const plan = sitePlan({ Battery: [1] });
    subscriptions[0].callback(plan);
    assert.equal(card._site, plan);
    card._siteId = "another";
    subscriptions[0].callback(sitePlan({ Car: [2] }));
    assert.equal(card._site, plan, "a feed of a site no longer shown is ignored");

    card._unsubscribe();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(feed.unsubscribed, 1);
  });

  it("shows why a site cannot be subscribed to", async () => {
    const card = bareCard({ site: "gone" });
    card._hass = { connection: { subscribeMessage: async () => Promise.reject(new Error("No site gone")) } };
    await card._subscribe();
    assert.equal(card._unsub, undefined);
    assert.equal(card._error, "No site gone");
  });
});
