//! Status as a pure function of what reconcile observed: conditions with
//! reasons and messages that say what to fix, and the phase.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::diagnosis::Diagnosis;
use super::history::History;
use matview_crd::status::set_condition;
use matview_crd::{
    Condition, ConditionStatus, ConditionType, MaterializedViewStatus, Phase, RolloutStatus,
};

/// Readiness of one revision's StatefulSets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    pub shards: u32,
    /// Shards whose StatefulSet exists.
    pub shards_found: u32,
    /// Shards with at least one ready replica.
    pub shards_serving: u32,
    pub ready_replicas: i32,
    pub desired_replicas: i32,
}

impl Readiness {
    /// Pure: counts the StatefulSets of one revision (one per shard). With
    /// none found yet (just applied, or not in the watch cache yet), the
    /// spec's replicas are the ones desired.
    pub fn of_stateful_sets(
        shards: u32,
        replicas_per_shard: i32,
        sets: &[k8s_openapi::api::apps::v1::StatefulSet],
    ) -> Readiness {
        let mut r = Readiness {
            shards,
            ..Default::default()
        };
        for set in sets {
            let desired = set.spec.replicas.unwrap_or(1);
            let ready = set
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            r.shards_found += 1;
            r.desired_replicas += desired;
            r.ready_replicas += ready.min(desired);
            if ready > 0 {
                r.shards_serving += 1;
            }
        }
        // A revision from an older spec may have another shard count: trust what exists.
        if r.shards_found > 0 {
            r.shards = r.shards_found;
        } else {
            let shards = i32::try_from(shards).unwrap_or(i32::MAX);
            r.desired_replicas = shards.saturating_mul(replicas_per_shard.max(1));
        }
        r
    }

    pub fn all_ready(&self) -> bool {
        self.shards_found == self.shards
            && self.ready_replicas >= self.desired_replicas
            && self.desired_replicas > 0
    }

    pub fn serving(&self) -> bool {
        self.shards > 0 && self.shards_found == self.shards && self.shards_serving == self.shards
    }
}

/// Figures the view's projectors report, summed over shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewTotals {
    pub rows: i64,
    pub records_applied: i64,
    pub dead_lettered: i64,
}

/// Why the source topic cannot be read: the `SourceReady` reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceUnavailable {
    pub reason: &'static str,
    pub message: String,
}

impl SourceUnavailable {
    /// The topic is missing or unreadable.
    pub fn topic(message: impl Into<String>) -> SourceUnavailable {
        SourceUnavailable {
            reason: "TopicUnavailable",
            message: message.into(),
        }
    }
}

/// What reconcile observed.
#[derive(Debug, Clone)]
pub struct Observed {
    pub generation: Option<i64>,
    /// `Err(message)` when the spec does not compile.
    pub spec: Result<(), String>,
    /// The source topic's partitions, or why it cannot be read.
    pub source: Result<i32, SourceUnavailable>,
    pub active_revision: Option<String>,
    pub target_revision: Option<String>,
    pub active: Readiness,
    pub target: Option<Readiness>,
    pub lag: Option<i64>,
    pub stats: Option<ViewTotals>,
    /// Why the active revision's projectors are not all ready.
    pub active_pods: Option<Diagnosis>,
    /// Why the target revision's projectors are not all ready.
    pub target_pods: Option<Diagnosis>,
    /// The view's address on the query gateway, when the operator knows one.
    pub url: Option<String>,
    /// What the active revision's projectors report while serving.
    pub troubles: ProjectorTroubles,
    /// While a revision is rebuilt from the topic: can it see everything?
    pub history: Option<(String, History)>,
    /// A revision waiting for promotion, the one kept for a rollback.
    pub rollout: Option<RolloutStatus>,
    /// `spec.rollout.promote`.
    pub promote: Option<String>,
}

impl Default for Observed {
    fn default() -> Self {
        Observed {
            generation: None,
            spec: Ok(()),
            source: Err(SourceUnavailable::topic("not checked yet")),
            active_revision: None,
            target_revision: None,
            active: Readiness::default(),
            target: None,
            lag: None,
            stats: None,
            active_pods: None,
            target_pods: None,
            url: None,
            troubles: ProjectorTroubles::default(),
            history: None,
            rollout: None,
            promote: None,
        }
    }
}

fn condition(
    type_: ConditionType,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_,
        status: if ok {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        },
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: None,
    }
}

/// Conditions set on one status at one moment, with the observed generation.
struct Setter<'a> {
    status: &'a mut MaterializedViewStatus,
    now: Time,
    generation: Option<i64>,
}

impl Setter<'_> {
    fn set(&mut self, type_: ConditionType, ok: bool, reason: &str, message: impl Into<String>) {
        let c = condition(type_, ok, reason, message, self.generation);
        set_condition(&mut self.status.conditions, c, self.now.clone());
    }
}

/// The next status, keeping transition times of conditions that did not flip.
pub fn compute(
    previous: Option<&MaterializedViewStatus>,
    o: &Observed,
    now: Time,
) -> MaterializedViewStatus {
    let mut status = previous.cloned().unwrap_or_default();
    status.observed_generation = o.generation;
    status.url = o.url.clone();
    let serving_before = status.active_revision.is_some();
    let mut c = Setter {
        status: &mut status,
        now,
        generation: o.generation,
    };
    let phase = if let Err(message) = &o.spec {
        invalid_spec(&mut c, message, serving_before && o.active.serving())
    } else if let Err(why) = &o.source {
        source_unavailable(&mut c, why, o.active.serving())
    } else {
        if let Ok(partitions) = &o.source {
            let message = format!("source topic has {partitions} partitions");
            c.set(
                ConditionType::SourceReady,
                true,
                source::TOPIC_FOUND,
                message,
            );
        }
        serving(&mut c, o)
    };
    if o.spec.is_ok() && o.source.is_ok() {
        rollout_pending(&mut c, o);
    }
    match (&o.target_revision, &o.history) {
        (Some(_), Some((topic, history))) => {
            let (ok, reason, message) = history.condition(topic);
            c.set(ConditionType::HistoryComplete, ok, reason, message);
        }
        // Said only while a rebuild is pending.
        _ => c
            .status
            .conditions
            .retain(|c| c.type_ != ConditionType::HistoryComplete),
    }
    status.phase = Some(phase);
    status
}

/// An invalid spec changes nothing that runs; it is Failed until fixed.
fn invalid_spec(c: &mut Setter<'_>, message: &str, serving: bool) -> Phase {
    let ready = format!("{message}; fix the spec — the running revision is left unchanged");
    c.set(ConditionType::Ready, serving, "InvalidSpec", ready);
    c.set(ConditionType::Progressing, false, "InvalidSpec", message);
    Phase::Failed
}

fn source_unavailable(c: &mut Setter<'_>, why: &SourceUnavailable, serving: bool) -> Phase {
    c.set(
        ConditionType::SourceReady,
        false,
        why.reason,
        why.message.as_str(),
    );
    let waiting = "waiting for the source topic";
    c.set(ConditionType::Ready, serving, "SourceUnavailable", waiting);
    if serving {
        Phase::Degraded
    } else {
        Phase::Pending
    }
}

/// Figures, readiness of the active revision and progress of a target.
fn serving(c: &mut Setter<'_>, o: &Observed) -> Phase {
    c.status.active_revision = o.active_revision.clone();
    c.status.target_revision = o.target_revision.clone();
    c.status.rollout = o.rollout.clone();
    c.status.lag = o.lag;
    if let Some(stats) = o.stats {
        c.status.rows = Some(stats.rows);
        c.status.records_applied = Some(stats.records_applied);
        c.status.dead_lettered = Some(stats.dead_lettered);
    }
    c.status.ready_replicas = Some(o.active.ready_replicas);
    let a = o.active;
    let counts = format!(
        "{}/{} projectors ready",
        a.ready_replicas, a.desired_replicas
    );
    let why = o.active_pods.as_ref();
    let with_cause = |base: String| match why {
        Some(d) => format!("{base}: {}", d.message),
        None => base,
    };
    let troubles = &o.troubles;
    for (type_, ok, reason, message) in source::source_conditions(troubles) {
        c.set(type_, ok, reason, message);
    }
    let (phase, reason, message) = if a.all_ready() && troubles.store.is_some() {
        let message = format!(
            "{counts}, serving; batches held: {}",
            troubles.store.as_deref().unwrap_or_default()
        );
        (Phase::Degraded, "StoreNotWritable", message)
    } else if a.all_ready() && troubles.source.is_some() {
        let message = format!("{counts}, serving from their stores; the broker does not answer");
        (Phase::Degraded, "SourceUnreachable", message)
    } else if a.all_ready() && troubles.schema_registry.is_some() {
        let message =
            format!("{counts}, serving from their stores; the schema registry does not answer");
        (Phase::Degraded, "SchemaRegistryUnreachable", message)
    } else if a.all_ready() {
        (Phase::Ready, "CaughtUp", format!("{counts} and caught up"))
    } else if a.serving() {
        let message = with_cause(format!("{counts}; every shard still serves"));
        (Phase::Degraded, "ReplicasUnavailable", message)
    } else {
        match why {
            Some(d) => (Phase::Building, d.reason, with_cause(counts.clone())),
            None => {
                let message =
                    format!("{counts}; the view serves once every shard has a ready projector");
                (Phase::Building, "Building", message)
            }
        }
    };
    c.set(ConditionType::Ready, a.serving(), reason, message.clone());
    // Degraded speaks of the active revision's serving capacity; a view not
    // serving yet is not degraded, and its reason must not claim ready replicas.
    let (degraded, degraded_reason, degraded_message) = match phase {
        Phase::Degraded if a.all_ready() => (true, reason, message.clone()),
        Phase::Degraded => (
            true,
            why.map_or("ReplicasUnavailable", |d| d.reason),
            with_cause(counts.clone()),
        ),
        Phase::Ready => (false, "AllReplicasReady", counts.clone()),
        _ => (
            false,
            "NotServingYet",
            format!("{counts}; nothing serves yet"),
        ),
    };
    c.set(
        ConditionType::Degraded,
        degraded,
        degraded_reason,
        degraded_message,
    );
    progressing(c, o, phase)
}

/// What is being built, or why it cannot be: a build stuck on something a
/// person must fix is not progressing.
fn progressing(c: &mut Setter<'_>, o: &Observed, phase: Phase) -> Phase {
    let built = match (&o.target_revision, o.target) {
        (Some(target), Some(t)) => Some((
            target.as_str(),
            t,
            o.target_pods.as_ref(),
            "; the active revision keeps serving",
            Phase::Rebuilding,
        )),
        _ if phase == Phase::Building => o
            .active_revision
            .as_deref()
            .map(|r| (r, o.active, o.active_pods.as_ref(), "", Phase::Building)),
        _ => None,
    };
    let awaiting = o.rollout.as_ref().and_then(|r| r.pending.as_ref());
    if let Some(p) = awaiting.filter(|p| p.caught_up && built.is_some()) {
        // Built and caught up: nothing is in progress until someone promotes it.
        let message = format!(
            "revision {} is built and caught up; it waits for promotion (see RolloutPending)",
            p.revision
        );
        c.set(
            ConditionType::Progressing,
            false,
            "AwaitingPromotion",
            message,
        );
        return phase;
    }
    let Some((revision, r, why, serving, phase)) = built else {
        let message = match &o.active_revision {
            Some(r) => format!("revision {r} serves; nothing is being built"),
            None => "nothing is being built".into(),
        };
        c.set(ConditionType::Progressing, false, "Stable", message);
        return phase;
    };
    let counts = format!(
        "{}/{} projectors ready",
        r.ready_replicas, r.desired_replicas
    );
    let cause = why.map(|d| format!(": {}", d.message)).unwrap_or_default();
    let held = o.history.as_ref().filter(|(_, h)| h.blocks_switch());
    if let (Some((topic, _)), Phase::Rebuilding, true) = (held, phase, r.all_ready()) {
        let message = format!(
            "revision {revision} is built but does not switch: retention deleted the beginning of topic {topic} (see HistoryComplete){serving}"
        );
        c.set(
            ConditionType::Progressing,
            false,
            "HistoryIncomplete",
            message,
        );
        return phase;
    }
    match why.filter(|d| d.needs_attention) {
        Some(d) => {
            let message = format!("revision {revision} is stuck, {counts}{cause}{serving}");
            c.set(ConditionType::Progressing, false, d.reason, message);
        }
        None => {
            let reason = if phase == Phase::Rebuilding {
                "Rebuilding"
            } else {
                "Building"
            };
            let message = format!("building revision {revision}, {counts}{cause}{serving}");
            c.set(ConditionType::Progressing, true, reason, message);
        }
    }
    phase
}

/// With strategy Manual: whether a revision waits for promotion, and what
/// to write to promote it; said only while one is pending.
fn rollout_pending(c: &mut Setter<'_>, o: &Observed) {
    let Some(p) = o.rollout.as_ref().and_then(|r| r.pending.as_ref()) else {
        c.status
            .conditions
            .retain(|c| c.type_ != ConditionType::RolloutPending);
        return;
    };
    let serving = o.active_revision.as_deref().unwrap_or("none");
    let promoted = o.promote.as_deref() == Some(p.revision.as_str());
    if p.caught_up {
        let rows = p.rows.map(|r| format!(" ({r} rows)")).unwrap_or_default();
        let message = format!(
            "revision {}{rows} has caught up and waits for promotion; revision {serving} serves until spec.rollout.promote is {}",
            p.revision, p.revision
        );
        c.set(
            ConditionType::RolloutPending,
            true,
            "AwaitingPromotion",
            message,
        );
    } else {
        let lag = p
            .lag
            .map(|l| format!(", {l} events behind"))
            .unwrap_or_default();
        let then = if promoted {
            "it is promoted and serves once caught up"
        } else {
            "it can be promoted once caught up"
        };
        let message = format!(
            "revision {} is being built{lag}; {then}; revision {serving} serves",
            p.revision
        );
        c.set(ConditionType::RolloutPending, false, "CatchingUp", message);
    }
}

#[path = "status_source.rs"]
pub mod source;
pub use source::{ProjectorTroubles, source_event};

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "status_rollout_tests.rs"]
mod rollout_tests;

#[cfg(test)]
#[path = "status_source_tests.rs"]
mod source_tests;
