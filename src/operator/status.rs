//! Status as a pure function of what reconcile observed: conditions with
//! reasons and messages that say what to fix, and the phase.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::status::set_condition;
use crate::crd::{Condition, ConditionStatus, ConditionType, MaterializedViewStatus, Phase};

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
    /// Pure: counts the StatefulSets of one revision (one per shard).
    pub fn of_stateful_sets(
        shards: u32,
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

/// What reconcile observed.
#[derive(Debug, Clone)]
pub struct Observed {
    pub generation: Option<i64>,
    /// `Err(message)` when the spec does not compile.
    pub spec: Result<(), String>,
    /// `Err(message)` when the source topic cannot be read.
    pub source: Result<i32, String>,
    pub active_revision: Option<String>,
    pub target_revision: Option<String>,
    pub active: Readiness,
    pub target: Option<Readiness>,
    pub lag: Option<i64>,
    pub stats: Option<ViewTotals>,
    pub path: String,
}

impl Default for Observed {
    fn default() -> Self {
        Observed {
            generation: None,
            spec: Ok(()),
            source: Err("not checked yet".into()),
            active_revision: None,
            target_revision: None,
            active: Readiness::default(),
            target: None,
            lag: None,
            stats: None,
            path: String::new(),
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
    status.path = Some(o.path.clone());
    let serving_before = status.active_revision.is_some();
    let mut c = Setter {
        status: &mut status,
        now,
        generation: o.generation,
    };
    let phase = if let Err(message) = &o.spec {
        invalid_spec(&mut c, message, serving_before && o.active.serving())
    } else if let Err(message) = &o.source {
        source_unavailable(&mut c, message, o.active.serving())
    } else {
        if let Ok(partitions) = &o.source {
            let message = format!("source topic has {partitions} partitions");
            c.set(ConditionType::SourceReady, true, "TopicFound", message);
        }
        serving(&mut c, o)
    };
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

fn source_unavailable(c: &mut Setter<'_>, message: &str, serving: bool) -> Phase {
    c.set(
        ConditionType::SourceReady,
        false,
        "TopicUnavailable",
        message,
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
    let (phase, reason, message) = if a.all_ready() {
        (Phase::Ready, "CaughtUp", format!("{counts} and caught up"))
    } else if a.serving() {
        let message = format!("{counts}; every shard still serves");
        (Phase::Degraded, "ReplicasUnavailable", message)
    } else {
        // Counts only: why pods are not ready is not known here.
        let message = format!("{counts}; the view serves once every shard has a ready projector");
        (Phase::Building, "Building", message)
    };
    c.set(ConditionType::Ready, a.serving(), reason, message);
    // Degraded speaks of serving capacity; a view not serving yet is not
    // degraded, and its reason must not claim ready replicas.
    let (degraded, degraded_reason, degraded_message) = match phase {
        Phase::Degraded => (true, "ReplicasUnavailable", counts.clone()),
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
    match (&o.target_revision, o.target) {
        (Some(target), Some(t)) => {
            let message = format!(
                "revision {target}: {}/{} projectors ready; the active revision keeps serving",
                t.ready_replicas, t.desired_replicas
            );
            c.set(ConditionType::Progressing, true, "Rebuilding", message);
            Phase::Rebuilding
        }
        _ => {
            let building = phase == Phase::Building;
            let reason = if building { "Building" } else { "Stable" };
            c.set(ConditionType::Progressing, building, reason, "");
            phase
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).expect("time"))
    }

    fn ready(r: &MaterializedViewStatus, t: ConditionType) -> (ConditionStatus, String) {
        let c = r
            .conditions
            .iter()
            .find(|c| c.type_ == t)
            .expect("condition");
        (c.status, c.reason.clone())
    }

    fn observed() -> Observed {
        Observed {
            generation: Some(3),
            spec: Ok(()),
            source: Ok(4),
            active_revision: Some("aaa".into()),
            active: Readiness {
                shards: 2,
                shards_found: 2,
                shards_serving: 2,
                ready_replicas: 4,
                desired_replicas: 4,
            },
            path: "/v1/namespaces/shop/views/v".into(),
            ..Default::default()
        }
    }

    #[test]
    fn phases_follow_readiness() {
        let s = compute(None, &observed(), now());
        assert_eq!(s.phase, Some(Phase::Ready));
        assert_eq!(
            ready(&s, ConditionType::Ready),
            (ConditionStatus::True, "CaughtUp".into())
        );
        assert_eq!(s.observed_generation, Some(3));

        let mut o = observed();
        o.active.ready_replicas = 3;
        o.active.shards_serving = 2;
        assert_eq!(compute(None, &o, now()).phase, Some(Phase::Degraded));
        o.active.shards_serving = 1;
        assert_eq!(compute(None, &o, now()).phase, Some(Phase::Building));

        // Nothing ready: Building, and no condition claims otherwise.
        o.active.ready_replicas = 0;
        o.active.shards_serving = 0;
        let s = compute(None, &o, now());
        assert_eq!(s.phase, Some(Phase::Building));
        let (status, reason) = ready(&s, ConditionType::Degraded);
        assert_eq!(
            (status, reason.as_str()),
            (ConditionStatus::False, "NotServingYet")
        );
        let message = &s
            .conditions
            .iter()
            .find(|c| c.type_ == ConditionType::Ready)
            .expect("Ready")
            .message;
        assert!(
            message.starts_with("0/4 projectors ready") && !message.contains("catching up"),
            "{message}"
        );

        let mut o = observed();
        o.target_revision = Some("bbb".into());
        o.target = Some(Readiness {
            shards: 2,
            shards_found: 2,
            ..Default::default()
        });
        let s = compute(None, &o, now());
        assert_eq!(s.phase, Some(Phase::Rebuilding));
        assert_eq!(s.target_revision.as_deref(), Some("bbb"));
        assert_eq!(
            ready(&s, ConditionType::Ready).0,
            ConditionStatus::True,
            "the active revision keeps serving"
        );
    }

    #[test]
    fn invalid_spec_and_missing_source_say_what_to_fix() {
        let mut o = observed();
        o.spec = Err("spec.classify.rules[1]: no value can match".into());
        let s = compute(None, &o, now());
        assert_eq!(s.phase, Some(Phase::Failed));
        let c = s
            .conditions
            .iter()
            .find(|c| c.type_ == ConditionType::Ready)
            .expect("ready");
        assert!(
            c.message.contains("spec.classify.rules[1]"),
            "{}",
            c.message
        );

        let mut o = observed();
        o.active = Readiness::default();
        o.source = Err("topic orders does not exist".into());
        let s = compute(None, &o, now());
        assert_eq!(s.phase, Some(Phase::Pending));
        assert_eq!(
            ready(&s, ConditionType::SourceReady),
            (ConditionStatus::False, "TopicUnavailable".into())
        );
    }
}
