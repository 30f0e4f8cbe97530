//! A view's revisions as the console shows them: the serving one, the one
//! being built beside it (how much of the topic it applied, how fast, when
//! it will have caught up), and what changed in the spec between them.
//!
//! | route | answer |
//! |---|---|
//! | gateway `GET /v1/namespaces/{ns}/views/{name}/revisions` | [`ViewRevisions`] |

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::figures::ProjectorFigures;
use super::projector::{PartitionPosition, Positions};

/// One difference between two specs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpecChange {
    /// Where, as a JSON pointer into the spec (`/classify/rules/1/lt`).
    pub path: String,
    /// The serving revision's value; absent when the built one added it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<Value>,
    /// The built revision's value; absent when it removed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub building: Option<Value>,
}

/// The revision being built, and how far it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildingRevision {
    pub revision: String,
    /// Strategy Manual: it waits for promotion once caught up.
    pub waits_for_promotion: bool,
    /// Every shard answered and nothing of the topic is left to apply.
    pub caught_up: bool,
    /// Of the events the topic holds now, the percentage applied (over
    /// every shard); absent until every shard answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent_applied: Option<f64>,
    /// Events left to apply, over the shards; absent until every shard answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// Events applied per second over the last 10 s, over the shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_per_second: Option<f64>,
    /// At that pace, seconds until caught up; absent while nothing moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<f64>,
    /// Rows over the shards; absent until every shard answered, or when
    /// rows do not add up over shards (see `ViewFigures::rows_add_up`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Projectors that did not answer, with why.
    pub unanswered: Vec<String>,
}

/// The serving revision, the one built beside it, and the spec's changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ViewRevisions {
    pub serving: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub building: Option<BuildingRevision>,
    /// What the built revision's spec changes from the serving one's (each
    /// as its projectors run it); empty when nothing is built.
    pub changes: Vec<SpecChange>,
}

/// Pure: the differences from `serving` to `building`, in path order.
/// Objects are compared key by key, lists item by item.
pub fn spec_changes(serving: &Value, building: &Value) -> Vec<SpecChange> {
    let mut out = Vec::new();
    walk("", Some(serving), Some(building), &mut out);
    out
}

fn walk(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<SpecChange>) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let escaped = k.replace('~', "~0").replace('/', "~1");
                walk(&format!("{path}/{escaped}"), x.get(k), y.get(k), out);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            for i in 0..x.len().max(y.len()) {
                walk(&format!("{path}/{i}"), x.get(i), y.get(i), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(SpecChange {
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            serving: a.cloned(),
            building: b.cloned(),
        }),
    }
}

/// One answering projector of the revision being built.
pub struct BuildingReplica<'a> {
    pub shard: u32,
    pub positions: &'a Positions,
    pub figures: &'a ProjectorFigures,
}

/// What [`build_progress`] derives.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub caught_up: bool,
    pub percent_applied: Option<f64>,
    pub lag: Option<i64>,
    pub events_per_second: Option<f64>,
    pub eta_seconds: Option<f64>,
    pub rows: Option<u64>,
}

/// Closed intervals the pace is taken over (5 × 2 s).
const PACE_INTERVALS: usize = 5;

/// Pure: a revision's progress from its projectors' answers. Per shard the
/// replica furthest along counts; totals stay absent until every shard
/// answered.
pub fn build_progress(
    shards: u32,
    rows_add_up: bool,
    replicas: &[BuildingReplica<'_>],
) -> Progress {
    let mut best: BTreeMap<u32, &BuildingReplica<'_>> = BTreeMap::new();
    for r in replicas {
        let lag =
            |r: &BuildingReplica<'_>| r.positions.partitions.iter().map(|p| p.lag).sum::<i64>();
        if best.get(&r.shard).is_none_or(|b| lag(r) < lag(b)) {
            best.insert(r.shard, r);
        }
    }
    let complete = shards > 0 && (0..shards).all(|s| best.contains_key(&s));
    let partitions: Vec<&PartitionPosition> = best
        .values()
        .flat_map(|r| r.positions.partitions.iter())
        .collect();
    let lag: i64 = partitions.iter().map(|p| p.lag).sum();
    let held: i64 = partitions
        .iter()
        .map(|p| (p.high_watermark - p.low_watermark).max(0))
        .sum();
    let applied: i64 = partitions
        .iter()
        .map(|p| {
            (p.applied - p.low_watermark).clamp(0, (p.high_watermark - p.low_watermark).max(0))
        })
        .sum();
    let pace: Vec<f64> = best
        .values()
        .filter_map(|r| {
            let f = r.figures;
            // The newest sample is the open interval: partial, left out.
            let closed = &f.samples[..f.samples.len().saturating_sub(1)];
            let recent = &closed[closed.len().saturating_sub(PACE_INTERVALS)..];
            (!recent.is_empty() && f.interval_ms > 0).then(|| {
                let events: u64 = recent.iter().map(|s| s.events).sum();
                events as f64 * 1000.0 / (recent.len() as u64 * f.interval_ms) as f64
            })
        })
        .collect();
    let events_per_second =
        (complete && pace.len() == best.len()).then(|| pace.iter().sum::<f64>());
    let eta_seconds = match events_per_second {
        _ if complete && lag == 0 => Some(0.0),
        Some(rate) if complete && rate > 0.0 => Some(lag as f64 / rate),
        _ => None,
    };
    Progress {
        caught_up: complete && lag == 0,
        percent_applied: complete.then(|| {
            if held == 0 {
                100.0
            } else {
                100.0 * applied as f64 / held as f64
            }
        }),
        lag: complete.then_some(lag),
        events_per_second,
        eta_seconds,
        rows: (complete && rows_add_up).then(|| best.values().map(|r| r.figures.rows).sum()),
    }
}

#[cfg(test)]
#[path = "revisions_tests.rs"]
mod tests;
