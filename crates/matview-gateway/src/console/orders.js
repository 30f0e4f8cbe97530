// `matview dev` only: place an order through the write side and measure
// the time until the followed row shows one of its items.
"use strict";

import { api } from "./api.js";
import { onRowShown, openRow } from "./live.js";

const $ = (id) => document.getElementById(id);
// pending: item id → when its order was sent; seenAt: item id → when the
// shown row first had it (the row can arrive before the order's answer).
const orders = { pending: new Map(), seenAt: new Map() };

function settle() {
  for (const [itemId, started] of orders.pending) {
    const seen = orders.seenAt.get(itemId);
    if (seen !== undefined) {
      $("order-result").textContent = `Order visible after ${Math.max(0, Math.round(seen - started))} ms.`;
      orders.pending.delete(itemId);
    }
  }
}

onRowShown((row) => {
  const now = performance.now();
  const shown = new Set(Object.values(row.groups || {}).flatMap((g) => (g.items || []).map((i) => i.id)));
  for (const id of orders.seenAt.keys()) if (!shown.has(id)) orders.seenAt.delete(id);
  for (const id of shown) if (!orders.seenAt.has(id)) orders.seenAt.set(id, now);
  settle();
});

$("row-form").addEventListener("submit", () => {
  $("order-user").value = $("key").value.trim();
  orders.seenAt.clear();
});

$("order-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const user = $("order-user").value.trim();
  const started = performance.now();
  try {
    const placed = await api("/dev/orders", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ userId: user, items: [{ name: $("order-name").value, price: Number($("order-price").value) }] }),
    });
    for (const id of placed.itemIds) orders.pending.set(id, started);
    $("order-result").textContent = `Order ${placed.orderId} written at ${placed.position}; waiting for the view…`;
    if ($("key").value.trim() !== user) {
      orders.seenAt.clear();
      openRow(user);
    }
    settle();
  } catch (err) {
    $("order-result").textContent = "Not placed: " + err.message;
  }
});

fetch("/dev/orders", { method: "OPTIONS" })
  .then((r) => { if (r.status !== 404) $("order-section").hidden = false; })
  .catch(() => {});
