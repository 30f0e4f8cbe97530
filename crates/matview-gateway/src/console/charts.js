// Small live line charts, drawn as SVG from the projectors' figures. No
// chart library: nothing can load under the page's policy unless it is
// embedded, and a chart here is one polyline per series.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 320;
const HEIGHT = 110;
const PAD = { left: 44, right: 6, top: 8, bottom: 16 };

function svg(tag, attributes) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes)) el.setAttribute(k, String(v));
  return el;
}

/// A round number at or above `v`, for the y axis (1, 2, 5 × 10ⁿ).
export function niceMax(v) {
  if (!(v > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * power).find((m) => m >= v);
}

export function formatValue(v, unit) {
  if (unit === "ms" && v >= 1000) return `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)} s`;
  const n = v >= 1000 ? `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}k` : `${Math.round(v * 10) / 10}`;
  return unit ? `${n} ${unit}` : n;
}

/// Points [[t, v]] → SVG coordinates over [from, to] × [0, max]; a null
/// value breaks the line (no data in that interval).
export function segments(points, from, to, max) {
  const w = WIDTH - PAD.left - PAD.right, h = HEIGHT - PAD.top - PAD.bottom;
  const out = [];
  let current = [];
  for (const [t, v] of points) {
    if (v === null || v === undefined || t < from) {
      if (current.length) out.push(current);
      current = [];
      continue;
    }
    const x = PAD.left + ((t - from) / Math.max(1, to - from)) * w;
    const y = PAD.top + h - (Math.min(v, max) / max) * h;
    current.push(`${x.toFixed(1)},${y.toFixed(1)}`);
  }
  if (current.length) out.push(current);
  return out;
}

/// Draws `series` ({label, cls, points}) into `figure` (a <figure> with an
/// <svg> and a legend <ul>), the last `span` ms up to `to`.
export function drawChart(figure, { series, to, span, unit }) {
  // Younger figures than the span (a projector just started) fill the width.
  const first = Math.min(...series.flatMap((s) => s.points.map(([t]) => t)), to);
  const from = Math.max(to - span, Math.min(first, to - 60000));
  span = to - from;
  const values = series.flatMap((s) => s.points.filter(([t, v]) => t >= from && v !== null).map(([, v]) => v));
  const max = niceMax(Math.max(0, ...values));
  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "data-points": values.length });
  chart.append(svg("title", {}));
  chart.firstChild.textContent = `${figure.dataset.title}: ${values.length} points over the last ${Math.round(span / 1000)} seconds`;
  const bottom = HEIGHT - PAD.bottom;
  chart.append(
    svg("line", { x1: PAD.left, y1: PAD.top, x2: WIDTH - PAD.right, y2: PAD.top, class: "grid" }),
    svg("line", { x1: PAD.left, y1: bottom, x2: WIDTH - PAD.right, y2: bottom, class: "axis" }),
  );
  const label = (x, y, value, anchor) => {
    const t = svg("text", { x, y, "text-anchor": anchor, class: "tick" });
    t.textContent = value;
    return t;
  };
  chart.append(
    label(PAD.left - 4, PAD.top + 4, formatValue(max, unit), "end"),
    label(PAD.left - 4, bottom, "0", "end"),
    label(PAD.left, HEIGHT - 3, span >= 120000 ? `−${Math.round(span / 60000)} min` : `−${Math.round(span / 1000)} s`, "start"),
    label(WIDTH - PAD.right, HEIGHT - 3, "now", "end"),
  );
  for (const s of series) {
    for (const part of segments(s.points, from, to, max)) {
      const shape = part.length === 1
        ? svg("circle", { cx: part[0].split(",")[0], cy: part[0].split(",")[1], r: 1.8, class: `dot ${s.cls}` })
        : svg("polyline", { points: part.join(" "), class: `line ${s.cls}` });
      chart.append(shape);
    }
  }
  const legend = document.createElement("ul");
  legend.className = "legend";
  for (const s of series) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = `swatch ${s.cls}`;
    const last = [...s.points].reverse().find(([, v]) => v !== null && v !== undefined);
    item.append(swatch, document.createTextNode(`${s.label} ${last ? formatValue(last[1], unit) : "—"}`));
    legend.append(item);
  }
  figure.querySelector("svg")?.remove();
  figure.querySelector(".legend")?.remove();
  figure.append(chart, legend);
}

/// Horizontal bars, one per [label, value], widths relative to the largest.
export function drawBars(container, bars) {
  const max = Math.max(1, ...bars.map(([, v]) => v));
  container.replaceChildren(...bars.map(([label, value], i) => {
    const row = document.createElement("div");
    row.className = "bar";
    row.dataset.group = label;
    const name = document.createElement("span");
    name.textContent = label;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = `fill s${i % 8}`;
    fill.style.width = `${(100 * value) / max}%`;
    track.append(fill);
    const figure = document.createElement("span");
    figure.className = "value";
    figure.textContent = String(value);
    row.append(name, track, figure);
    return row;
  }));
}
