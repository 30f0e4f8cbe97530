//! A projector's recent figures, sampled at a fixed interval, and a view's
//! figures as the gateway gathers them from every replica: what the console
//! draws (events/s, records/s, lag, freshness), typed rather than scraped
//! from the metrics text.
//!
//! | route | answer |
//! |---|---|
//! | projector `GET /v1/figures` | [`ProjectorFigures`] |
//! | gateway `GET /v1/namespaces/{ns}/views/{name}/figures` | [`ViewFigures`] |

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One sampling interval of one projector. Counts are of this interval only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FigureSample {
    /// When the interval began, milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Events read from the topic and committed.
    pub events: u64,
    /// Records inserted, replaced or removed in the store.
    pub records: u64,
    /// Events sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// The same, per reason (`not-json`, `missing-field`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dead_lettered_by_reason: BTreeMap<String, u64>,
    /// Events of the shard's partitions not applied, at the interval's end
    /// (the last known figure while the interval is still open).
    pub lag: i64,
    /// Of the events committed in the interval, the median and the 99th
    /// percentile of commit time minus the event's Kafka timestamp, in
    /// milliseconds; absent when no event was committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness_p50_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness_p99_ms: Option<u64>,
}

/// A group's size: rows holding records of it, and its records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupSize {
    pub group: String,
    pub rows: u64,
    pub records: u64,
}

/// A projector's figures: totals now, and its last samples, oldest first
/// (the newest is the interval still open).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectorFigures {
    pub revision: String,
    pub shard: u32,
    pub rows: u64,
    /// Records in the store (classified or not).
    pub records: u64,
    /// Each group's rows and records in the store, in the view's group order.
    pub groups: Vec<GroupSize>,
    /// Events read and committed since this process started.
    pub events_total: u64,
    /// Records inserted, replaced or removed since this process started.
    pub records_total: u64,
    pub dead_lettered_total: u64,
    /// Events not applied yet, by partition.
    pub lag_by_partition: BTreeMap<i32, i64>,
    pub interval_ms: u64,
    pub samples: Vec<FigureSample>,
}

impl ProjectorFigures {
    pub fn lag(&self) -> i64 {
        self.lag_by_partition.values().sum()
    }
}

/// One replica's figures, or why they could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaFigures {
    pub shard: u32,
    /// The projector pod (in `matview dev`, the shard's process name).
    pub pod: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figures: Option<ProjectorFigures>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A revision's figures from every ready replica of every shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ViewFigures {
    pub revision: String,
    pub shards: u32,
    /// Whether rows add up over the shards: the topic is keyed by the row
    /// key (each row in one shard), or there is one shard. Otherwise a row
    /// can have records in several shards, and `rows` is absent (the view's
    /// status counts distinct rows) while group rows count row parts.
    pub rows_add_up: bool,
    /// Rows over the shards (from each shard's most advanced replica);
    /// absent until every shard answered, or when rows do not add up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Lag over the shards, same rule as `rows`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// Records over the shards, same rule as `rows`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// Each group's size over the shards; empty until every shard answered.
    pub groups: Vec<GroupSize>,
    /// The replica each shard's totals come from (its least lagging).
    pub counted: Vec<CountedReplica>,
    pub replicas: Vec<ReplicaFigures>,
}

/// The replica a shard's totals come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CountedReplica {
    pub shard: u32,
    pub pod: String,
    /// Its events not applied yet, over its partitions.
    pub lag: i64,
}

impl ViewFigures {
    /// Pure: totals from the replicas' answers. Per shard the replica with
    /// the least lag counts (replicas of a shard hold the same rows, some
    /// later than others); a shard with no answer leaves the totals absent.
    pub fn gather(
        revision: String,
        shards: u32,
        keyed_by_row_key: bool,
        replicas: Vec<ReplicaFigures>,
    ) -> ViewFigures {
        let mut chosen: BTreeMap<u32, (&str, &ProjectorFigures)> = BTreeMap::new();
        for r in &replicas {
            if let Some(f) = &r.figures {
                let better = chosen.get(&r.shard).is_none_or(|(_, b)| f.lag() < b.lag());
                if better {
                    chosen.insert(r.shard, (r.pod.as_str(), f));
                }
            }
        }
        let counted = chosen
            .iter()
            .map(|(&shard, (pod, f))| CountedReplica {
                shard,
                pod: pod.to_string(),
                lag: f.lag(),
            })
            .collect();
        let best: BTreeMap<u32, &ProjectorFigures> =
            chosen.iter().map(|(&s, (_, f))| (s, *f)).collect();
        let rows_add_up = keyed_by_row_key || shards <= 1;
        let complete = (0..shards).all(|s| best.contains_key(&s));
        let mut groups: Vec<GroupSize> = Vec::new();
        if complete {
            for f in best.values() {
                for g in &f.groups {
                    match groups.iter_mut().find(|s| s.group == g.group) {
                        Some(sum) => {
                            sum.rows += g.rows;
                            sum.records += g.records;
                        }
                        None => groups.push(g.clone()),
                    }
                }
            }
        }
        let total = |of: fn(&ProjectorFigures) -> i64| {
            complete.then(|| best.values().map(|f| of(f)).sum::<i64>())
        };
        ViewFigures {
            revision,
            shards,
            rows_add_up,
            rows: total(|f| f.rows as i64)
                .filter(|_| rows_add_up)
                .map(|n| n as u64),
            lag: total(ProjectorFigures::lag),
            records: total(|f| f.records as i64).map(|n| n as u64),
            groups,
            counted,
            replicas,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(shard: u32, rows: u64, lag: i64) -> ProjectorFigures {
        ProjectorFigures {
            revision: "r1".into(),
            shard,
            rows,
            records: rows * 2,
            groups: vec![GroupSize {
                group: "cheap".into(),
                rows,
                records: rows,
            }],
            events_total: 0,
            records_total: 0,
            dead_lettered_total: 0,
            lag_by_partition: BTreeMap::from([(shard as i32, lag)]),
            interval_ms: 2000,
            samples: vec![],
        }
    }

    fn replica(shard: u32, pod: &str, f: Option<ProjectorFigures>) -> ReplicaFigures {
        ReplicaFigures {
            shard,
            pod: pod.into(),
            error: f.is_none().then(|| "unreachable".into()),
            figures: f,
        }
    }

    #[test]
    fn totals_take_each_shards_least_lagging_replica() {
        let replicas = vec![
            replica(0, "a-0", Some(figures(0, 10, 5))),
            replica(0, "b-0", Some(figures(0, 12, 1))),
            replica(1, "a-1", Some(figures(1, 7, 0))),
        ];
        let v = ViewFigures::gather("r1".into(), 2, true, replicas.clone());
        assert_eq!((v.rows, v.lag, v.records), (Some(19), Some(1), Some(38)));
        assert_eq!(
            v.counted,
            vec![
                CountedReplica {
                    shard: 0,
                    pod: "b-0".into(),
                    lag: 1
                },
                CountedReplica {
                    shard: 1,
                    pod: "a-1".into(),
                    lag: 0
                },
            ]
        );
        // Keyed otherwise, a row can have parts in both shards: no sum.
        let spread = ViewFigures::gather("r1".into(), 2, false, replicas);
        assert_eq!((spread.rows, spread.rows_add_up), (None, false));
        assert_eq!(spread.records, Some(38));
        assert_eq!(
            v.groups,
            vec![GroupSize {
                group: "cheap".into(),
                rows: 19,
                records: 19
            }]
        );
    }

    #[test]
    fn a_shard_without_an_answer_leaves_totals_absent() {
        let v = ViewFigures::gather(
            "r1".into(),
            2,
            true,
            vec![
                replica(0, "a-0", Some(figures(0, 10, 0))),
                replica(1, "a-1", None),
            ],
        );
        assert_eq!((v.rows, v.lag, v.records), (None, None, None));
        assert!(v.groups.is_empty());
        assert_eq!(v.replicas.len(), 2);
    }
}
