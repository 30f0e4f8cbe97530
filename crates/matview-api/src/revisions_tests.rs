use serde_json::json;

use super::*;
use crate::figures::FigureSample;

#[test]
fn changed_added_and_removed_values_are_listed_by_path() {
    let serving = json!({"classify": {"field": "price", "rules": [{"group": "cheap", "lt": 5}]},
        "shards": 2, "a/b": 1});
    let building = json!({"classify": {"field": "price", "rules": [{"group": "cheap", "lt": 10},
        {"group": "other", "gte": 10}]}, "shards": 2, "replicasPerShard": 2});
    let changes = spec_changes(&serving, &building);
    let summary: Vec<(&str, Option<Value>, Option<Value>)> = changes
        .iter()
        .map(|c| (c.path.as_str(), c.serving.clone(), c.building.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("/a~1b", Some(json!(1)), None),
            ("/classify/rules/0/lt", Some(json!(5)), Some(json!(10))),
            (
                "/classify/rules/1",
                None,
                Some(json!({"group": "other", "gte": 10}))
            ),
            ("/replicasPerShard", None, Some(json!(2))),
        ]
    );
    assert!(spec_changes(&serving, &serving).is_empty());
}

fn positions(shard: u32, partition: i32, low: i64, applied: i64, high: i64) -> Positions {
    Positions {
        topic: "orders".into(),
        shard,
        shards: 2,
        partitions: vec![PartitionPosition {
            partition,
            applied,
            high_watermark: high,
            lag: (high - applied).max(0),
            low_watermark: low,
        }],
    }
}

fn figures(rows: u64, events_per_interval: &[u64]) -> ProjectorFigures {
    ProjectorFigures {
        revision: "r2".into(),
        shard: 0,
        rows,
        records: rows,
        groups: vec![],
        events_total: 0,
        records_total: 0,
        dead_lettered_total: 0,
        lag_by_partition: BTreeMap::new(),
        interval_ms: 2000,
        samples: events_per_interval
            .iter()
            .enumerate()
            .map(|(i, &events)| FigureSample {
                at_ms: i as i64 * 2000,
                events,
                records: events,
                dead_lettered: 0,
                dead_lettered_by_reason: BTreeMap::new(),
                lag: 0,
                freshness_p50_ms: None,
                freshness_p99_ms: None,
            })
            .collect(),
    }
}

#[test]
fn progress_counts_the_topic_held_and_the_pace_of_each_shards_furthest_replica() {
    // Shard 0: 100 held (offsets 100..200), 50 applied; its slower replica
    // (10 applied) does not count. Shard 1: 300 held, 150 applied.
    let (p0_fast, p0_slow, p1) = (
        positions(0, 0, 100, 150, 200),
        positions(0, 0, 100, 110, 200),
        positions(1, 1, 0, 150, 300),
    );
    // 200 events per 2 s on shard 0 and 100 on shard 1 (the last, open
    // interval is left out of the pace).
    let (f0, f0_slow, f1) = (
        figures(10, &[200, 200, 200, 200, 200, 9999]),
        figures(1, &[1, 1]),
        figures(20, &[100, 100, 100, 100, 100, 9999]),
    );
    let replicas = [
        BuildingReplica {
            shard: 0,
            positions: &p0_slow,
            figures: &f0_slow,
        },
        BuildingReplica {
            shard: 0,
            positions: &p0_fast,
            figures: &f0,
        },
        BuildingReplica {
            shard: 1,
            positions: &p1,
            figures: &f1,
        },
    ];
    let progress = build_progress(2, true, &replicas);
    assert_eq!(progress.percent_applied, Some(50.0));
    assert_eq!(progress.lag, Some(200));
    assert_eq!(progress.events_per_second, Some(150.0));
    let eta = progress.eta_seconds.expect("eta");
    assert!((eta - 200.0 / 150.0).abs() < 1e-9, "{eta}");
    assert_eq!(progress.rows, Some(30));
    assert!(!progress.caught_up);
}

#[test]
fn a_shard_without_an_answer_leaves_the_totals_unknown() {
    let p0 = positions(0, 0, 0, 10, 10);
    let f0 = figures(1, &[5, 5]);
    let progress = build_progress(
        2,
        true,
        &[BuildingReplica {
            shard: 0,
            positions: &p0,
            figures: &f0,
        }],
    );
    assert_eq!(
        (
            progress.percent_applied,
            progress.lag,
            progress.eta_seconds,
            progress.caught_up
        ),
        (None, None, None, false)
    );
}

#[test]
fn caught_up_is_all_applied_and_an_empty_topic_is_all_applied() {
    let p0 = positions(0, 0, 7, 7, 7);
    let f0 = figures(0, &[]);
    let progress = build_progress(
        1,
        true,
        &[BuildingReplica {
            shard: 0,
            positions: &p0,
            figures: &f0,
        }],
    );
    assert_eq!(progress.percent_applied, Some(100.0));
    assert_eq!(progress.eta_seconds, Some(0.0));
    assert!(progress.caught_up);
}
