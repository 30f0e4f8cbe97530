// The view's dead letters: the latest rejected events with their reason,
// source position and the event itself (cut by the gateway, shown as text:
// a payload is data, never markup), and dead letters per reason over the
// last minutes from the projectors' figures.
"use strict";

import { api, viewPath, text } from "./api.js";
import { drawChart } from "./charts.js";

const $ = (id) => document.getElementById(id);
const LIMIT = 50;

function when(ms) {
  return ms ? new Date(ms).toLocaleTimeString() : "—";
}

function eventCell(letter) {
  const td = document.createElement("td");
  const v = letter.value;
  const shown = text("code", v.encoding === "base64" ? `base64: ${v.text}` : v.text, "payload");
  shown.dataset.payload = "";
  td.append(shown);
  if (v.truncated) td.append(text("span", ` … (${v.bytes} bytes)`, "muted"));
  return td;
}

function letterRow(letter) {
  const tr = document.createElement("tr");
  tr.dataset.reason = letter.reason || "unknown";
  const s = letter.source;
  tr.append(
    text("td", when(letter.timestampMs)),
    text("td", letter.reason || "unknown", "reason"),
    text("td", s ? `${s.topic}/${s.partition}@${s.offset}` : "—"),
    text("td", !letter.key ? "—" : letter.key.encoding === "base64" ? `base64: ${letter.key.text}` : letter.key.text),
    text("td", letter.error || "—"),
    eventCell(letter),
  );
  return tr;
}

/// Reads the latest letters of `view` and lists them.
export async function refreshDeadLetters(view) {
  if (!view) return;
  try {
    const d = await api(`${viewPath(view)}/dead-letters?limit=${LIMIT}`, { quiet: true });
    $("dead-letters-state").textContent = `${d.retained} in ${d.topic}`;
    $("dead-letters-message").hidden = true;
    $("dead-letters").tBodies[0].replaceChildren(...d.letters.map(letterRow));
    $("dead-letters-empty").hidden = d.letters.length > 0;
  } catch (e) {
    const m = $("dead-letters-message");
    m.hidden = false;
    m.textContent = e.status === 403
      ? "Reading dead letters needs get on materializedviews/deadletters (the matview-dead-letter-reader ClusterRole): they are the raw events the view rejected. " + e.message
      : "Dead letters unavailable: " + e.message;
    $("dead-letters").tBodies[0].replaceChildren();
    $("dead-letters-empty").hidden = true;
  }
}

/// Dead letters per reason per interval, summed over `shards` (each the
/// least-lagging replica's figures), as a chart.
export function drawDeadLetterChart(shards, to, span) {
  const byReason = new Map();
  for (const s of shards) {
    for (const sample of s.figures.samples.slice(0, -1)) {
      for (const [reason, n] of Object.entries(sample.deadLetteredByReason || {})) {
        if (!byReason.has(reason)) byReason.set(reason, new Map());
        const points = byReason.get(reason);
        points.set(sample.atMs, (points.get(sample.atMs) || 0) + n);
      }
    }
  }
  // Intervals without letters of a reason are zero, not gaps.
  const times = [...new Set(shards.flatMap((s) => s.figures.samples.slice(0, -1).map((x) => x.atMs)))].sort((a, b) => a - b);
  const series = [...byReason.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([reason, points], i) => ({
    label: reason, cls: `s${(i + 4) % 8}`, points: times.map((t) => [t, points.get(t) || 0]),
  }));
  const totals = series.map((s) => [s.label, s.points.reduce((a, [, v]) => a + v, 0)]);
  if (!series.length) series.push({ label: "none", cls: "s2", points: times.map((t) => [t, 0]) });
  drawChart($("chart-dead-letters"), { series, to, span, unit: "" });
  const rows = totals.map(([reason, n]) => {
    const tr = document.createElement("tr");
    tr.dataset.reason = reason;
    tr.append(text("td", reason, "reason"), text("td", String(n)));
    return tr;
  });
  $("dead-letter-reasons").tBodies[0].replaceChildren(...rows);
}
