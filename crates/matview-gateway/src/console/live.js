// What moves: the view's row changes as a feed, a group's rows kept up to
// date from the group's stream, and one row followed live. Each is a
// stream of the gateway's (server-sent events, resumed across reconnects).
"use strict";

import { api, follow, viewPath, text } from "./api.js";

const $ = (id) => document.getElementById(id);
const FEED_LENGTH = 30;
const SCAN_LIMIT = 20;
const live = { view: null, streams: [], row: null, key: null, cursor: null, page: 1, rescan: null, rowListeners: [] };

function stopAll() {
  for (const s of live.streams) s.abort();
  live.streams = [];
  if (live.row) live.row.abort();
  live.row = null;
  live.key = null;
}

function stream(path, onEvent, onState) {
  const controller = new AbortController();
  live.streams.push(controller);
  follow(path, { signal: controller.signal, onEvent, onState });
}

/// Follows `view`: its feed, its first group's rows, and (once the feed
/// brings one) a row.
export function followView(view) {
  stopAll();
  live.view = view;
  $("feed").replaceChildren();
  $("groups").replaceChildren();
  $("live").textContent = "";
  $("key").value = "";
  $("group").replaceChildren(...view.groups.map((g) => { const o = text("option", g); o.value = g; return o; }));
  stream(`${viewPath(view)}/watch`, onFeedEvent, (s) => { $("feed-state").textContent = s === "live" ? "● live" : s; });
  showGroup(view.groups[0]);
}

function groupSummary(row) {
  const parts = Object.entries(row.groups || {})
    .filter(([, g]) => (g.count ?? 0) > 0)
    .map(([name, g]) => `${name} ${g.count}`);
  return parts.join(" · ") || "no records";
}

function onFeedEvent(event) {
  if (event.type === "reset") {
    $("feed").prepend(feedEntry(null, "the view restarted its stream (a new revision serves, or the resume point was gone)"));
    return;
  }
  if (event.type !== "rows") return;
  const data = JSON.parse(event.data || "{}");
  const entries = [
    ...(data.rows || []).map((row) => feedEntry(row.key, groupSummary(row))),
    ...(data.removed || []).map((key) => feedEntry(key, "removed: its last record left")),
  ];
  $("feed").prepend(...entries.reverse());
  while ($("feed").children.length > FEED_LENGTH) $("feed").lastElementChild.remove();
  // Nothing chosen yet: follow the first row that moved, so the row panel is alive too.
  const first = (data.rows || [])[0];
  const typing = document.activeElement === $("key") && $("key").value;
  if (!live.key && first && !typing) openRow(first.key);
}

function feedEntry(key, summary) {
  const li = document.createElement("li");
  const time = text("time", new Date().toLocaleTimeString());
  if (key === null) {
    li.append(time, text("span", summary, "muted"));
    return li;
  }
  const open = document.createElement("button");
  open.type = "button";
  open.className = "link";
  open.dataset.key = key;
  open.textContent = key;
  open.addEventListener("click", () => openRow(key));
  li.append(time, open, text("span", summary, "muted"));
  return li;
}

// ---- one row, live ----

/// `listener(row)` sees every version of the followed row that is shown.
export function onRowShown(listener) {
  live.rowListeners.push(listener);
}

export function openRow(key) {
  if (!live.view) return;
  $("key").value = key;
  if (live.key === key && live.row) return;
  live.key = key;
  renderRow(null);
  if (live.row) live.row.abort();
  const controller = new AbortController();
  live.row = controller;
  $("live").textContent = "connecting…";
  const view = live.view;
  follow(`${viewPath(view)}/watch?key=${encodeURIComponent(key)}`, {
    signal: controller.signal,
    onState: (s) => { $("live").textContent = s; },
    onEvent: (event) => onRowEvent(view, key, event),
  });
  // The row as it is now, before its next change arrives.
  api(`${viewPath(view)}/rows/${encodeURIComponent(key)}`)
    .then((row) => { if (live.key === key && !$("groups").dataset.shown) renderRow(row); })
    .catch(() => {});
}

function onRowEvent(view, key, event) {
  if (event.type === "rows") {
    const data = JSON.parse(event.data || "{}");
    if ((data.removed || []).includes(key)) {
      // Its last record left (a delete upstream): the row is gone, live.
      $("groups").replaceChildren(text("p", `Row ${key} was removed: it has no records now.`, "removed"));
      return;
    }
    const row = (data.rows || []).find((r) => r.key === key);
    if (row) renderRow(row);
  } else if (event.type === "reset") {
    // The view changed revision or our place is gone: reload the row.
    api(`${viewPath(view)}/rows/${encodeURIComponent(key)}`).then(renderRow).catch(() => renderRow(null));
  }
}

function renderRow(row) {
  const v = live.view;
  const cards = v.groups.map((name) => {
    const g = (row && row.groups && row.groups[name]) || {};
    const card = document.createElement("article");
    card.className = "group";
    card.dataset.group = name;
    card.append(text("h3", name));
    card.append(text("div", String(g.count ?? 0), "count"));
    const sums = Object.entries(g.sum || {}).map(([f, s]) => `${f} ${s}`).join(", ");
    card.append(text("div", sums || "—", "sum"));
    const list = document.createElement("ul");
    for (const item of g.items || []) {
      const label = [item.name, item.price].filter((x) => x !== undefined).join(" · ");
      list.append(text("li", label || item.id));
    }
    card.append(list);
    return card;
  });
  const groups = $("groups");
  groups.replaceChildren(...cards);
  if (row) groups.dataset.shown = row.key; else delete groups.dataset.shown;
  groups.classList.remove("flash");
  void groups.offsetWidth;
  groups.classList.add("flash");
  if (row) live.rowListeners.forEach((l) => l(row));
}

$("row-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const key = $("key").value.trim();
  if (!key) return;
  live.key = null;
  openRow(key);
});

// ---- a group's rows, kept up to date ----

function showGroup(group) {
  if (!group) return;
  $("group").value = group;
  live.cursor = null;
  live.page = 1;
  scan(null);
  const previous = live.streams.find((s) => s.group);
  if (previous) { previous.abort(); live.streams = live.streams.filter((s) => s !== previous); }
  const controller = new AbortController();
  controller.group = group;
  live.streams.push(controller);
  follow(`${viewPath(live.view)}/watch?group=${encodeURIComponent(group)}`, {
    signal: controller.signal,
    onState: (s) => { $("scan-state").textContent = s === "live" ? "● live" : s; },
    onEvent: (event) => onGroupEvent(group, event),
  });
}

function scanRow(group, row) {
  const g = row.groups[group] || {};
  const tr = document.createElement("tr");
  tr.dataset.key = row.key;
  const open = document.createElement("button");
  open.type = "button";
  open.className = "link";
  open.textContent = row.key;
  open.addEventListener("click", () => openRow(row.key));
  const key = document.createElement("td");
  key.append(open);
  tr.append(key, text("td", String(g.count ?? 0)),
    text("td", Object.entries(g.sum || {}).map(([f, s]) => `${f} ${s}`).join(", ")));
  return tr;
}

async function scan(cursor) {
  const group = $("group").value;
  const query = new URLSearchParams({ limit: String(SCAN_LIMIT) });
  if (cursor) query.set("cursor", cursor);
  try {
    const page = await api(`${viewPath(live.view)}/groups/${encodeURIComponent(group)}/rows?${query}`);
    $("scan").replaceChildren(...page.rows.map((row) => scanRow(group, row)));
    live.cursor = page.next;
    $("next").disabled = !page.next;
  } catch (e) {
    const tr = document.createElement("tr");
    const td = text("td", e.message);
    td.colSpan = 3;
    tr.append(td);
    $("scan").replaceChildren(tr);
  }
}

// A change in the group: rows on the page are updated in place at once;
// the first page is read again (at most once a second) so new rows appear.
function onGroupEvent(group, event) {
  if (event.type !== "rows" && event.type !== "reset") return;
  const data = event.type === "rows" ? JSON.parse(event.data || "{}") : {};
  for (const row of data.rows || []) {
    const shown = $("scan").querySelector(`tr[data-key="${CSS.escape(row.key)}"]`);
    if (shown) {
      const fresh = scanRow(group, row);
      fresh.classList.add("flash");
      shown.replaceWith(fresh);
    }
  }
  for (const key of data.removed || []) {
    $("scan").querySelector(`tr[data-key="${CSS.escape(key)}"]`)?.remove();
  }
  if (live.page === 1 && !live.rescan) {
    live.rescan = setTimeout(() => { live.rescan = null; if ($("group").value === group && live.page === 1) scan(null); }, 1000);
  }
}

$("scan-form").addEventListener("submit", (e) => { e.preventDefault(); showGroup($("group").value); });
$("group").addEventListener("change", () => showGroup($("group").value));
$("next").addEventListener("click", () => { live.page += 1; scan(live.cursor); });
