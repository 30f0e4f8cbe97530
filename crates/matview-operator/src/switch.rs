//! The rollout step of reconcile: observe the spec's revision (readiness,
//! lag, history), let `rollout::decide` say what serves, and announce it.

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;
use tracing::info;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::comparisons::{Pair, shard_urls};
use crate::context::{Context, ReconcileError, publish};
use crate::diagnosis::Diagnosis;
use crate::history::History;
use crate::k8s;
use crate::kafka;
use crate::kafka::KafkaConnection;
use crate::projectors::{ObservedPod, diagnose_pods, revision_pods, view_totals};
use crate::rebuild_history::rebuild_history;
use crate::rollout::{self, RolloutDecision, RolloutInput, Switch};
use crate::status::Readiness;
use matview_api::view::ValidatedView;
use matview_crd::{
    ComparisonSummary, KeptRevision, MaterializedView, MaterializedViewStatus, PendingRevision,
    RolloutStatus,
};

/// The source topic as found.
pub(super) struct SourceTopic {
    pub(super) kafka: KafkaConnection,
    pub(super) partitions: i32,
}

/// The revision serving reads, the one being built beside it, and one that
/// just stopped serving.
pub(super) struct Revisions {
    pub(super) active: String,
    pub(super) target: Option<String>,
    /// Switched off in this reconcile: kept until the next one, so readers
    /// (the gateway) see the new active revision in status before its pods go.
    pub(super) retiring: Option<String>,
    /// Switched off and kept running for a rollback (`keepPrevious`).
    pub(super) kept: Option<String>,
}

impl Revisions {
    /// The revisions whose objects stay.
    pub(super) fn keep(&self) -> BTreeSet<String> {
        [
            Some(self.active.clone()),
            self.target.clone(),
            self.retiring.clone(),
            self.kept.clone(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// What the rollout step reads of one reconcile.
pub(super) struct SwitchContext<'a> {
    pub(super) ctx: &'a Context,
    pub(super) view: &'a MaterializedView,
    pub(super) ns: &'a str,
    pub(super) name: &'a str,
    /// Status as it was before this reconcile.
    pub(super) previous: Option<&'a MaterializedViewStatus>,
    /// The revision serving reads, as status said.
    pub(super) active: Option<String>,
}

/// What the rollout step decided and observed, for status.
pub(super) struct Switched {
    pub(super) revisions: Revisions,
    pub(super) target: Option<Readiness>,
    pub(super) target_pods: Option<Diagnosis>,
    pub(super) history: Option<(String, History)>,
    pub(super) rollout: Option<RolloutStatus>,
    pub(super) promote: Option<String>,
}

/// The spec's revision as observed while it is not the serving one.
struct Candidate {
    ready: Readiness,
    /// Events left to apply; `None` until its group committed.
    lag: Option<i64>,
    caught_up: bool,
    history_incomplete: bool,
}

/// Blue/green: the active revision serves until the spec's revision is
/// ready, caught up and (strategy Manual) promoted; the one switched off is
/// kept for `keepPrevious`, and a spec reverted to it switches back at once.
pub(super) async fn switch_revision(
    run: &SwitchContext<'_>,
    validated: &ValidatedView,
    source: &SourceTopic,
) -> Result<Switched, ReconcileError> {
    let current = validated.revision.clone();
    let active = run.active.clone().unwrap_or_else(|| current.clone());
    let spec = run.view.spec.rollout.clone().unwrap_or_default();
    let before = run.previous.and_then(|s| s.rollout.clone());
    let kept = before.as_ref().and_then(|r| r.previous.clone());
    let mut history = None;
    let candidate = if current == active {
        None
    } else {
        let restoring = kept.as_ref().is_some_and(|k| k.revision == current);
        let (candidate, seen) =
            observe_candidate(run, validated, source, &current, restoring).await;
        history = seen;
        Some(candidate)
    };
    let now = Timestamp::now();
    let decision = rollout::decide(&RolloutInput {
        current: &current,
        active: &active,
        previous: kept.as_ref(),
        manual: spec.is_manual(),
        promote: spec.promote.as_deref(),
        keep_previous: spec.keep_previous(),
        current_caught_up: candidate.as_ref().is_some_and(|c| c.caught_up),
        history_incomplete: candidate.as_ref().is_some_and(|c| c.history_incomplete),
        now,
    });
    let (mut pending, mut target, mut target_pods) = (None, None, None);
    if let (Some(revision), Some(c)) = (&decision.target, &candidate) {
        let ctx = run.ctx;
        let pods = revision_pods(&ctx.caches, &ctx.projectors, run.ns, run.name, revision).await;
        target_pods = diagnose_pods(&pods, c.ready.desired_replicas, now);
        target = Some(c.ready);
        if let Some(p) = &decision.pending {
            let totals =
                view_totals(&ctx.projectors, &pods, validated.keyed_by_row_key, None).await;
            let comparison = match p.caught_up {
                true => comparison(run, validated, &decision.active, &p.revision, pods).await,
                false => None,
            };
            pending = Some(PendingRevision {
                revision: p.revision.clone(),
                caught_up: p.caught_up,
                lag: c.lag,
                rows: totals.map(|t| t.rows),
                comparison,
            });
        }
    }
    if pending.is_none() {
        run.ctx.comparisons.forget(&uid(run.view));
    }
    announce(run, validated, before.as_ref(), &decision, pending.as_ref());
    let rollout = (pending.is_some() || decision.previous.is_some()).then(|| RolloutStatus {
        pending,
        previous: decision.previous.clone(),
    });
    Ok(Switched {
        revisions: Revisions {
            active: decision.active,
            target: decision.target,
            retiring: decision.switched_off,
            kept: decision.previous.map(|k| k.revision),
        },
        target,
        target_pods,
        history,
        rollout,
        promote: spec.promote.clone(),
    })
}

fn uid(view: &MaterializedView) -> String {
    view.metadata.uid.clone().unwrap_or_default()
}

/// The latest comparison of a caught-up pending revision with the serving
/// one (computed in the background; none the first time).
async fn comparison(
    run: &SwitchContext<'_>,
    validated: &ValidatedView,
    serving: &str,
    pending: &str,
    pending_pods: Vec<ObservedPod>,
) -> Option<ComparisonSummary> {
    let ctx = run.ctx;
    let serving_pods = ctx.caches.pods(run.ns, run.name, serving).await;
    // One StatefulSet per shard: the serving revision's shard count may
    // differ from the spec's.
    let sets = ctx.caches.stateful_sets(run.ns, run.name, serving).await;
    let serving_shards = u32::try_from(sets.len()).unwrap_or(0);
    let pending_pods: Vec<_> = pending_pods.into_iter().map(|p| Arc::new(p.pod)).collect();
    let pair = || {
        Some(Pair {
            serving: (
                serving.to_string(),
                shard_urls(&serving_pods, serving_shards).filter(|u| !u.is_empty())?,
            ),
            pending: (
                pending.to_string(),
                shard_urls(&pending_pods, validated.shards)?,
            ),
        })
    };
    ctx.comparisons
        .latest(&uid(run.view), serving, pending, &ctx.projectors, pair)
}

/// Readiness and lag of the spec's revision, and whether retention took
/// events a rebuild would need (not asked for a kept revision: it never
/// stopped consuming).
async fn observe_candidate(
    run: &SwitchContext<'_>,
    validated: &ValidatedView,
    source: &SourceTopic,
    current: &str,
    restoring: bool,
) -> (Candidate, Option<(String, History)>) {
    let ctx = run.ctx;
    let replicas = run.view.spec.replicas_per_shard;
    let ready = k8s::revision_readiness(
        &ctx.caches,
        run.ns,
        run.name,
        current,
        validated.shards,
        replicas,
    )
    .await;
    let mut history_incomplete = false;
    let mut seen = None;
    if !restoring {
        let history =
            rebuild_history(ctx, run.view, validated, &source.kafka, source.partitions).await;
        history_incomplete = history.as_ref().is_some_and(History::blocks_switch);
        seen = history.map(|h| (validated.topic.clone(), h));
    }
    // The group's lag matters only once every projector is ready.
    let group = validated.consumer_group(current);
    let lag = if ready.all_ready() {
        kafka::group_lag(&source.kafka, &group, &validated.topic, source.partitions)
            .await
            .ok()
    } else {
        None
    };
    let candidate = Candidate {
        ready,
        caught_up: ready.all_ready() && lag.as_ref().is_some_and(|l| l.events <= 0),
        lag: lag.filter(|l| l.measured).map(|l| l.events),
        history_incomplete,
    };
    (candidate, seen)
}

/// Events for what this step changed: a switch and why, a revision now
/// waiting for promotion, a pending one dropped, a kept one released.
fn announce(
    run: &SwitchContext<'_>,
    validated: &ValidatedView,
    before: Option<&RolloutStatus>,
    decision: &RolloutDecision,
    pending: Option<&PendingRevision>,
) {
    let ctx = run.ctx;
    let view = run.view;
    if let Some(switch) = decision.switch {
        let from = run.active.clone().unwrap_or_default();
        info!(view = %validated.key(), from = %from, to = %decision.active, ?switch, "switching revision");
        let (reason, note) =
            switch_note(switch, &from, &decision.active, decision.previous.as_ref());
        publish(ctx, view, EventType::Normal, reason, note);
    }
    let was_pending = before.and_then(|r| r.pending.as_ref());
    if let Some(p) = pending.filter(|p| p.caught_up)
        && was_pending.is_none_or(|w| w.revision != p.revision || !w.caught_up)
    {
        let note = format!(
            "revision {} caught up and waits for promotion; revision {} serves until spec.rollout.promote names {}",
            p.revision, decision.active, p.revision
        );
        publish(ctx, view, EventType::Normal, "RolloutPending", note);
    }
    if let Some(w) = was_pending
        && w.revision != decision.active
        && pending.is_none_or(|p| p.revision != w.revision)
    {
        let note = format!(
            "revision {} was waiting for promotion and the spec changed: it is removed",
            w.revision
        );
        publish(ctx, view, EventType::Normal, "PendingRevisionDropped", note);
    }
    if let Some(released) = &decision.released {
        let note = format!(
            "revision {released} is no longer kept for a rollback (spec.rollout.keepPrevious ended, or a later switch keeps another): it is removed"
        );
        publish(
            ctx,
            view,
            EventType::Normal,
            "PreviousRevisionRemoved",
            note,
        );
    }
}

/// The Event of a switch: its reason and note.
fn switch_note(
    switch: Switch,
    from: &str,
    to: &str,
    kept: Option<&KeptRevision>,
) -> (&'static str, String) {
    let after = match kept {
        Some(k) => format!(
            "{from} keeps running until {} (spec.rollout.keepPrevious): setting the spec back switches to it at once",
            k.kept_until.0
        ),
        None => format!("{from} is removed"),
    };
    match switch {
        Switch::CaughtUp => (
            "RevisionActivated",
            format!("revision {to} caught up and now serves; {after}"),
        ),
        Switch::Promoted => (
            "RevisionPromoted",
            format!("revision {to} was promoted and now serves; {after}"),
        ),
        Switch::Restored => (
            "RevisionRestored",
            format!(
                "the spec went back to revision {to}, kept running since the last switch: it serves again without a rebuild; {after}"
            ),
        ),
    }
}
