// The console: every view and its health, one view's figures and charts
// (from its projectors' figures, every 2 s), its changes live, a group's
// rows, a row, and its rollout.
"use strict";

import { api, viewPath, onAuthProblem, setToken, storedToken, text } from "./api.js";
import { drawChart, drawBars, formatValue } from "./charts.js";
import { followView } from "./live.js";
import { drawDeadLetterChart, refreshDeadLetters } from "./deadletters.js";
import { refreshRevisions, renderRollout, setupRollout } from "./rollout.js";
import { renderViewList, setupViewList } from "./views.js";
import "./orders.js";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 2000;
const DEAD_LETTERS_MS = 5000;
const state = { views: [], view: null, figures: null };

/// One word for a view's health, from its summary.
export function health(v) {
  if (!v.revision) return "starting";
  if (!v.serving) return "dark";
  if (v.phase === "Failed" || v.phase === "Degraded") return v.phase.toLowerCase();
  if (v.pending) return "rolling out";
  return "serving";
}

onAuthProblem((e) => {
  const m = $("auth-message");
  m.hidden = false;
  m.textContent = e.status === 401
    ? "The gateway wants a bearer token: paste one into Token (for example the output of `kubectl create token <service-account>`). " + e.message
    : "Your token may not do this: reading a view needs get, list and watch on materializedviews/data in its namespace. " + e.message;
});

// The list is read again every 2 s: a view is the same by its name, not
// by the object that last described it.
function sameView(a, b) {
  return !!a && !!b && a.namespace === b.namespace && a.name === b.name;
}

function clearAuthMessage() {
  $("auth-message").hidden = true;
}

async function loadViews() {
  try {
    state.views = (await api("/v1/views")).views;
  } catch (e) {
    $("status").replaceChildren(text("dt", "error"), text("dd", e.message));
    return false;
  }
  renderViewList(state.views, health, chooseView);
  const select = $("view");
  select.replaceChildren(...state.views.map((v, i) => {
    const o = text("option", `${v.namespace}/${v.name}`);
    o.value = i;
    return o;
  }));
  return true;
}

function chooseView(index) {
  state.view = state.views[index];
  state.figures = null;
  $("view").value = String(index);
  renderStatus();
  followView(state.view);
  refreshFigures();
  refreshDeadLetters(state.view);
}

function fact(key, value) {
  const pair = document.createElement("div");
  const dd = text("dd", value === undefined || value === null ? "—" : String(value));
  dd.dataset.fact = key;
  pair.append(text("dt", key), dd);
  return pair;
}

// Per shard, the replica the gateway counted for the view's totals.
function perShard(figures) {
  return figures.counted
    .map((c) => figures.replicas.find((r) => r.shard === c.shard && r.pod === c.pod && r.figures))
    .filter(Boolean);
}

function closed(samples) {
  return samples.slice(0, -1);
}

function rate(samples, field, intervalMs, count = 5) {
  const recent = closed(samples).slice(-count);
  if (!recent.length) return null;
  return recent.reduce((a, s) => a + s[field], 0) / (recent.length * intervalMs / 1000);
}

function latestFreshness(samples, field) {
  const s = [...samples].reverse().find((x) => x[field] !== undefined && x[field] !== null);
  return s ? s[field] : null;
}

function renderStatus() {
  const v = state.view;
  if (!v) return;
  const f = state.figures;
  const shards = f ? perShard(f) : [];
  const eventsPerSecond = shards.length ? shards.reduce((a, s) => a + (rate(s.figures.samples, "events", s.figures.intervalMs) ?? 0), 0) : null;
  const recordsPerSecond = shards.length ? shards.reduce((a, s) => a + (rate(s.figures.samples, "records", s.figures.intervalMs) ?? 0), 0) : null;
  const p99 = shards.map((s) => latestFreshness(s.figures.samples, "freshnessP99Ms")).filter((x) => x !== null);
  const p50 = shards.map((s) => latestFreshness(s.figures.samples, "freshnessP50Ms")).filter((x) => x !== null);
  const facts = [
    ["health", health(v)], ["revision", v.revision], ["phase", v.phase || (v.serving ? "serving" : "not serving")],
    ["topic", v.topic], ["shards", v.shards],
    ["rows", f?.rows ?? v.rows], ["records", f?.records], ["lag", f?.lag ?? v.lag],
    ["events/s", eventsPerSecond === null ? null : formatValue(eventsPerSecond)],
    ["records/s", recordsPerSecond === null ? null : formatValue(recordsPerSecond)],
    ["freshness p50", p50.length ? formatValue(Math.max(...p50), "ms") : null],
    ["freshness p99", p99.length ? formatValue(Math.max(...p99), "ms") : null],
  ];
  $("status").replaceChildren(...facts.map(([k, val]) => fact(k, val)));
  const rows = (f ? f.replicas : []).map((r) => {
    const tr = document.createElement("tr");
    const figures = r.figures;
    const lag = figures ? Object.values(figures.lagByPartition).reduce((a, b) => a + b, 0) : null;
    const cells = figures
      ? [r.shard, r.pod, figures.rows, lag, formatValue(rate(figures.samples, "events", figures.intervalMs) ?? 0),
        latestFreshness(figures.samples, "freshnessP99Ms") === null ? "—" : formatValue(latestFreshness(figures.samples, "freshnessP99Ms"), "ms")]
      : [r.shard, r.pod, "—", "—", "—", r.error || "no answer"];
    tr.append(...cells.map((c) => text("td", String(c))));
    return tr;
  });
  $("shards").tBodies[0].replaceChildren(...rows);
  renderRollout(v, state.figures);
}

function renderCharts() {
  const f = state.figures;
  if (!f) return;
  const shards = perShard(f);
  const to = Math.max(0, ...shards.flatMap((s) => s.figures.samples.map((x) => x.atMs)));
  const span = 5 * 60 * 1000;
  const per = (field, scale, cls) => shards.map((s, i) => ({
    label: `shard ${s.shard}`,
    cls: cls ? cls(i) : `s${i % 8}`,
    points: closed(s.figures.samples).map((x) => [x.atMs, x[field] === undefined ? null : x[field] * scale(s)]),
  }));
  const perSecond = (s) => 1000 / s.figures.intervalMs;
  drawChart($("chart-events"), { series: per("events", perSecond), to, span, unit: "" });
  drawChart($("chart-records"), { series: per("records", perSecond), to, span, unit: "" });
  drawChart($("chart-lag"), { series: per("lag", () => 1), to, span, unit: "" });
  drawChart($("chart-freshness"), {
    series: [
      ...shards.map((s, i) => ({ label: `p50 shard ${s.shard}`, cls: `s${(2 * i) % 8}`,
        points: closed(s.figures.samples).map((x) => [x.atMs, x.freshnessP50Ms ?? null]) })),
      ...shards.map((s, i) => ({ label: `p99 shard ${s.shard}`, cls: `s${(2 * i + 1) % 8} dashed`,
        points: closed(s.figures.samples).map((x) => [x.atMs, x.freshnessP99Ms ?? null]) })),
    ],
    to, span, unit: "ms",
  });
  // Rows of a group add up over shards only when each row lives in one.
  $("group-bars-title").textContent = f.rowsAddUp ? "Group sizes (rows)" : "Group sizes (records)";
  drawBars($("group-bars"), f.groups.map((g) => [g.group, f.rowsAddUp ? g.rows : g.records]));
  drawDeadLetterChart(shards, to, span);
}

async function refreshFigures() {
  const v = state.view;
  if (!v) return;
  try {
    const f = await api(`${viewPath(v)}/figures`);
    if (!sameView(state.view, v)) return;
    state.figures = f;
    // Listing views can succeed while reading one is refused: only a read
    // that succeeded ends a refusal's message (or a new token).
    clearAuthMessage();
  } catch (e) {
    if (sameView(state.view, v)) state.figures = null;
  }
  renderStatus();
  renderCharts();
  if (sameView(state.view, v)) refreshRevisions(state.view);
}

// Views are read again every 2 s: status, health and a pending revision change.
async function refreshViews() {
  const current = state.view;
  if (!(await loadViews())) return;
  const index = current ? state.views.findIndex((x) => x.namespace === current.namespace && x.name === current.name) : -1;
  if (index >= 0) {
    state.view = state.views[index];
    $("view").value = String(index);
  } else if (state.views.length) {
    chooseView(0);
    return;
  }
  renderStatus();
}

$("view").addEventListener("change", (e) => chooseView(Number(e.target.value)));
$("token").value = storedToken();
$("token").addEventListener("change", () => {
  setToken($("token").value.trim());
  clearAuthMessage();
  refreshViews();
});
setupViewList();
setupRollout(() => state.view, refreshViews);
refreshViews().finally(() => {
  setInterval(refreshViews, REFRESH_MS);
  setInterval(refreshFigures, REFRESH_MS);
  setInterval(() => refreshDeadLetters(state.view), DEAD_LETTERS_MS);
});
