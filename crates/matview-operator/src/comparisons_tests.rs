use super::*;
use matview_api::gateway::{
    ComparedRevision, GroupComparison, GroupFiguresView, MovedRecords, RecordCounts, RowCounts,
};

fn entry(serving: &str, pending: &str, running: bool, age: Duration, now: Instant) -> Entry {
    Entry {
        serving: serving.into(),
        pending: pending.into(),
        running,
        started: now - age,
        latest: None,
    }
}

#[test]
fn a_comparison_starts_once_per_pair_and_again_when_it_is_old() {
    let now = Instant::now() + Duration::from_secs(3600);
    let fresh = entry("a", "b", false, Duration::from_secs(5), now);
    let old = entry("a", "b", false, RECOMPUTE, now);
    let old_running = entry("a", "b", true, RECOMPUTE * 3, now);
    assert!(should_start(None, "a", "b", now));
    assert!(!should_start(Some(&fresh), "a", "b", now));
    assert!(should_start(Some(&fresh), "a", "c", now), "another pending");
    assert!(should_start(Some(&fresh), "z", "b", now), "another serving");
    assert!(should_start(Some(&old), "a", "b", now));
    assert!(
        !should_start(Some(&old_running), "a", "b", now),
        "one at a time"
    );
}

fn pod(shard: Option<&str>, ip: Option<&str>) -> Arc<Pod> {
    let mut value = serde_json::json!({"metadata": {"name": "p", "labels": {}}, "status": {}});
    if let Some(shard) = shard {
        value["metadata"]["labels"][LABEL_SHARD] = shard.into();
    }
    if let Some(ip) = ip {
        value["status"]["podIP"] = ip.into();
    }
    Arc::new(serde_json::from_value(value).expect("a pod"))
}

#[test]
fn shards_are_found_by_label_and_every_shard_needs_an_address() {
    let pods = [
        pod(Some("1"), Some("10.0.0.2")),
        pod(Some("0"), Some("10.0.0.1")),
        pod(Some("1"), Some("10.0.0.3")),
        pod(Some("0"), None),
        pod(Some("7"), Some("10.0.0.9")),
        pod(None, Some("10.0.0.8")),
    ];
    let urls = shard_urls(&pods, 2).expect("both shards");
    assert_eq!(urls.len(), 2);
    assert_eq!(urls[0].len(), 1);
    assert!(urls[0][0].contains("10.0.0.1"));
    assert_eq!(urls[1].len(), 2);
    assert_eq!(shard_urls(&pods[..1], 2), None, "shard 0 has no pod");
}

fn group(name: &str, count_delta: i64, sum: &str) -> GroupComparison {
    let figures = GroupFiguresView {
        count: 0,
        sums: BTreeMap::new(),
    };
    GroupComparison {
        group: name.into(),
        serving: figures.clone(),
        candidate: figures,
        count_delta,
        sum_deltas: [("price".to_string(), sum.to_string())].into(),
    }
}

#[test]
fn status_lists_the_largest_moves_and_only_groups_that_change() {
    let moved = (1..=12)
        .map(|n| MovedRecords {
            from: Some(format!("g{n}")),
            to: (n != 3).then(|| "cheap".to_string()),
            records: n * 10,
        })
        .collect();
    let side = |r: &str| ComparedRevision {
        revision: r.into(),
        positions: BTreeMap::new(),
    };
    let c = RevisionComparison {
        serving: side("old"),
        candidate: side("new"),
        consistent: true,
        rows: RowCounts {
            only_serving: 1,
            only_candidate: 2,
            changed: 3,
            same: 4,
        },
        records: RecordCounts {
            only_serving: 0,
            only_candidate: 0,
        },
        moved,
        groups: vec![
            group("cheap", 5, "37.50"),
            group("affordable", -5, "-37.50"),
            group("expensive", 0, "0.00"),
            group("other", 0, "-0"),
        ],
    };
    let s = summarize(&c, Timestamp::UNIX_EPOCH);
    assert_eq!((s.serving.as_str(), s.consistent), ("old", true));
    assert_eq!(
        (
            s.rows_changed,
            s.rows_same,
            s.rows_only_serving,
            s.rows_only_pending
        ),
        (3, 4, 1, 2)
    );
    let records: Vec<u64> = s.moved.iter().map(|m| m.records).collect();
    assert_eq!(records, [120, 110, 100, 90, 80, 70, 60, 50, 40, 30]);
    let groups: Vec<(&str, i64)> = s
        .groups
        .iter()
        .map(|g| (g.group.as_str(), g.count_delta))
        .collect();
    assert_eq!(groups, [("cheap", 5), ("affordable", -5)]);
    assert_eq!(s.groups[1].sum_deltas["price"], "-37.50");
}
