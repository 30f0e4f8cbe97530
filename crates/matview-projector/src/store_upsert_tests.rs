//! Source keys replaced and deleted (envelopes `upsert` and `debezium`):
//! after every batch, the store equals the latest state of each key folded
//! in memory; rows left with no record are gone, and watchers learn which
//! rows left which groups.

use super::tests::{Draws, identity, served, shape};
use super::*;
use matview_crd::Keep;
use matview_engine::{Decimal, Position, Row};

/// One source key's state: the records it produces now.
fn state(draws: &mut Draws, source: usize, offset: i64) -> Vec<Record> {
    let n = draws.next(4) as usize;
    // A key writes to "big" often enough that it outgrows a whole-row read
    // (64 records) and is indexed.
    let big = draws.next(3) == 0;
    (0..n + usize::from(big) * 20)
        .map(|j| {
            let row = if big {
                "big".to_string()
            } else {
                format!("r{}", draws.next(5))
            };
            let group = match draws.next(5) {
                4 => None,
                g => Some(g.min(2) as u16),
            };
            let price = draws.next(40) as i64 - 10;
            Record {
                key: row,
                id: format!("s{source}-{j}"),
                group,
                fields: vec![serde_json::json!(price).into()],
                sums: vec![Decimal::from_i64(price)],
                version: Position {
                    partition: 0,
                    offset,
                },
            }
        })
        .collect()
}

#[test]
fn replaced_and_deleted_keys_leave_exactly_the_latest_states() {
    let items = CompiledItems {
        limit: 5,
        order_by: Some(0),
        keep: Keep::Highest,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(
        dir.path(),
        &identity(),
        shape(Some(items.clone())),
        64 << 20,
    )
    .expect("opens");
    let mut draws = Draws(0x2545_f491_4f6c_dd1d);
    // The reference: each source key's latest records (absent: deleted).
    let mut latest: BTreeMap<usize, Vec<Record>> = BTreeMap::new();
    let mut offset = 0;
    let mut unknown_deletes = 0;
    for batch in 0..40 {
        let mut changes: BTreeMap<usize, SourceChange> = BTreeMap::new();
        for _ in 0..15 {
            let source = draws.next(30) as usize;
            offset += 1;
            let records = if draws.next(5) == 0 {
                Vec::new()
            } else {
                state(&mut draws, source, offset)
            };
            // The batch keeps each key's last state, as the consume loop does.
            changes.insert(
                source,
                SourceChange {
                    key: format!("s{source}").into_bytes(),
                    version: Position {
                        partition: 0,
                        offset,
                    },
                    records,
                },
            );
        }
        let before: BTreeMap<String, Row> = folded(&latest);
        for (source, change) in &changes {
            if change.records.is_empty() {
                unknown_deletes += u64::from(!latest.contains_key(source));
                latest.remove(source);
            } else {
                latest.insert(*source, change.records.clone());
            }
        }
        let outcome = store
            .apply_batch(
                BatchChanges {
                    records: Vec::new(),
                    sources: changes.into_values().collect(),
                },
                &BTreeMap::from([(0, offset + 1)]),
                &BTreeMap::new(),
            )
            .expect("commits");
        let after = folded(&latest);
        for row in ["big", "r0", "r1", "r2", "r3", "r4"] {
            match (store.row(row).expect("reads"), after.get(row)) {
                (None, None) => {}
                (Some(got), Some(want)) => {
                    assert_eq!(got.totals, want.totals, "batch {batch} row {row}");
                    for g in 0..3 {
                        assert_eq!(
                            served(&got, g, &items),
                            served(want, g, &items),
                            "batch {batch} row {row} group {g}"
                        );
                    }
                }
                (got, want) => panic!("batch {batch} row {row}: store {got:?}, reference {want:?}"),
            }
            // Watchers are told which rows left which groups.
            let held = |rows: &BTreeMap<String, Row>, g: usize| {
                rows.get(row).is_some_and(|r| r.totals[g].count > 0)
            };
            let left: Vec<u16> = (0..3u16)
                .filter(|&g| held(&before, g.into()) && !held(&after, g.into()))
                .collect();
            let told = outcome.changed_rows.iter().find(|c| c.key == row);
            assert_eq!(
                told.map(|c| c.left_groups.clone()).unwrap_or_default(),
                left,
                "batch {batch} row {row}"
            );
        }
        assert_eq!(
            store.row_count().expect("count"),
            after.len() as u64,
            "batch {batch}"
        );
        // Each group's size, kept by the batches, equals the reference's.
        let want = group_sizes::GroupSizes {
            rows: (0..3)
                .map(|g| after.values().filter(|r| r.totals[g].count > 0).count() as u64)
                .collect(),
            records: (0..3)
                .map(|g| after.values().map(|r| r.totals[g].count).sum())
                .collect(),
        };
        assert_eq!(store.group_sizes().expect("sizes"), want, "batch {batch}");
    }
    assert_eq!(
        store.counted_group_sizes().expect("counted"),
        store.group_sizes().expect("kept")
    );
    assert!(
        unknown_deletes > 0,
        "the draws include deletes of unknown keys"
    );
    let big = store.row("big").expect("reads");
    assert!(
        big.is_some_and(|b| b.records.len() <= 3 * items.limit),
        "big is indexed"
    );
}

/// Rows folded from every live key's records.
fn folded(latest: &BTreeMap<usize, Vec<Record>>) -> BTreeMap<String, Row> {
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for record in latest.values().flatten() {
        rows.entry(record.key.clone())
            .or_insert_with(|| Row::new(3, 1))
            .upsert(record.clone());
    }
    rows
}
