// Revisions: the serving one; one being built beside it with its progress
// (percent of the topic applied, pace, time left) and what it changes in the
// spec; once it waits for promotion, its comparison with the serving one
// (the gateway's, every row) and how to promote it (a button in `matview
// dev`, the kubectl line in a cluster).
"use strict";

import { api, viewPath, text, table } from "./api.js";

const $ = (id) => document.getElementById(id);
const rollout = { canPromote: false, compared: null, view: () => null, refresh: () => {} };

const signed = (d) => (String(d).startsWith("-") || Number(d) === 0 ? String(d) : "+" + d);

function seconds(s) {
  if (s < 90) return `${Math.ceil(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function specValue(v) {
  return v === undefined || v === null ? "—" : JSON.stringify(v);
}

/// The serving revision, and the one being built with its progress and
/// spec changes (`GET …/revisions`).
export async function refreshRevisions(v) {
  let r;
  try {
    r = await api(`${viewPath(v)}/revisions`, { quiet: true });
  } catch (e) {
    $("revisions-serving").textContent = `Revision ${v.revision ?? "—"} serves.`;
    $("build").hidden = true;
    return;
  }
  const b = r.building;
  $("revisions-serving").textContent = `Revision ${r.serving} serves` + (b ? `; revision ${b.revision} is built beside it.` : ".");
  $("build").hidden = !b;
  if (!b) return;
  const percent = b.percentApplied;
  $("build-progress").value = percent ?? 0;
  $("build-progress").dataset.percent = percent === undefined ? "" : String(percent);
  const pace = b.eventsPerSecond === undefined ? "" : `, ${Math.round(b.eventsPerSecond)} events/s`;
  const left = b.caughtUp ? "caught up" : b.etaSeconds === undefined ? "time left unknown" : `about ${seconds(b.etaSeconds)} left`;
  const unanswered = b.unanswered.length ? ` (${b.unanswered.length} projector(s) did not answer: ${b.unanswered.join("; ")})` : "";
  $("build-state").textContent = `Revision ${b.revision}: ${percent === undefined ? "—" : percent.toFixed(1) + " %"} of the topic applied` +
    ` (lag ${b.lag ?? "—"}, rows ${b.rows ?? "—"}${pace}); ${left}` + (b.waitsForPromotion ? "; waits for promotion." : ".") + unanswered;
  $("spec-changes").replaceChildren(r.changes.length
    ? table(["spec field", `revision ${r.serving}`, `revision ${b.revision}`], r.changes.map((c) => [c.path, specValue(c.serving), specValue(c.building)]))
    : text("p", "No change in the spec (a revision is built again when its content changes).", "muted"));
}

export function renderRollout(v) {
  const p = v.pending;
  $("promote-row").hidden = !p;
  $("rollout-state").hidden = !p;
  $("comparison").hidden = !p;
  if (!p) { rollout.compared = null; return; }
  $("rollout-state").textContent = `Revision ${p.revision} ${p.caughtUp ? "caught up and waits for promotion" : "is catching up"}` +
    ` (lag ${p.lag ?? "—"}, rows ${p.rows ?? "—"}); revision ${v.revision} serves until then.`;
  $("promote").disabled = !(rollout.canPromote && p.caughtUp);
  $("promote").hidden = !rollout.canPromote;
  $("promote-command").hidden = rollout.canPromote;
  $("promote-command").textContent = `kubectl patch mv ${v.name} -n ${v.namespace} --type merge -p '{"spec":{"rollout":{"promote":"${p.revision}"}}}'`;
  const c = rollout.compared;
  const stale = !c || c.revision !== p.revision || performance.now() - c.at > 10000;
  if (p.caughtUp && stale) compare(v, p.revision);
}

async function compare(v, revision) {
  rollout.compared = { revision, at: performance.now() };
  try {
    const c = await api(`${viewPath(v)}/revisions/${encodeURIComponent(revision)}/comparison`);
    const r = c.rows;
    const parts = [text("p", `Rows: ${r.changed} changed, ${r.same} same, ${r.onlyServing} only serving, ${r.onlyCandidate} only pending` +
      (c.consistent ? "." : " (events arrived while reading: close, not exact)."))];
    if (c.moved.length) parts.push(table(["moved from", "to", "records"], c.moved.map((m) => [m.from ?? "(no group)", m.to ?? "(no group)", m.records])));
    const fields = [...new Set(c.groups.flatMap((g) => Object.keys(g.sumDeltas)))];
    parts.push(table(["group", "serving count", "pending count", "count Δ", ...fields.map((f) => `${f} Δ`)],
      c.groups.map((g) => [g.group, g.serving.count, g.candidate.count, signed(g.countDelta), ...fields.map((f) => signed(g.sumDeltas[f] ?? "0"))])));
    $("comparison").replaceChildren(...parts);
  } catch (e) {
    $("comparison").replaceChildren(text("p", "Comparison unavailable: " + e.message));
  }
}

export function setupRollout(currentView, refresh) {
  Object.assign(rollout, { view: currentView, refresh });
  fetch("/dev/v1/namespaces/_/views/_/promote", { method: "OPTIONS" })
    .then((r) => { rollout.canPromote = r.status !== 404; })
    .catch(() => {});
  $("promote").addEventListener("click", async () => {
    const v = rollout.view(), p = v && v.pending;
    if (!p) return;
    $("promote").disabled = true;
    try {
      const done = await api(`/dev/v1/namespaces/${encodeURIComponent(v.namespace)}/views/${encodeURIComponent(v.name)}/promote`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ revision: p.revision }),
      });
      $("promote-result").textContent = `Promoted: revision ${done.serving} serves.`;
      rollout.refresh();
    } catch (e) {
      $("promote-result").textContent = "Not promoted: " + e.message;
      $("promote").disabled = false;
    }
  });
}
