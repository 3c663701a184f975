// The monitor's page: live from /events (Server-Sent Events), drawn with plain DOM and SVG.
"use strict";

const WINDOW_MS = 5 * 60 * 1000;   // the chart's time span at most...
const MIN_WINDOW_MS = 60 * 1000;   // ...and at least, while the history is shorter
const GAP_MS = 3500;               // samples further apart than this are not joined
const LAG_NOTICE = 10;             // events behind before a lag is highlighted
const SHOWN_EVENTS = 100;          // rows in the latest-events table
const KEPT_EVENTS = 500;           // events kept for filtering
const SERIES = [                   // index in a rate sample [time, commands, queries, events]
  { index: 1, name: "commands", cls: "s-commands" },
  { index: 2, name: "queries", cls: "s-queries" },
  { index: 3, name: "events appended", cls: "s-events" },
];
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

const page = { rates: [], events: [], lastPosition: 0, lags: new Map(), contexts: new Set() };

// -- small helpers ---------------------------------------------------------------------------

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function cells(row, values) {
  for (const [value, cls] of values) row.append(el("td", cls || "", value));
  return row;
}

function count(n) { return typeof n === "number" ? n.toLocaleString("en-US") : "–"; }

function perSecond(n) {
  if (typeof n !== "number") return "–";
  return n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(1);
}

function short(n) {  // axis labels: 1.5k, 20k, 1.2M
  if (n >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${+(n / 1e3).toFixed(1)}k`;
  return `${+n.toFixed(1)}`;
}

function niceCeiling(value) {  // 1, 2, 5 × 10^n at or above value
  const power = 10 ** Math.floor(Math.log10(Math.max(value, 1e-9)));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

// -- connection ------------------------------------------------------------------------------

function setStatus(cls, text) {
  const pill = $("status");
  pill.className = `pill ${cls}`;
  pill.textContent = text;
}

function connect() {
  // EventSource reconnects by itself (the server asks for a retry after 1 s); each new
  // connection starts with a `hello` that replaces everything shown.
  const source = new EventSource("/events");
  source.addEventListener("hello", (e) => onHello(JSON.parse(e.data)));
  source.addEventListener("stats", (e) => onStats(JSON.parse(e.data)));
  source.addEventListener("events", (e) => addEvents(JSON.parse(e.data).events));
  source.onerror = () => setStatus("down", "monitor unreachable: reconnecting…");
}

function onHello(data) {
  page.rates = data.rates;
  page.events = [];
  page.lastPosition = 0;
  page.lags.clear();
  $("event-rows").replaceChildren();
  addEvents(data.events, false);
  showLive(data);
}

function onStats(data) {
  if (data.rate) page.rates.push(data.rate);
  while (page.rates.length && page.rates[0][0] < data.time - WINDOW_MS * 2) page.rates.shift();
  showLive(data);
}

function showLive(data) {
  setStatus(data.up ? "live" : "stale", data.up ? "live" : "router not answering");
  $("head").textContent = count(data.head);
  $("pending").textContent = count(data.router.pending);
  const last = page.rates[page.rates.length - 1];
  const fresh = last && data.time - last[0] < GAP_MS;
  $("now-commands").textContent = fresh ? perSecond(last[1]) : "–";
  $("now-queries").textContent = fresh ? perSecond(last[2]) : "–";
  $("now-events").textContent = fresh ? perSecond(last[3]) : "–";
  showProcesses(data.processes);
  showTypes(data.appended);
  showAnswers(data.router.answered || {});
  drawChart(data.time);
}

// -- the chart -------------------------------------------------------------------------------

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawChart(now) {
  const chart = $("chart");
  const width = chart.clientWidth || 800;
  const height = chart.clientHeight || 240;
  const left = 56, right = 12, top = 10, bottom = 26;
  const plotW = width - left - right, plotH = height - top - bottom;
  // The last 5 minutes; less while the monitor has not seen that much, so a fresh page
  // is not a thin line at the right edge.
  const first = page.rates.length ? page.rates[0][0] : now;
  const span = Math.min(WINDOW_MS, Math.max(MIN_WINDOW_MS, now - first));
  const start = now - span;
  const shown = page.rates.filter((r) => r[0] >= start);
  const top_value = niceCeiling(Math.max(1, ...shown.flatMap((r) => [r[1], r[2], r[3]])));
  const x = (t) => left + ((t - start) / span) * plotW;
  const y = (v) => top + plotH - (v / top_value) * plotH;
  chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const parts = [];
  for (let i = 0; i <= 4; i++) {
    const value = (top_value * i) / 4;
    parts.push(svg("line", { x1: left, x2: width - right, y1: y(value), y2: y(value), class: "grid" }));
    parts.push(svg("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end" }, short(value)));
  }
  const step = span > 150000 ? 60000 : span > 90000 ? 30000 : 10000;
  for (let ago = Math.floor(span / step) * step; ago >= 0; ago -= step) {
    const at = now - ago;
    const label = ago === 0 ? "now" : step >= 60000 ? `−${ago / 60000} min` : `−${ago / 1000} s`;
    parts.push(svg("line", { x1: x(at), x2: x(at), y1: top + plotH, y2: top + plotH + 4, class: "axis" }));
    parts.push(svg("text", { x: x(at), y: height - 6, "text-anchor": ago ? "middle" : "end" }, label));
  }
  parts.push(svg("line", { x1: left, x2: width - right, y1: top + plotH, y2: top + plotH, class: "axis" }));
  parts.push(svg("text", { x: 12, y: top + plotH / 2, transform: `rotate(-90 12 ${top + plotH / 2})`,
    "text-anchor": "middle" }, "per second"));
  for (const series of SERIES) {
    let d = "", previous = null;
    for (const sample of shown) {
      const joined = previous !== null && sample[0] - previous < GAP_MS;
      d += `${joined ? "L" : "M"}${x(sample[0]).toFixed(1)} ${y(sample[series.index]).toFixed(1)} `;
      previous = sample[0];
    }
    if (d) parts.push(svg("path", { d, class: series.cls }));
  }
  chart.replaceChildren(...parts);
  const legend = $("legend");
  legend.replaceChildren(...SERIES.map((series) => {
    const item = el("span");
    const last = shown[shown.length - 1];
    item.append(el("span", `swatch ${series.cls}`),
      `${series.name}${last ? `: ${perSecond(last[series.index])}/s` : ""}`);
    return item;
  }));
}

// -- processes -------------------------------------------------------------------------------

function lagTrend(key, lag) {
  // Growing: a new high over the last few samples; falling: below the last one. A lag under
  // LAG_NOTICE is only a snapshot taken while events are on their way: not highlighted.
  const history = page.lags.get(key) || [];
  history.push(lag);
  if (history.length > 4) history.shift();
  page.lags.set(key, history);
  const before = history.slice(0, -1);
  if (lag < LAG_NOTICE) return "";
  if (before.length && lag > Math.max(...before)) return "growing";
  if (before.length && lag < before[before.length - 1]) return "falling";
  return "behind";
}

function showProcesses(rows) {
  const listed = new Set(rows.map((p) => `${p.role}:${p.pid}`));
  for (const key of page.lags.keys()) if (!listed.has(key)) page.lags.delete(key);
  const body = $("process-rows");
  body.replaceChildren(...rows.map((p) => {
    const key = `${p.role}:${p.pid}`;
    const trend = lagTrend(key, p.lag);
    const counters = p.counters || {};
    let state = p.ready ? "ready" : "starting";
    let stateCls = p.ready ? "state-ready" : "state-waiting";
    if (!p.reporting) { state = `not reporting for ${Math.round(p.silent_for)} s`; stateCls = "state-silent"; }
    const row = el("tr", p.reporting ? "" : "silent");
    row.dataset.pid = p.pid;
    row.dataset.role = p.role;
    const arrow = trend === "growing" ? " ↑" : trend === "falling" ? " ↓" : "";
    return cells(row, [[p.role], [String(p.pid)], [state, stateCls], [count(p.position), "num"],
      [count(p.lag) + arrow, `num lag ${trend}`], [count(counters.gaps), "num"],
      [count(counters.catchups), "num"], [count(counters.duplicates), "num"],
      [count(counters.dropped_messages), "num"]]);
  }));
}

function showTypes(appended) {
  $("type-rows").replaceChildren(...appended.map((a) =>
    cells(el("tr"), [[a.context], [a.type], [count(a.count), "num"]])));
  for (const a of appended) addContext(a.context);
}

function showAnswers(answered) {
  const rows = [];
  for (const kind of Object.keys(answered).sort()) {
    for (const outcome of Object.keys(answered[kind]).sort()) {
      rows.push(cells(el("tr"), [[kind], [outcome], [count(answered[kind][outcome]), "num"]]));
    }
  }
  $("answer-rows").replaceChildren(...rows);
}

function addContext(context) {
  if (page.contexts.has(context)) return;
  page.contexts.add(context);
  $("event-context").append(new Option(context, context));
  $("stream-context").append(new Option(context, context));
}

// -- latest events ---------------------------------------------------------------------------

function addEvents(events, flash = true) {
  const fresh = events.filter((e) => e.position > page.lastPosition);
  if (!fresh.length) return;
  page.lastPosition = fresh[fresh.length - 1].position;
  page.events.push(...fresh);
  if (page.events.length > KEPT_EVENTS) page.events.splice(0, page.events.length - KEPT_EVENTS);
  for (const e of fresh) addContext(e.context);
  showEvents(flash ? new Set(fresh.map((e) => e.position)) : new Set());
}

function showEvents(fresh = new Set()) {
  const context = $("event-context").value;
  const stream = $("event-stream").value.trim();
  const rows = [];
  for (let i = page.events.length - 1; i >= 0 && rows.length < SHOWN_EVENTS; i--) {
    const e = page.events[i];
    if ((context && e.context !== context) || (stream && !e.stream_id.includes(stream))) continue;
    const row = cells(el("tr", fresh.has(e.position) ? "new" : ""), [
      [String(e.position), "num"], [e.recorded_at.slice(0, 23).replace("T", " ")],
      [e.context], [e.type], [e.stream_id], [String(e.version), "num"],
      [JSON.stringify(e.data), "data"]]);
    row.dataset.position = e.position;
    row.addEventListener("click", () => browse(e.context, e.stream_id, ""));
    rows.push(row);
  }
  $("event-rows").replaceChildren(...rows);
}

// -- stream browser --------------------------------------------------------------------------

function browse(context, id, at) {
  addContext(context);
  $("stream-context").value = context;
  $("stream-id").value = id;
  $("stream-at").value = at;
  showStream();
}

async function showStream() {
  const context = $("stream-context").value, id = $("stream-id").value.trim();
  if (!context || !id) return;
  const query = new URLSearchParams({ context, id, at: $("stream-at").value.trim() });
  $("stream-summary").textContent = `Reading ${id}…`;
  let reply;
  try {
    const response = await fetch(`/api/stream?${query}`);
    reply = await response.json();
  } catch (err) {
    reply = { error: "the monitor did not answer" };
  }
  if (reply.error) {
    $("stream-summary").textContent = reply.error;
    $("stream-state").replaceChildren();
    $("history-rows").replaceChildren();
    return;
  }
  const source = reply.source === "store" ? "replayed from the store" : "held by the monitor";
  const whole = reply.complete ? "" : " (its latest events only)";
  $("stream-summary").textContent =
    `${reply.context} / ${reply.stream_id}: ${reply.events.length} events, ${source}${whole}.`;
  showState(reply);
  $("history-rows").replaceChildren(...reply.events.map((e) => {
    const row = cells(el("tr", e.recorded_at > reply.at ? "after" : ""), [
      [String(e.version), "num"], [e.recorded_at.replace("T", " ").replace("Z", "")], [e.type],
      [JSON.stringify(e.data), "data"]]);
    row.title = "show the state right after this event";
    row.addEventListener("click", () => browse(reply.context, reply.stream_id, e.recorded_at));
    return row;
  }));
}

function showState(reply) {
  const box = el("div", "state-box");
  const when = reply.at.replace("T", " ").replace("Z", " UTC");
  if (!reply.state) {
    box.append(el("p", "none", `As of ${when} the stream had no event yet.`));
  } else {
    const s = reply.state;
    box.append(el("p", "", `State as of ${when}: version ${s.version}, after ${s.last_event} ` +
      `(${s.updated_at.replace("T", " ").replace("Z", " UTC")})`));
    const table = el("table");
    for (const [key, value] of Object.entries(s.fields)) {
      table.append(cells(el("tr"), [[key], [JSON.stringify(value), "data"]]));
    }
    box.append(table);
  }
  $("stream-state").replaceChildren(box);
}

let suggestTimer = null;
function suggestStreams() {
  clearTimeout(suggestTimer);
  suggestTimer = setTimeout(async () => {
    const query = new URLSearchParams({ context: $("stream-context").value, prefix: $("stream-id").value });
    try {
      const streams = await (await fetch(`/api/streams?${query}`)).json();
      $("stream-ids").replaceChildren(...streams.map((s) => new Option(`${s.type}, v${s.version}`, s.stream_id)));
    } catch (err) { /* suggestions only: the next keystroke tries again */ }
  }, 200);
}

// -- start -----------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("event-context").addEventListener("change", () => showEvents());
  $("event-stream").addEventListener("input", () => showEvents());
  $("stream-form").addEventListener("submit", (e) => { e.preventDefault(); showStream(); });
  $("stream-id").addEventListener("input", suggestStreams);
  $("stream-id").addEventListener("focus", suggestStreams);
  window.addEventListener("resize", () => drawChart(Date.now()));
  connect();
});
