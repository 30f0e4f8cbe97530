//! How a changed spec goes live (`spec.rollout`) and what status says about
//! it (`status.rollout`): a rebuilt revision switches by itself or waits to be
//! promoted, and the revision switched away from keeps running for a while so
//! that reverting the spec switches back without a rebuild.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The default of `keepPrevious`.
pub const DEFAULT_KEEP_PREVIOUS: &str = "10m";

/// How a changed spec goes live.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// `Automatic` (the default): a rebuilt revision serves as soon as it has caught up with the topic. `Manual`: it catches up and then waits, with its comparison to the serving revision in status, until `promote` names it.
    #[serde(default)]
    pub strategy: RolloutStrategy,
    /// How long the revision switched away from keeps running and consuming after a switch, such as `10m`, `1h30m` or `0s` (default `10m`). Reverting the spec within that time switches back at once, without a rebuild; `0s` removes it right after the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]{1,6}(h|m|s))+)$"))]
    pub keep_previous: Option<String>,
    /// With strategy `Manual`: the revision to serve, as `status.rollout.pending.revision` names it once `status.rollout.pending.caughtUp` is true. The API server refuses a revision that is neither pending nor serving, and a pending one that has not caught up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[0-9a-f]+$"))]
    pub promote: Option<String>,
}

impl Rollout {
    /// `keepPrevious` as a duration (the schema's pattern guarantees the form;
    /// anything else reads as the default).
    pub fn keep_previous(&self) -> Duration {
        let text = self
            .keep_previous
            .as_deref()
            .unwrap_or(DEFAULT_KEEP_PREVIOUS);
        parse_duration(text)
            .or_else(|| parse_duration(DEFAULT_KEEP_PREVIOUS))
            .unwrap_or_default()
    }

    pub fn is_manual(&self) -> bool {
        self.strategy == RolloutStrategy::Manual
    }
}

/// When a caught-up revision starts serving.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RolloutStrategy {
    /// As soon as it has caught up.
    #[default]
    Automatic,
    /// When `spec.rollout.promote` names it.
    Manual,
}

/// `0`, or numbers with units `h`, `m`, `s` in a row (`1h30m`), as
/// Kubernetes writes durations; `None` for anything else. Kept to this small
/// form on purpose: it is what the schema's pattern admits.
pub fn parse_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in text.chars() {
        if let Some(digit) = c.to_digit(10) {
            number = Some(
                number
                    .unwrap_or(0)
                    .checked_mul(10)?
                    .checked_add(digit.into())?,
            );
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(number.take()?.checked_mul(unit)?)?;
    }
    match number {
        Some(_) => None,
        None if text.is_empty() => None,
        None => Some(Duration::from_secs(total)),
    }
}

/// What status says about rollouts: a revision waiting for promotion and
/// the revision kept after a switch.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// With strategy Manual: the revision built from the current spec, while it catches up and while it waits for promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingRevision>,
    /// The revision that served before the last switch, still running and consuming until `keptUntil`: reverting the spec to it switches back at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<KeptRevision>,
}

/// A revision built beside the serving one, waiting to be promoted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PendingRevision {
    /// The revision (a hash of the spec's content fields).
    pub revision: String,
    /// True once every projector is ready and nothing of the topic is left to apply: it can be promoted.
    pub caught_up: bool,
    /// Events of the source topic it has not applied yet; absent until it has committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// Rows it holds; absent until its projectors answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<i64>,
    /// Once caught up: what serving it instead would change, from both revisions' stores (every row). Recomputed while it waits; the gateway's `…/revisions/{revision}/comparison` has the whole comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<ComparisonSummary>,
}

/// The pending revision beside the serving one, in figures.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ComparisonSummary {
    /// When the comparison finished.
    pub compared_at: Time,
    /// The revision it was compared with (the serving one then).
    pub serving: String,
    /// Both revisions were at the same positions and did not move while read: the figures compare the same events exactly. False while events arrive; the figures then cover slightly different events.
    pub consistent: bool,
    /// Rows whose content differs.
    pub rows_changed: u64,
    /// Rows equal in both.
    pub rows_same: u64,
    /// Rows only the serving revision has (promotion removes them).
    pub rows_only_serving: u64,
    /// Rows only the pending revision has (promotion adds them).
    pub rows_only_pending: u64,
    /// Records whose group differs, largest moves first (at most 10; the gateway's comparison lists all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moved: Vec<MovedSummary>,
    /// Per group whose figures change: pending − serving.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupDelta>,
}

/// Records moved from one group to another; no group is a record no rule matched.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MovedSummary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub records: u64,
}

/// How a group's figures change with promotion.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GroupDelta {
    pub group: String,
    /// Records in the group: pending − serving.
    pub count_delta: i64,
    /// Per summed field, pending − serving, an exact decimal.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sum_deltas: BTreeMap<String, String>,
}

/// The revision switched away from, kept for a rollback.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KeptRevision {
    pub revision: String,
    /// When it is removed (the switch's time plus `spec.rollout.keepPrevious`).
    pub kept_until: Time,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_kubernetes_writes_them() {
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        for bad in ["", "10", "m", "1.5h", "10 m", "1d", "-1s"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn keep_previous_defaults_to_ten_minutes() {
        assert_eq!(Rollout::default().keep_previous(), Duration::from_secs(600));
        let none = Rollout {
            keep_previous: Some("0s".into()),
            ..Default::default()
        };
        assert_eq!(none.keep_previous(), Duration::ZERO);
    }
}
