//! The `MaterializedView` status: what `kubectl get mv` and `describe` show.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rollout::RolloutStatus;

/// Observed state of a view, written by the operator.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MaterializedViewStatus {
    /// Lifecycle phase: Pending, Building, Ready, Rebuilding, Degraded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Ready, SourceReady, Progressing and Degraded, each with a reason and a message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Revision that serves reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_revision: Option<String>,
    /// Revision being built to replace the active one (blue/green), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_revision: Option<String>,
    /// Events of the source topic not yet applied by the active revision, summed over partitions; absent (unknown, not 0) until the revision has consumed and committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// Rows in the active revision; absent until its projectors answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<i64>,
    /// Records applied (inserted, replaced or removed) by the active revision; absent until its projectors answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_applied: Option<i64>,
    /// Events of the active revision sent to the dead-letter topic; absent until its projectors answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_lettered: Option<i64>,
    /// Projector pods ready, over all shards of the active revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// URL of the view on the query gateway; set only when the operator is
    /// told where the gateway is (`--gateway-url`; the chart does so when it
    /// installs the gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A revision waiting for promotion, and the previous revision kept for a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
}

/// Lifecycle phase of a view.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Accepted; nothing built yet.
    Pending,
    /// The first revision is catching up with the topic.
    Building,
    /// The active revision is caught up and serving.
    Ready,
    /// A new revision is being built beside the active one.
    Rebuilding,
    /// Serving, but with fewer ready replicas than asked or failing projectors.
    Degraded,
    /// Cannot run: the spec or its source needs fixing.
    Failed,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The variant names are the serialized values users see in status.
        std::fmt::Debug::fmt(self, f)
    }
}

/// A typed status condition, after the Kubernetes convention.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Kind of condition.
    #[serde(rename = "type")]
    pub type_: ConditionType,
    /// True, False or Unknown.
    pub status: ConditionStatus,
    /// One CamelCase word that says why.
    pub reason: String,
    /// What happened and, when something is wrong, what to fix.
    #[serde(default)]
    pub message: String,
    /// The metadata.generation the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// Kinds of condition a view reports.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionType {
    /// The active revision serves reads.
    Ready,
    /// The source topic exists and is readable.
    SourceReady,
    /// A revision is being built or rolled out.
    Progressing,
    /// Something is wrong that reduces availability.
    Degraded,
    /// While a revision is rebuilt: whether the topic still holds every
    /// event the serving revision counted (retention may have deleted them).
    HistoryComplete,
    /// With `spec.rollout.strategy: Manual`, while a revision built from the spec is not serving: True (`AwaitingPromotion`) once it has caught up and waits for `spec.rollout.promote`, False (`CatchingUp`) before.
    RolloutPending,
}

/// Status of a condition.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// Replaces the condition of the same type, keeping `lastTransitionTime` when
/// the status did not change, so that the time says when it last flipped.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition, now: Time) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            new.last_transition_time = if old.status == new.status {
                old.last_transition_time.clone().or(Some(now))
            } else {
                Some(now)
            };
            *old = new;
        }
        None => {
            new.last_transition_time = Some(now);
            conditions.push(new);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).expect("valid timestamp"))
    }

    fn ready(status: ConditionStatus, reason: &str) -> Condition {
        Condition {
            type_: ConditionType::Ready,
            status,
            reason: reason.into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: None,
        }
    }

    #[test]
    fn transition_time_changes_only_when_status_flips() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            ready(ConditionStatus::False, "Building"),
            time(10),
        );
        assert_eq!(conditions[0].last_transition_time, Some(time(10)));

        set_condition(
            &mut conditions,
            ready(ConditionStatus::False, "CatchingUp"),
            time(20),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason, "CatchingUp");
        assert_eq!(conditions[0].last_transition_time, Some(time(10)));

        set_condition(
            &mut conditions,
            ready(ConditionStatus::True, "CaughtUp"),
            time(30),
        );
        assert_eq!(conditions[0].last_transition_time, Some(time(30)));
    }
}
