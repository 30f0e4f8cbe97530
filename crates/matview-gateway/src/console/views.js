// Every view in one table: health at a glance, sortable by any column,
// filtered as you type. Built to stay quick with a thousand views: the
// table is rebuilt only when the list, the filter or the order changed.
"use strict";

import { text } from "./api.js";

const $ = (id) => document.getElementById(id);
const list = { views: [], health: () => "", choose: () => {}, sort: "path", descending: false, shown: "" };

function cells(v) {
  return {
    path: `${v.namespace}/${v.name}`,
    health: list.health(v),
    rows: v.rows ?? -1,
    lag: v.lag ?? -1,
    revision: v.revision || "",
    topic: v.topic,
  };
}

function compare(a, b) {
  const x = a.cells[list.sort], y = b.cells[list.sort];
  const order = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
  return (list.descending ? -order : order) || a.cells.path.localeCompare(b.cells.path);
}

function render() {
  const needle = $("views-filter").value.trim().toLowerCase();
  const entries = list.views.map((v, index) => ({ index, cells: cells(v) }));
  const kept = needle
    ? entries.filter((e) => [e.cells.path, e.cells.health, e.cells.topic].some((c) => c.toLowerCase().includes(needle)))
    : entries;
  kept.sort(compare);
  const signature = JSON.stringify([needle, list.sort, list.descending, kept.map((e) => e.cells)]);
  if (signature === list.shown) return;
  list.shown = signature;
  const fragment = document.createDocumentFragment();
  for (const e of kept) {
    const tr = document.createElement("tr");
    tr.dataset.view = e.cells.path;
    tr.dataset.health = e.cells.health;
    const open = document.createElement("button");
    open.type = "button";
    open.className = "link";
    open.textContent = e.cells.path;
    open.addEventListener("click", () => list.choose(e.index));
    const name = document.createElement("td");
    name.append(open);
    const badge = text("span", e.cells.health, `health ${e.cells.health.replace(" ", "-")}`);
    const healthCell = document.createElement("td");
    healthCell.append(badge);
    const number = (n) => (n < 0 ? "—" : String(n));
    tr.append(name, healthCell, text("td", number(e.cells.rows)), text("td", number(e.cells.lag)),
      text("td", e.cells.revision || "—"), text("td", e.cells.topic));
    fragment.append(tr);
  }
  $("views").tBodies[0].replaceChildren(fragment);
  $("views-count").textContent = `${kept.length} of ${list.views.length} views`;
  for (const b of document.querySelectorAll("#views .sort")) {
    const th = b.closest("th");
    th.setAttribute("aria-sort", b.dataset.sort === list.sort ? (list.descending ? "descending" : "ascending") : "none");
  }
}

export function renderViewList(views, health, choose) {
  Object.assign(list, { views, health, choose });
  render();
}

export function setupViewList() {
  $("views-filter").addEventListener("input", render);
  for (const b of document.querySelectorAll("#views .sort")) {
    b.addEventListener("click", () => {
      list.descending = list.sort === b.dataset.sort ? !list.descending : false;
      list.sort = b.dataset.sort;
      render();
    });
  }
}
