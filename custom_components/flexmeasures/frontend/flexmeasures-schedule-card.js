/**
 * FlexMeasures schedule card: the planned charging of one controlled device.
 *
 * One plain ES module, no build step and no imports. The data shaping is in
 * exported pure functions (tested with `node --test`); the custom elements are
 * only defined where a browser provides them.
 */

export const DEFAULT_HORIZON = 24;
const HOUR = 3600 * 1000;
const SVG_NS = "http://www.w3.org/2000/svg";

/* ------------------------------------------------------------------------ */
/* Data shaping (pure)                                                      */
/* ------------------------------------------------------------------------ */

/** Milliseconds since the epoch of an ISO 8601 string (NaN if missing). */
export function toMs(iso) {
  return iso == null ? NaN : Date.parse(iso);
}

/** Whether a series value is a usable number. */
function isNum(value) {
  return typeof value === "number" && Number.isFinite(value);
}

/**
 * Cut a schedule to what the card shows: from the slot that contains `now`
 * (or the schedule start if that lies ahead; the last `horizon` hours if the
 * schedule is over) for `horizon` hours.
 *
 * Returns {start, end, slots: [{start, end, value, soc}], socBefore, prices}
 * with times in ms; `socBefore` is the SoC at `start` when the slot before it
 * is known, so the line can begin at the left edge.
 */
export function clipSchedule(schedule, now, horizonHours = DEFAULT_HORIZON) {
  const empty = { start: now, end: now, slots: [], socBefore: null, prices: [] };
  if (!schedule || !Array.isArray(schedule.values) || !schedule.values.length) {
    return empty;
  }
  const start = toMs(schedule.start);
  const step = Number(schedule.resolution) * 1000;
  if (!Number.isFinite(start) || !(step > 0)) return empty;
  const count = schedule.values.length;
  const end = start + count * step;
  const horizon = Math.max(0, Number(horizonHours) || DEFAULT_HORIZON) * HOUR;

  let first = 0;
  if (now >= end) first = Math.max(0, count - Math.ceil(horizon / step));
  else if (now > start) first = Math.floor((now - start) / step);
  const viewStart = start + first * step;
  const viewEnd = Math.min(end, viewStart + horizon);
  const last = Math.ceil((viewEnd - start) / step); // exclusive

  const soc = Array.isArray(schedule.soc) ? schedule.soc : null;
  const slots = [];
  for (let i = first; i < last; i++) {
    const value = schedule.values[i];
    slots.push({
      start: start + i * step,
      end: Math.min(start + (i + 1) * step, viewEnd),
      value: isNum(value) ? value : null,
      soc: soc && isNum(soc[i]) ? soc[i] : null,
    });
  }
  const socBefore = soc && first > 0 && isNum(soc[first - 1]) ? soc[first - 1] : null;
  return {
    start: viewStart,
    end: viewEnd,
    slots,
    socBefore,
    prices: clipPrices(schedule.prices, viewStart, viewEnd),
  };
}

/** The price slots overlapping [from, to), cut to it: [{start, end, value}]. */
export function clipPrices(prices, from, to) {
  if (!prices || !Array.isArray(prices.values)) return [];
  const start = toMs(prices.start);
  const step = Number(prices.resolution) * 1000;
  if (!Number.isFinite(start) || !(step > 0)) return [];
  const out = [];
  const first = Math.max(0, Math.floor((from - start) / step));
  for (let i = first; i < prices.values.length; i++) {
    const slotStart = start + i * step;
    if (slotStart >= to) break;
    const slotEnd = slotStart + step;
    if (slotEnd <= from) continue;
    const value = prices.values[i];
    out.push({
      start: Math.max(slotStart, from),
      end: Math.min(slotEnd, to),
      value: isNum(value) ? value : null,
    });
  }
  return out;
}

/** Rounded limits and ticks covering [min, max] in about `count` steps. */
export function niceScale(min, max, count = 4) {
  let lo = Math.min(min, max);
  let hi = Math.max(min, max);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) {
    lo = 0;
    hi = 1;
  }
  if (lo === hi) {
    if (lo === 0) hi = 1;
    else if (lo > 0) lo = 0;
    else hi = 0;
  }
  const raw = (hi - lo) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const niceLo = Math.floor(lo / step + 1e-9) * step || 0; // no -0
  const niceHi = Math.ceil(hi / step - 1e-9) * step || 0;
  const ticks = [];
  for (let v = niceLo; v <= niceHi + step / 2; v += step) {
    ticks.push(Math.round(v / step) * step || 0);
  }
  return { min: niceLo, max: niceHi, step, ticks };
}

/** A linear map from [d0, d1] onto [r0, r1]. */
export function linear(d0, d1, r0, r1) {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

/**
 * Bars for the power slots: charging grows up from zero, discharging down.
 * Every slot with a value gets a bar (zero power: zero height); gaps get none.
 */
export function powerBars(slots, x, y, gap = 1) {
  const zero = y(0);
  const bars = [];
  for (const slot of slots) {
    if (slot.value === null) continue;
    const left = x(slot.start);
    const width = Math.max(0.5, x(slot.end) - left - gap);
    const top = y(Math.max(0, slot.value));
    const bottom = y(Math.min(0, slot.value));
    bars.push({
      x: left + gap / 2,
      y: top,
      width,
      height: Math.max(0, bottom - top),
      kind: slot.value > 0 ? "charging" : slot.value < 0 ? "discharging" : "idle",
      slot,
    });
  }
  return bars;
}

/**
 * SVG path data for the SoC line: each value is the SoC at the END of its
 * slot; a gap (null) breaks the line. Starts at the left edge with `socBefore`.
 */
export function socPath(clip, x, y) {
  const points = [];
  if (clip.slots.length && clip.socBefore !== null) {
    points.push([clip.start, clip.socBefore]);
  }
  let path = "";
  let pen = false;
  const flush = (time, value) => {
    path += `${pen ? "L" : "M"}${round(x(time))},${round(y(value))}`;
    pen = true;
  };
  for (const [time, value] of points) flush(time, value);
  for (const slot of clip.slots) {
    if (slot.soc === null) {
      pen = false;
      continue;
    }
    flush(slot.end, slot.soc);
  }
  return path;
}

/** SVG path data for the price as a step line; a gap (null) breaks it. */
export function priceStepPath(prices, x, y) {
  let path = "";
  let last = null;
  for (const slot of prices) {
    if (slot.value === null) {
      last = null;
      continue;
    }
    const x0 = round(x(slot.start));
    const x1 = round(x(slot.end));
    const yv = round(y(slot.value));
    path += last !== null && last.end === slot.start ? `L${x0},${yv}` : `M${x0},${yv}`;
    path += `L${x1},${yv}`;
    last = slot;
  }
  return path;
}

function round(v) {
  return Math.round(v * 10) / 10;
}

/** Windows from the schedule, or merged from the power values if it has none. */
export function scheduleWindows(schedule) {
  if (!schedule) return [];
  if (Array.isArray(schedule.windows) && schedule.windows.length) return schedule.windows;
  const start = toMs(schedule.start);
  const step = Number(schedule.resolution) * 1000;
  if (!Array.isArray(schedule.values) || !Number.isFinite(start) || !(step > 0)) {
    return [];
  }
  const windows = [];
  let current = null;
  let from = 0;
  [...schedule.values, null].forEach((value, i) => {
    const kind = !isNum(value) || value === 0 ? null : value > 0 ? "charging" : "discharging";
    if (kind === current) return;
    if (current) {
      windows.push({
        start: new Date(start + from * step).toISOString(),
        end: new Date(start + i * step).toISOString(),
        kind: current,
      });
    }
    current = kind;
    from = i;
  });
  return windows;
}

/**
 * The next charging window in words: "Charging 02:00–05:00", "Charging now
 * until 05:00", "Charging tomorrow 02:00–05:00", or "No charging planned".
 * `fmt` gives `time(ms)`, `day(ms)` (a key per calendar day) and `date(ms)`.
 */
export function windowText(windows, now, fmt, kind = "charging") {
  const label = kind === "charging" ? "Charging" : "Discharging";
  const next = (windows || [])
    .filter((w) => w.kind === kind)
    .map((w) => ({ start: toMs(w.start), end: toMs(w.end) }))
    .filter((w) => Number.isFinite(w.start) && w.end > now)
    .sort((a, b) => a.start - b.start)[0];
  if (!next) return `No ${kind} planned`;
  if (next.start <= now) return `${label} now until ${fmt.time(next.end)}`;
  const span = `${fmt.time(next.start)}–${fmt.time(next.end)}`;
  const day = fmt.day(next.start);
  if (day === fmt.day(now)) return `${label} ${span}`;
  if (day === fmt.day(now + 24 * HOUR)) return `${label} tomorrow ${span}`;
  return `${label} ${fmt.date(next.start)} ${span}`;
}

/** Time ticks at whole hours, spaced so labels are at least `minGap` px apart. */
export function timeTicks(from, to, width, fmt, minGap = 56) {
  const hours = (to - from) / HOUR;
  if (!(hours > 0) || !(width > 0)) return [];
  const every = [1, 2, 3, 4, 6, 12, 24].find((h) => (width / hours) * h >= minGap) || 24;
  const ticks = [];
  for (let t = Math.ceil(from / HOUR) * HOUR; t <= to; t += HOUR) {
    if (fmt.hour(t) % every === 0) ticks.push(t);
  }
  return ticks;
}

/** Formatters in the user's language and time zone (HA's profile settings). */
export function makeFormatters(language = "en", timeZone = undefined, hour12 = undefined) {
  const base = { timeZone, ...(hour12 === undefined ? {} : { hour12 }) };
  const time = new Intl.DateTimeFormat(language, { ...base, hour: "2-digit", minute: "2-digit" });
  const day = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" });
  const date = new Intl.DateTimeFormat(language, { timeZone, weekday: "short", day: "numeric", month: "short" });
  const hour = new Intl.DateTimeFormat("en-GB", { timeZone, hour: "2-digit", hourCycle: "h23" });
  return {
    time: (ms) => time.format(ms),
    day: (ms) => day.format(ms),
    date: (ms) => date.format(ms),
    hour: (ms) => Number(hour.format(ms)),
  };
}

/** A number with at most `digits` decimals, in the user's language. */
export function formatNumber(value, language = "en", digits = 1) {
  if (!isNum(value)) return "–";
  return new Intl.NumberFormat(language, { maximumFractionDigits: digits }).format(value);
}

/** The card's configuration with defaults filled in; throws on bad input. */
export function normalizeConfig(config) {
  if (!config || typeof config !== "object") throw new Error("Invalid configuration");
  const horizon = config.horizon === undefined ? DEFAULT_HORIZON : Number(config.horizon);
  if (!(horizon > 0) || horizon > 168) {
    throw new Error("horizon must be a number of hours between 1 and 168");
  }
  if (config.site !== undefined && (typeof config.site !== "string" || !config.site)) {
    throw new Error("site must be the device id of a FlexMeasures site");
  }
  return {
    ...config,
    horizon,
    show_power: config.show_power !== false,
    show_soc: config.show_soc !== false,
    show_price: config.show_price !== false,
  };
}

/**
 * The plot area of a chart of this size (``right`` is the right margin), its
 * time axis ``x`` over the clip, and the gap between bars.
 */
function plotFrame(clip, width, height, right) {
  const margin = { top: 16, right, bottom: 22, left: 40 };
  const plot = {
    left: margin.left,
    right: Math.max(margin.left + 10, width - margin.right),
    top: margin.top,
    bottom: Math.max(margin.top + 10, height - margin.bottom),
  };
  const x = linear(clip.start, clip.end, plot.left, plot.right);
  // Thin slots side by side read as one block: a gap only when there is room.
  const gap = (plot.right - plot.left) / Math.max(1, clip.slots.length) >= 6 ? 1 : 0;
  return { plot, x, gap };
}

/**
 * The price step line over the plot, padded so flat prices still get a range,
 * or null when prices are not shown or there are none.
 */
function priceModel(clip, show, plot, x, prices) {
  if (!show || !clip.prices.some((p) => p.value !== null)) return null;
  const ps = clip.prices.map((p) => p.value).filter(isNum);
  const lo = Math.min(...ps);
  const hi = Math.max(...ps);
  const pad = (hi - lo) * 0.1 || Math.abs(hi) * 0.1 || 1;
  const y = linear(lo - pad, hi + pad, plot.bottom, plot.top);
  return { min: lo, max: hi, y, path: priceStepPath(clip.prices, x, y), unit: prices.unit || "" };
}

/**
 * Everything the chart draws, in pixels, for a given size. Pure: the element
 * only turns it into SVG.
 */
export function chartModel(schedule, config, now, width, height, fmt) {
  const clip = clipSchedule(schedule, now, config.horizon);
  const showPower = config.show_power;
  const showSoc = config.show_soc && clip.slots.some((s) => s.soc !== null);
  const { plot, x, gap } = plotFrame(clip, width, height, showSoc ? 38 : 12);
  const values = clip.slots.map((s) => s.value).filter(isNum);
  const power = niceScale(Math.min(0, ...values), Math.max(0, ...values), height < 180 ? 3 : 4);
  const yPower = linear(power.min, power.max, plot.bottom, plot.top);

  let soc = null;
  if (showSoc) {
    const socs = clip.slots.map((s) => s.soc).filter(isNum);
    if (clip.socBefore !== null) socs.push(clip.socBefore);
    const percent = schedule.soc_unit === "%";
    const scale = percent
      ? { min: 0, max: 100, ticks: [0, 50, 100] }
      : niceScale(0, Math.max(...socs), 2);
    const y = linear(scale.min, scale.max, plot.bottom, plot.top);
    soc = { scale, y, path: socPath(clip, x, y), unit: schedule.soc_unit || "" };
  }

  const price = priceModel(clip, config.show_price, plot, x, schedule && schedule.prices);

  return {
    clip,
    plot,
    x,
    power: {
      scale: power,
      y: yPower,
      unit: schedule.unit || "kW",
      gap,
      bars: showPower ? powerBars(clip.slots, x, yPower, gap) : [],
    },
    soc,
    price,
    now: now >= clip.start && now <= clip.end ? x(now) : null,
    ticks: timeTicks(clip.start, clip.end, plot.right - plot.left, fmt),
  };
}

/* ------------------------------------------------------------------------ */
/* Site view (pure): the devices of a site stacked under the grid capacity  */
/* ------------------------------------------------------------------------ */

/** How many device colours the card defines (--fm-device-color-0 … -7). */
export const DEVICE_COLORS = 8;

/**
 * Cut a site's plan to what the card shows, as `clipSchedule` cuts a device's.
 *
 * Returns {start, end, slots: [{start, end, values, total}], prices} with
 * times in ms; `values` holds each device's power in the slot (null: no plan).
 */
export function clipSite(site, now, horizonHours = DEFAULT_HORIZON) {
  const total = site && Array.isArray(site.total) ? site.total : [];
  const clip = clipSchedule(site ? { ...site, values: total, soc: null } : null, now, horizonHours);
  const devices = (site && Array.isArray(site.devices) && site.devices) || [];
  if (!clip.slots.length) return { start: clip.start, end: clip.end, slots: [], prices: clip.prices };
  const start = toMs(site.start);
  const step = Number(site.resolution) * 1000;
  const first = Math.round((clip.start - start) / step);
  const slots = clip.slots.map((slot, i) => ({
    start: slot.start,
    end: slot.end,
    total: slot.value,
    values: devices.map((device) => {
      const value = Array.isArray(device.values) ? device.values[first + i] : null;
      return isNum(value) ? value : null;
    }),
  }));
  return { start: clip.start, end: clip.end, slots, prices: clip.prices };
}

/**
 * Stacked bars: per slot each device's charging stacks up from zero, its
 * discharging down from zero, in the order of the devices.
 */
export function stackedBars(slots, x, y, gap = 1) {
  const bars = [];
  for (const slot of slots) {
    const left = x(slot.start) + gap / 2;
    const width = Math.max(0.5, x(slot.end) - x(slot.start) - gap);
    let up = 0;
    let down = 0;
    slot.values.forEach((value, device) => {
      if (value === null || value === 0) return;
      const from = value > 0 ? up : down;
      const to = from + value;
      if (value > 0) up = to;
      else down = to;
      const top = y(Math.max(from, to));
      bars.push({
        x: left,
        y: top,
        width,
        height: Math.max(0, y(Math.min(from, to)) - top),
        device,
        kind: value > 0 ? "charging" : "discharging",
        slot,
      });
    });
  }
  return bars;
}

/** The highest charging stack and deepest discharging stack of the slots. */
export function stackExtent(slots) {
  let max = 0;
  let min = 0;
  for (const slot of slots) {
    const up = slot.values.reduce((sum, v) => sum + (v !== null && v > 0 ? v : 0), 0);
    const down = slot.values.reduce((sum, v) => sum + (v !== null && v < 0 ? v : 0), 0);
    max = Math.max(max, up);
    min = Math.min(min, down);
  }
  return { min, max };
}

/**
 * Everything the site chart draws, in pixels: stacked bars per device, the
 * grid capacity (at +capacity, and at -capacity when the scale reaches it),
 * the price and now.
 */
export function siteChartModel(site, config, now, width, height, fmt) {
  const clip = clipSite(site, now, config.horizon);
  const { plot, x, gap } = plotFrame(clip, width, height, 12);
  const extent = stackExtent(clip.slots);
  const capacity = site && isNum(site.capacity) && site.capacity > 0 ? site.capacity : null;
  const scale = niceScale(extent.min, Math.max(extent.max, capacity || 0), height < 180 ? 3 : 4);
  const y = linear(scale.min, scale.max, plot.bottom, plot.top);
  const capacityLines = capacity === null ? [] : [capacity, -capacity].filter((c) => c >= scale.min && c <= scale.max);

  const price = priceModel(clip, config.show_price, plot, x, site && site.prices);

  return {
    clip,
    plot,
    x,
    power: {
      scale,
      y,
      unit: (site && site.unit) || "kW",
      gap,
      bars: config.show_power ? stackedBars(clip.slots, x, y, gap) : [],
    },
    capacity: capacity === null ? null : { value: capacity, lines: capacityLines.map((c) => ({ value: c, y: y(c) })) },
    price,
    now: clip.slots.length && now >= clip.start && now <= clip.end ? x(now) : null,
    ticks: timeTicks(clip.start, clip.end, plot.right - plot.left, fmt),
  };
}

/**
 * The site's peak in words, over the plan the card shows: "Peak 12.4 kW at
 * 10:15, above the grid capacity of 11 kW", or "No power planned".
 */
export function peakText(clip, capacity, fmt, unit = "kW") {
  let peak = null;
  for (const slot of clip.slots) {
    if (slot.total !== null && (peak === null || Math.abs(slot.total) > Math.abs(peak.total))) peak = slot;
  }
  if (peak === null || peak.total === 0) return { text: "No power planned", over: false };
  const value = `${formatNumber(peak.total, fmt.language, 1)} ${unit}`;
  const over = isNum(capacity) && Math.abs(peak.total) > capacity;
  let text = `Peak ${value} at ${fmt.time(peak.start)}`;
  if (isNum(capacity)) {
    const limit = `${formatNumber(capacity, fmt.language, 1)} ${unit}`;
    text += over ? `, above the grid capacity of ${limit}` : ` of ${limit} grid capacity`;
  }
  return { text, over };
}

/** What a screen reader hears for the site chart. */
export function siteLabel(site, model, fmt) {
  const names = ((site && site.devices) || []).map((d) => d.name).join(", ");
  const parts = [`Planned power of ${names || "no devices"}, stacked per device`];
  if (model.capacity) parts.push(`grid capacity ${formatNumber(model.capacity.value, fmt.language, 1)} ${model.power.unit}`);
  parts.push(peakText(model.clip, model.capacity && model.capacity.value, fmt, model.power.unit).text);
  return parts.join("; ");
}

/* ------------------------------------------------------------------------ */
/* Custom elements (browser only)                                           */
/* ------------------------------------------------------------------------ */

const STATUS_TEXT = {
  idle: "No schedule requested",
  computing: "Computing a new schedule…",
  fallback: "Fallback plan",
  stale: "Schedule is out of date",
  failed: "Scheduling failed",
};

/* A site's devices take these colours in turn; each can be themed. */
const DEVICE_PALETTE = [
  "var(--primary-color, #03a9f4)",
  "var(--orange-color, #ff9800)",
  "var(--purple-color, #926bc7)",
  "var(--teal-color, #009688)",
  "var(--pink-color, #e91e63)",
  "var(--lime-color, #cddc39)",
  "var(--indigo-color, #3f51b5)",
  "var(--brown-color, #795548)",
];

const CARD_STYLE = `
  :host { display: block; }
  ha-card { height: 100%; overflow: hidden; }
  .wrap { padding: 12px 16px 12px; display: flex; flex-direction: column; gap: 6px; }
  .head { display: flex; align-items: baseline; justify-content: space-between; gap: 8px; flex-wrap: wrap; }
  .title { font-size: var(--ha-card-header-font-size, 1.25rem); line-height: 1.3; color: var(--ha-card-header-color, var(--primary-text-color)); font-weight: 500; }
  .status { font-size: 0.8rem; padding: 1px 8px; border-radius: 10px; color: var(--text-primary-color, #fff); background: var(--secondary-text-color); white-space: nowrap; }
  .status.failed { background: var(--error-color, #db4437); }
  .status.stale, .status.fallback { background: var(--warning-color, #ffa600); }
  .status.computing { background: var(--info-color, var(--primary-color)); }
  .next { font-size: 1rem; color: var(--primary-text-color); display: flex; align-items: center; gap: 6px; }
  .next .dot { width: 10px; height: 10px; border-radius: 50%; background: var(--fm-charge-color); flex: none; }
  .next.none .dot { background: var(--disabled-text-color, var(--secondary-text-color)); }
  .next.over .dot { background: var(--fm-capacity-color); }
  .info { font-size: 0.8rem; color: var(--secondary-text-color); min-height: 1.2em; font-variant-numeric: tabular-nums; }
  .chart { position: relative; width: 100%; height: var(--fm-chart-height, 190px); touch-action: pan-y; }
  svg { display: block; width: 100%; height: 100%; overflow: visible; font-family: inherit; }
  .grid { stroke: var(--divider-color, rgba(127,127,127,0.3)); stroke-width: 1; shape-rendering: crispEdges; }
  .zero { stroke: var(--secondary-text-color); stroke-width: 1; opacity: 0.6; shape-rendering: crispEdges; }
  .axis { fill: var(--secondary-text-color); font-size: 10.5px; font-variant-numeric: tabular-nums; }
  .axis.unit { font-weight: 500; }
  .bar.charging { fill: var(--fm-charge-color); }
  .bar.discharging { fill: var(--fm-discharge-color); }
  .bar.idle { fill: var(--fm-charge-color); }
  .bar.hover { opacity: 0.7; }
  .bar.discharging[class*="device-"] { opacity: 0.75; }
  .capacity { stroke: var(--fm-capacity-color); stroke-width: 1.5; stroke-dasharray: 6 3; shape-rendering: crispEdges; }
  .capacity-label { fill: var(--fm-capacity-color); font-size: 10px; font-weight: 500; }
  .soc { fill: none; stroke: var(--fm-soc-color); stroke-width: 2.25; stroke-linejoin: round; stroke-linecap: round; }
  .price { fill: none; stroke: var(--fm-price-color); stroke-width: 1.5; stroke-dasharray: 4 3; opacity: 0.75; }
  .now { stroke: var(--fm-now-color); stroke-width: 1.5; }
  .now-label { fill: var(--fm-now-color); font-size: 10px; font-weight: 500; }
  .cursor { stroke: var(--secondary-text-color); stroke-width: 1; stroke-dasharray: 2 2; }
  .legend { display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 0.8rem; color: var(--secondary-text-color); }
  .legend span { display: inline-flex; align-items: center; gap: 5px; }
  .legend i { display: inline-block; width: 12px; height: 3px; border-radius: 2px; }
  .legend i.bar { height: 10px; width: 8px; border-radius: 1px; background: var(--fm-charge-color); }
  .legend i.bar.discharging { background: var(--fm-discharge-color); }
  .legend i.soc { background: var(--fm-soc-color); }
  .legend i.price { background: repeating-linear-gradient(90deg, var(--fm-price-color) 0 4px, transparent 4px 7px); }
  .legend i.capacity { background: repeating-linear-gradient(90deg, var(--fm-capacity-color) 0 6px, transparent 6px 9px); }
  ${Array.from({ length: DEVICE_COLORS }, (_, i) => `.bar.device-${i} { fill: var(--fm-device-color-${i}); } .legend i.device-${i} { background: var(--fm-device-color-${i}); }`).join("\n  ")}
  .message { color: var(--secondary-text-color); padding: 24px 0; text-align: center; }
  .message.error { color: var(--error-color, #db4437); }
  .foot { font-size: 0.75rem; color: var(--secondary-text-color); text-align: right; }
  ha-card {
    --fm-charge-color: var(--flexmeasures-charge-color, var(--primary-color, #03a9f4));
    --fm-discharge-color: var(--flexmeasures-discharge-color, var(--warning-color, #ff9800));
    --fm-soc-color: var(--flexmeasures-soc-color, var(--success-color, #43a047));
    --fm-price-color: var(--flexmeasures-price-color, var(--secondary-text-color, #727272));
    --fm-now-color: var(--flexmeasures-now-color, var(--error-color, #db4437));
    --fm-capacity-color: var(--flexmeasures-capacity-color, var(--error-color, #db4437));
    ${DEVICE_PALETTE.map((color, i) => `--fm-device-color-${i}: var(--flexmeasures-device-color-${i}, ${color});`).join("\n    ")}
  }
`;

function el(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

/** The status badge of the card's head ("" when there is nothing to say). */
function statusBadge(status, reason) {
  if (!status) return "";
  const title = reason === undefined ? "" : ` title="${escapeHtml(reason)}"`;
  return `<div class="status ${status}"${title}>${escapeHtml(STATUS_TEXT[status] || status)}</div>`;
}

/** When the plan was made, under the chart. */
function footHtml(updated, fmt) {
  return updated ? `<div class="foot">Updated ${escapeHtml(fmt.time(toMs(updated)))}</div>` : "";
}

/** Horizontal grid lines and labels of the power axis. */
function drawPowerTicks(grid, model, fmt) {
  const { plot } = model;
  for (const tick of model.power.scale.ticks) {
    const y = model.power.y(tick);
    grid.append(el("line", { class: tick === 0 ? "zero" : "grid", x1: plot.left, x2: plot.right, y1: y, y2: y }));
    grid.append(el("text", { class: "axis", x: plot.left - 6, y: y + 3.5, "text-anchor": "end" }, formatNumber(tick, fmt.language)));
  }
}

/** Vertical grid lines and labels of the time axis. */
function drawTimeTicks(grid, model, fmt) {
  const { plot, x } = model;
  for (const tick of model.ticks) {
    const tx = x(tick);
    grid.append(el("line", { class: "grid", x1: tx, x2: tx, y1: plot.top, y2: plot.bottom, opacity: 0.5 }));
    const anchor = tx - plot.left < 16 ? "start" : plot.right - tx < 16 ? "end" : "middle";
    grid.append(el("text", { class: "axis", x: tx, y: plot.bottom + 15, "text-anchor": anchor }, fmt.time(tick)));
  }
}

/** The "now" line (when now is on the chart) and the hidden hover cursor, returned. */
function drawNowAndCursor(svg, model) {
  const { plot } = model;
  if (model.now !== null) {
    svg.append(el("line", { class: "now", x1: model.now, x2: model.now, y1: plot.top - 4, y2: plot.bottom }));
    svg.append(el("text", { class: "now-label", x: model.now + 3, y: plot.top + 4 }, "now"));
  }
  const cursor = el("line", { class: "cursor", y1: plot.top, y2: plot.bottom, visibility: "hidden" });
  svg.append(cursor);
  return cursor;
}

/**
 * Show the slot under the pointer in the info line: its time, describe(slot)
 * and its price; the cursor marks it. Without a slot, the idle text.
 */
function followPointer(svg, cursor, info, model, contentWidth, fmt, idle, describe) {
  const { plot, x } = model;
  const showInfo = (slot) => {
    if (!slot) {
      cursor.setAttribute("visibility", "hidden");
      info.textContent = idle;
      return;
    }
    const parts = [`${fmt.time(slot.start)}–${fmt.time(slot.end)}`, ...describe(slot)];
    const price = model.price && model.clip.prices.find((p) => p.start <= slot.start && slot.start < p.end);
    if (price && price.value !== null) parts.push(`${formatNumber(price.value, fmt.language, 1)} ${model.price.unit}`);
    info.textContent = parts.join(" · ");
    const cx = (x(slot.start) + x(slot.end)) / 2;
    cursor.setAttribute("x1", cx);
    cursor.setAttribute("x2", cx);
    cursor.setAttribute("visibility", "visible");
  };
  showInfo(null);
  svg.addEventListener("pointermove", (ev) => {
    const box = svg.getBoundingClientRect();
    const px = ((ev.clientX - box.left) / box.width) * contentWidth;
    const time = model.clip.start + ((px - plot.left) / (plot.right - plot.left)) * (model.clip.end - model.clip.start);
    showInfo(model.clip.slots.find((s) => s.start <= time && time < s.end) || null);
  });
  svg.addEventListener("pointerleave", () => showInfo(null));
}

/** The price legend's text: its range and unit (HTML-escaped). */
function priceLegendText(model, fmt) {
  return `Price ${escapeHtml(formatNumber(model.price.min, fmt.language))}–${escapeHtml(formatNumber(model.price.max, fmt.language))} ${escapeHtml(model.price.unit)}`;
}

function formattersFor(hass) {
  const locale = (hass && hass.locale) || {};
  const language = locale.language || (hass && hass.language) || "en";
  const timeZone = locale.time_zone === "server" && hass && hass.config ? hass.config.time_zone : undefined;
  const hour12 = locale.time_format === "12" ? true : locale.time_format === "24" ? false : undefined;
  try {
    return { language, ...makeFormatters(language, timeZone, hour12) };
  } catch (_err) {
    return { language: "en", ...makeFormatters("en") };
  }
}

const Base = globalThis.HTMLElement || class {};

/** Make sure HA's lazily loaded ha-form exists: a built-in card's editor brings it. */
async function loadHaForm() {
  if (customElements.get("ha-form")) return;
  try {
    const helpers = await window.loadCardHelpers();
    const card = await helpers.createCardElement({ type: "entities", entities: [] });
    await card.constructor.getConfigElement();
  } catch (_err) {
    // Older or unusual frontends: the editor waits for ha-form below.
  }
}

export class FlexMeasuresScheduleCard extends Base {
  static async getConfigElement() {
    await loadHaForm();
    return document.createElement("flexmeasures-schedule-card-editor");
  }

  static getStubConfig() {
    return { horizon: DEFAULT_HORIZON, show_power: true, show_soc: true, show_price: true };
  }

  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this._schedule = undefined; // undefined: loading; null: none
    this._error = null;
    this._deviceId = null;
    this._hover = null;
    this._width = 0;
  }

  setConfig(config) {
    const site = this._config && this._config.site;
    this._config = normalizeConfig(config);
    this._deviceId = this._config.device_id || null;
    this._siteId = this._config.site || null;
    this._schedule = undefined;
    this._site = undefined; // undefined: loading
    this._error = null;
    if (this._hass && this.isConnected) {
      if ((this._config.site || undefined) !== (site || undefined)) this._subscribe();
      this._refresh();
    }
    this._render();
  }

  set hass(hass) {
    const first = !this._hass;
    const reconnected = this._hass && hass && this._hass.connection !== hass.connection;
    this._hass = hass;
    if (!this.isConnected) return;
    if (first || reconnected) {
      this._subscribe();
      this._refresh();
    }
  }

  get hass() {
    return this._hass;
  }

  getCardSize() {
    return 5;
  }

  getGridOptions() {
    return { columns: 12, rows: 5, min_columns: 6, min_rows: 4 };
  }

  connectedCallback() {
    this._timer = setInterval(() => this._render(), 60 * 1000);
    this._resize = new ResizeObserver((entries) => {
      const width = Math.round(entries[0].contentRect.width);
      if (width && width !== this._width) {
        this._width = width;
        this._render();
      }
    });
    this._resize.observe(this);
    if (this._hass) {
      this._subscribe();
      this._refresh();
    }
    this._render();
  }

  disconnectedCallback() {
    clearInterval(this._timer);
    this._timer = undefined;
    if (this._resize) this._resize.disconnect();
    this._unsubscribe();
  }

  async _subscribe() {
    this._unsubscribe();
    const connection = this._hass && this._hass.connection;
    if (!connection) return;
    if (this._siteId) return this._subscribeSite(connection);
    // The integration's own subscription: any user who may read the device's
    // entities gets it (the bus event itself is for administrators only).
    const pending = connection.subscribeMessage((event) => {
      const id = event && event.device_id;
      if (!id || !this._deviceId || id === this._deviceId) this._refresh();
    }, { type: "flexmeasures/schedule/subscribe" });
    this._unsub = pending;
    try {
      await pending;
    } catch (_err) {
      // An integration without the command (an older version still loaded):
      // the card still loads and the minute timer keeps "now" moving.
      if (this._unsub === pending) this._unsub = undefined;
    }
  }

  /** A site's feed sends its whole plan at once and on every change. */
  async _subscribeSite(connection) {
    const siteId = this._siteId;
    const pending = connection.subscribeMessage((site) => {
      if (this._siteId !== siteId) return;
      this._site = site;
      this._error = null;
      this._render();
    }, { type: "flexmeasures/schedule/site/subscribe", device_id: siteId });
    this._unsub = pending;
    try {
      await pending;
    } catch (err) {
      if (this._unsub === pending) this._unsub = undefined;
      this._error = (err && err.message) || String(err);
      this._render();
    }
  }

  _unsubscribe() {
    const pending = this._unsub;
    this._unsub = undefined;
    if (pending) pending.then((unsub) => unsub()).catch(() => {});
  }

  async _refresh() {
    // A site's plan comes with its subscription.
    if (!this._hass || !this._config || this._siteId) return;
    const token = (this._token = (this._token || 0) + 1);
    try {
      if (!this._deviceId) {
        const devices = await this._hass.callWS({ type: "flexmeasures/schedule/devices" });
        if (token !== this._token) return;
        if (!devices.length) {
          this._schedule = null;
          this._error = "No controlled devices yet. Add one to the FlexMeasures integration.";
          this._render();
          return;
        }
        this._deviceId = devices[0].device_id;
      }
      const schedule = await this._hass.callWS({ type: "flexmeasures/schedule/get", device_id: this._deviceId });
      if (token !== this._token) return;
      this._schedule = schedule;
      this._error = null;
    } catch (err) {
      if (token !== this._token) return;
      this._error = (err && err.message) || String(err);
    }
    this._render();
  }

  _render() {
    if (!this.shadowRoot || !this._config) return;
    if (this._siteId) return this._renderSite();
    const fmt = formattersFor(this._hass);
    const now = Date.now();
    const schedule = this._schedule;
    const title = this._config.title || (schedule && schedule.name) || "Planned charging";
    const status = schedule && schedule.status && schedule.status !== "ready" ? schedule.status : null;

    const empty = !schedule || !schedule.values || !schedule.values.length;
    const chart = this._renderCard(title, statusBadge(status, (schedule && schedule.reason) || ""), schedule, empty, () => {
      const text = windowText(scheduleWindows(schedule), now, fmt);
      return `
        <div class="next ${text.startsWith("No ") ? "none" : ""}"><span class="dot"></span><span>${escapeHtml(text)}</span></div>
        <div class="info"></div>
        <div class="chart"></div>
        <div class="legend"></div>
        ${footHtml(schedule.updated, fmt)}`;
    });
    if (chart) this._drawChart(chart, schedule, now, fmt);
  }

  /**
   * Fill the card: its title and status, then the error, "Loading…" (no data
   * yet), "No schedule yet." (empty) or the chart's places from chartBody().
   * Return the chart's container, if there is one.
   */
  _renderCard(title, badge, data, empty, chartBody) {
    let body;
    if (this._error) {
      body = `<div class="message error">${escapeHtml(this._error)}</div>`;
    } else if (data === undefined) {
      body = `<div class="message">Loading…</div>`;
    } else if (empty) {
      body = `<div class="message">No schedule yet.</div>`;
    } else {
      body = chartBody();
    }
    this.shadowRoot.innerHTML = `
      <style>${CARD_STYLE}</style>
      <ha-card>
        <div class="wrap">
          <div class="head">
            <div class="title">${escapeHtml(title)}</div>
            ${badge}
          </div>
          ${body}
        </div>
      </ha-card>`;
    return this.shadowRoot.querySelector(".chart");
  }

  _drawChart(container, schedule, now, fmt) {
    const { model, svg, contentWidth } = this._chartFrame(
      container,
      (width, height) => chartModel(schedule, this._config, now, width, height, fmt),
      () => "Planned power, state of charge and price",
    );
    const { plot } = model;

    const grid = el("g");
    if (model.power.bars.length) {
      grid.append(el("text", { class: "axis unit", x: plot.left - 6, y: plot.top - 7, "text-anchor": "end" }, model.power.unit));
    }
    drawPowerTicks(grid, model, fmt);
    if (model.soc) {
      for (const tick of model.soc.scale.ticks) {
        grid.append(el("text", { class: "axis", x: plot.right + 6, y: model.soc.y(tick) + 3.5, "text-anchor": "start" }, `${formatNumber(tick, fmt.language, 0)}${model.soc.unit === "%" ? "%" : ""}`));
      }
    }
    drawTimeTicks(grid, model, fmt);
    svg.append(grid);

    const bars = el("g", { class: "bars" });
    for (const bar of model.power.bars) {
      // Without gaps, overlap neighbours a little so anti-aliasing leaves no seams.
      const seamless = model.power.gap === 0;
      const rect = el("rect", {
        class: `bar ${bar.kind}`,
        x: bar.x,
        y: bar.y,
        width: bar.width + (seamless ? 0.6 : 0),
        height: bar.height,
        rx: seamless ? 0 : Math.min(1.5, bar.width / 4),
      });
      bars.append(rect);
    }
    svg.append(bars);
    if (model.price && model.price.path) svg.append(el("path", { class: "price", d: model.price.path }));
    if (model.soc && model.soc.path) svg.append(el("path", { class: "soc", d: model.soc.path }));
    const cursor = drawNowAndCursor(svg, model);
    container.append(svg);

    followPointer(svg, cursor, this.shadowRoot.querySelector(".info"), model, contentWidth, fmt, this._defaultInfo(model, fmt), (slot) => {
      const parts = [`${formatNumber(slot.value, fmt.language, 2)} ${model.power.unit}`];
      if (model.soc && slot.soc !== null) parts.push(`SoC ${formatNumber(slot.soc, fmt.language, 0)}${model.soc.unit === "%" ? "%" : ` ${model.soc.unit}`}`);
      return parts;
    });

    const legend = this.shadowRoot.querySelector(".legend");
    const items = [];
    if (model.power.bars.length) {
      items.push(`<span><i class="bar"></i>Charging</span>`);
      if (model.power.bars.some((b) => b.kind === "discharging")) items.push(`<span><i class="bar discharging"></i>Discharging</span>`);
    }
    if (model.soc) items.push(`<span><i class="soc"></i>State of charge</span>`);
    if (model.price) {
      items.push(`<span><i class="price"></i>${priceLegendText(model, fmt)}</span>`);
    }
    legend.innerHTML = items.join("");
  }

  _renderSite() {
    const fmt = formattersFor(this._hass);
    const now = Date.now();
    const site = this._site;
    const title = this._config.title || (site && site.name) || "Site plan";
    const status = site && site.status && !["ready", "idle"].includes(site.status) ? site.status : null;
    const empty = !site || !site.total || !site.total.length;
    const chart = this._renderCard(title, statusBadge(status), site, empty, () => `
        <div class="next"><span class="dot"></span><span class="peak"></span></div>
        <div class="info"></div>
        <div class="chart"></div>
        <div class="legend" role="list"></div>
        ${footHtml(site.updated, fmt)}`);
    if (chart) this._drawSiteChart(chart, site, now, fmt);
  }

  _drawSiteChart(container, site, now, fmt) {
    const { model, svg, contentWidth } = this._chartFrame(
      container,
      (width, height) => siteChartModel(site, this._config, now, width, height, fmt),
      (built) => siteLabel(site, built, fmt),
    );
    const { plot } = model;

    const grid = el("g");
    grid.append(el("text", { class: "axis unit", x: plot.left - 6, y: plot.top - 7, "text-anchor": "end" }, model.power.unit));
    drawPowerTicks(grid, model, fmt);
    drawTimeTicks(grid, model, fmt);
    svg.append(grid);

    // One group per device, named for assistive technology.
    const devices = site.devices || [];
    const groups = devices.map((device, i) => {
      const group = el("g", { class: "bars", "data-device": device.device_id || "", role: "group", "aria-label": device.name });
      group.append(el("title", {}, device.name));
      svg.append(group);
      return group;
    });
    // Square segments: a stack reads as one bar, cut by device.
    const seamless = model.power.gap === 0;
    for (const bar of model.power.bars) {
      groups[bar.device].append(el("rect", {
        class: `bar ${bar.kind} device-${bar.device % DEVICE_COLORS}`,
        x: bar.x,
        y: bar.y,
        width: bar.width + (seamless ? 0.6 : 0),
        height: bar.height,
      }));
    }
    if (model.capacity) {
      for (const line of model.capacity.lines) {
        svg.append(el("line", { class: "capacity", x1: plot.left, x2: plot.right, y1: line.y, y2: line.y }));
      }
      const top = model.capacity.lines[0];
      if (top) svg.append(el("text", { class: "capacity-label", x: plot.right - 2, y: top.y - 3, "text-anchor": "end" }, `Grid ${formatNumber(model.capacity.value, fmt.language, 1)} ${model.power.unit}`));
    }
    if (model.price && model.price.path) svg.append(el("path", { class: "price", d: model.price.path }));
    const cursor = drawNowAndCursor(svg, model);
    container.append(svg);

    const peak = peakText(model.clip, model.capacity && model.capacity.value, fmt, model.power.unit);
    const next = this.shadowRoot.querySelector(".next");
    next.classList.toggle("over", peak.over);
    next.querySelector(".peak").textContent = peak.text;

    const idle = `${devices.length} ${devices.length === 1 ? "device" : "devices"} planned together`;
    followPointer(svg, cursor, this.shadowRoot.querySelector(".info"), model, contentWidth, fmt, idle, (slot) => {
      const parts = [];
      slot.values.forEach((value, i) => {
        if (value !== null) parts.push(`${devices[i].name} ${formatNumber(value, fmt.language, 2)}`);
      });
      parts.push(`total ${formatNumber(slot.total, fmt.language, 2)} ${model.power.unit}`);
      return parts;
    });

    const items = devices.map((device, i) => `<span role="listitem"><i class="bar device-${i % DEVICE_COLORS}"></i>${escapeHtml(device.name)}</span>`);
    if (model.capacity) items.push(`<span role="listitem"><i class="capacity"></i>Grid capacity ${escapeHtml(formatNumber(model.capacity.value, fmt.language, 1))} ${escapeHtml(model.power.unit)}</span>`);
    if (model.price) {
      items.push(`<span role="listitem"><i class="price"></i>${priceLegendText(model, fmt)}</span>`);
    }
    this.shadowRoot.querySelector(".legend").innerHTML = items.join("");
  }

  /**
   * Build the chart's model for the container's size (the card's width less
   * its padding); return it with the empty svg, labelled by label(model).
   */
  _chartFrame(container, buildModel, label) {
    const width = this._width || container.clientWidth || 320;
    const height = container.clientHeight || 190;
    const contentWidth = Math.max(120, width - 32);
    const model = buildModel(contentWidth, height);
    this._model = model;
    const svg = el("svg", { viewBox: `0 0 ${contentWidth} ${height}`, role: "img", "aria-label": label(model) });
    svg.dataset.slots = String(model.clip.slots.length);
    return { model, svg, contentWidth };
  }

  _defaultInfo(model, fmt) {
    const energy = model.clip.slots.reduce((sum, s) => sum + (s.value !== null && s.value > 0 ? (s.value * (s.end - s.start)) / HOUR : 0), 0);
    const hours = Math.round((model.clip.end - model.clip.start) / HOUR);
    return `${formatNumber(energy, fmt.language, 1)} ${model.power.unit}h to charge in the next ${hours} h`;
  }
}

const EDITOR_STYLE = `
  .form { display: flex; flex-direction: column; gap: 12px; }
  .hint { color: var(--secondary-text-color); font-size: 0.9rem; }
`;

export class FlexMeasuresScheduleCardEditor extends Base {
  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this._devices = null;
    this._sites = null;
  }

  setConfig(config) {
    this._config = { ...config };
    this._render();
  }

  set hass(hass) {
    const first = !this._hass;
    this._hass = hass;
    if (first) this._loadDevices();
    else if (this._form) this._form.hass = hass;
  }

  async _loadDevices() {
    const list = async (type) => {
      try {
        return await this._hass.callWS({ type });
      } catch (_err) {
        return [];
      }
    };
    [this._devices, this._sites] = await Promise.all([list("flexmeasures/schedule/devices"), list("flexmeasures/schedule/sites")]);
    this._render();
  }

  _schema() {
    const options = (list) => (list || []).map((d) => ({ value: d.device_id, label: d.name }));
    const site = Boolean(this._config && this._config.site);
    // A site is offered once there is one (or one is configured).
    const sites = (this._sites && this._sites.length) || site
      ? [{ name: "site", selector: { select: { mode: "dropdown", options: options(this._sites) } } }]
      : [];
    return [
      ...sites,
      ...(site ? [] : [{ name: "device_id", selector: { select: { mode: "dropdown", options: options(this._devices) } } }]),
      { name: "title", selector: { text: {} } },
      { name: "horizon", selector: { number: { min: 1, max: 168, step: 1, mode: "box", unit_of_measurement: "h" } } },
      {
        type: "grid",
        name: "",
        schema: [
          { name: "show_power", selector: { boolean: {} } },
          ...(site ? [] : [{ name: "show_soc", selector: { boolean: {} } }]),
          { name: "show_price", selector: { boolean: {} } },
        ],
      },
    ];
  }

  _render() {
    if (!this.shadowRoot || !this._config) return;
    const labels = {
      device_id: "Controlled device",
      site: "Site (all its devices, stacked)",
      title: "Title (optional)",
      horizon: "Horizon",
      show_power: "Planned power",
      show_soc: "State of charge",
      show_price: "Price",
    };
    const data = { horizon: DEFAULT_HORIZON, show_power: true, show_soc: true, show_price: true, ...this._config };
    if (!this._form) {
      this.shadowRoot.innerHTML = `<style>${EDITOR_STYLE}</style><div class="form"></div>`;
      this._form = document.createElement("ha-form");
      this._form.computeLabel = (schema) => labels[schema.name] || schema.name;
      this._form.computeHelper = (schema) =>
        schema.name === "device_id" && this._devices && !this._devices.length
          ? "No controlled devices yet: add one to the FlexMeasures integration first."
          : schema.name === "horizon"
            ? "How many hours ahead the chart shows."
            : schema.name === "site"
              ? "Show a site instead of one device; clear it to pick a device."
              : undefined;
      this._form.addEventListener("value-changed", (ev) => this._changed(ev.detail.value));
      this.shadowRoot.querySelector(".form").append(this._form);
    }
    this._form.hass = this._hass;
    this._form.data = data;
    this._form.schema = this._schema();
  }

  _changed(value) {
    const config = { ...this._config, ...value };
    for (const key of ["title", "device_id", "site"]) if (!config[key]) delete config[key];
    if (config.horizon !== undefined) config.horizon = Number(config.horizon);
    this._config = config;
    this.dispatchEvent(new CustomEvent("config-changed", { detail: { config }, bubbles: true, composed: true }));
  }
}

if (globalThis.customElements && !customElements.get("flexmeasures-schedule-card")) {
  customElements.define("flexmeasures-schedule-card", FlexMeasuresScheduleCard);
  customElements.define("flexmeasures-schedule-card-editor", FlexMeasuresScheduleCardEditor);
  window.customCards = window.customCards || [];
  window.customCards.push({
    type: "flexmeasures-schedule-card",
    name: "FlexMeasures schedule",
    description: "Planned charging of a controlled device (power per slot, state of charge, price), or of a site: its devices stacked under the grid capacity.",
    preview: true,
    documentationURL: "https://github.com/flexmeasures-ha/flexmeasures-homeassistant#dashboards",
  });
}
