// Unit tests of the card's data shaping: `node --test frontend-tests/`.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  chartModel,
  clipPrices,
  clipSchedule,
  FlexMeasuresScheduleCard,
  linear,
  makeFormatters,
  niceScale,
  normalizeConfig,
  powerBars,
  priceStepPath,
  scheduleWindows,
  socPath,
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

describe("live refresh", () => {
  /** A card outside a DOM: no shadow root, a fake connection and callWS. */
  function cardWith(connection, calls) {
    const Card = class extends FlexMeasuresScheduleCard {
      attachShadow() {}
    };
    const card = new Card();
    card.setConfig({ device_id: "dev1" });
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
    const subscriptions = [];
    let unsubscribed = 0;
    const connection = {
      subscribeMessage: async (callback, msg) => {
        subscriptions.push({ callback, msg });
        return () => unsubscribed++;
      },
      subscribeEvents: async () => assert.fail("the bus event is for administrators only"),
    };
    const calls = [];
    const card = cardWith(connection, calls);
    await card._subscribe();
    assert.deepEqual(subscriptions.map((s) => s.msg), [{ type: "flexmeasures/schedule/subscribe" }]);

    subscriptions[0].callback({ device_id: "other" });
    assert.deepEqual(calls, []);
    subscriptions[0].callback({ device_id: "dev1", name: "Home battery" });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(calls, [{ type: "flexmeasures/schedule/get", device_id: "dev1" }]);

    card._unsubscribe();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(unsubscribed, 1);
  });

  it("still loads when the subscription is refused", async () => {
    const connection = { subscribeMessage: async () => Promise.reject(new Error("unknown_command")) };
    const card = cardWith(connection, []);
    await card._subscribe();
    assert.equal(card._unsub, undefined);
  });
});
