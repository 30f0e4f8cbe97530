//! The store's encoding, commits, identity checks and dead-letter ends.

use super::*;
use crate::store_codec::{decode_record, encode_record};
use matview_crd::Keep;
use matview_engine::{Decimal, Position, Row};

/// The store of shard 0 of 1 of view ns/v, revision r1.
pub(super) fn identity() -> StoreIdentity {
    StoreIdentity {
        format: 0,
        view: "ns/v".into(),
        revision: "r1".into(),
        shard: 0,
        shards: 1,
    }
}

/// Three groups, one sum, and the items list given.
pub(super) fn shape(items: Option<CompiledItems>) -> RowShape {
    RowShape {
        groups: 3,
        sums: 1,
        items,
    }
}

#[test]
fn records_round_trip_through_the_compact_encoding() {
    for group in [None, Some(0), Some(7)] {
        let record = StoredRecord {
            group,
            fields: vec![
                serde_json::json!("pen").into(),
                serde_json::json!(1.5).into(),
                matview_engine::json::RawJson::number(
                    Decimal::parse_exact("12345678901234567890.123456789").expect("exact"),
                ),
                matview_engine::json::RawJson::null(),
            ],
            sums: vec![
                Decimal::parse("-12.345").expect("decimal"),
                Decimal::from_i64(i64::MAX),
            ],
            version: Position {
                partition: 3,
                offset: 1 << 40,
            },
        };
        let mut bytes = Vec::new();
        encode_record(&record, &mut bytes);
        assert_eq!(decode_record(&bytes).expect("decodes"), record);
    }
    assert!(decode_record(&[1, 2, 3]).is_err());
}

/// Records added (envelope `append`).
fn appended(records: Vec<Record>) -> BatchChanges {
    BatchChanges {
        records,
        sources: Vec::new(),
    }
}

fn record(key: &str, id: &str, group: u16, price: i64, offset: i64) -> Record {
    Record {
        key: key.into(),
        id: id.into(),
        group: Some(group),
        fields: vec![serde_json::json!(price).into()],
        sums: vec![Decimal::from_i64(price)],
        version: Position {
            partition: 0,
            offset,
        },
    }
}

#[test]
fn batches_commit_rows_and_offsets_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    let identity = identity();
    let listed = CompiledItems {
        limit: 10,
        order_by: None,
        keep: Keep::Lowest,
    };
    let store = Store::open(dir.path(), &identity, shape(Some(listed)), 64 << 20).expect("opens");
    let offsets = BTreeMap::from([(0, 3)]);
    let outcome = store
        .apply_batch(
            appended(vec![
                record("u1", "a", 0, 3, 0),
                record("u1", "b", 2, 70, 1),
                record("u2", "c", 0, 1, 2),
            ]),
            &offsets,
            &BTreeMap::new(),
        )
        .expect("commits");
    assert_eq!((outcome.inserted, outcome.new_rows), (3, 2));
    let stale = store
        .apply_batch(
            appended(vec![record("u1", "a", 1, 9, 0)]),
            &BTreeMap::from([(0, 4)]),
            &BTreeMap::new(),
        )
        .expect("commits");
    assert_eq!(stale.unchanged, 1, "same position again is a re-delivery");
    let moved = store
        .apply_batch(
            appended(vec![record("u1", "a", 1, 9, 5)]),
            &BTreeMap::from([(0, 6)]),
            &BTreeMap::new(),
        )
        .expect("commits");
    assert_eq!(moved.replaced, 1);
    let row = store.row("u1").expect("reads").expect("exists");
    assert_eq!(row.records.len(), 2);
    assert_eq!(row.totals[0].count, 0);
    assert_eq!(
        (row.totals[1].count, row.totals[1].sums[0]),
        (1, matview_engine::Sum::of(Decimal::from_i64(9)))
    );
    assert_eq!(
        store.positions().expect("positions"),
        BTreeMap::from([(0, 6)])
    );
    assert_eq!(store.keys_in_group(2, None, 10).expect("scan"), ["u1"]);
    assert_eq!(store.row_count().expect("count"), 2);
    drop(store);

    let other = StoreIdentity {
        revision: "r2".into(),
        ..identity.clone()
    };
    assert!(matches!(
        Store::open(dir.path(), &other, shape(None), 64 << 20),
        Err(StoreError::ForeignState { .. })
    ));
    let reopened = Store::open(dir.path(), &identity, shape(None), 64 << 20).expect("reopens");
    assert_eq!(reopened.row_count().expect("count"), 2);
}

#[test]
fn letter_ends_begin_once_and_only_move_forward_with_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let identity = identity();
    let store = Store::open(dir.path(), &identity, shape(None), 64 << 20).expect("opens");
    assert_eq!(store.letter_ends().expect("reads"), None);
    store
        .begin_letter_ends(&BTreeMap::from([(0, 10), (1, 4)]))
        .expect("begins");
    store
        .apply_batch(
            appended(vec![record("u1", "a", 0, 3, 0)]),
            &BTreeMap::from([(0, 1)]),
            &BTreeMap::from([(0, 12), (1, 2)]),
        )
        .expect("commits");
    drop(store);
    let reopened = Store::open(dir.path(), &identity, shape(None), 64 << 20).expect("reopens");
    assert_eq!(
        reopened.letter_ends().expect("reads"),
        Some(BTreeMap::from([(0, 12), (1, 4)]))
    );
}

/// A store of `n` records in `dir`, closed.
fn filled_store(dir: &Path, n: i64) -> StoreIdentity {
    let identity = identity();
    let store = Store::open(dir, &identity, shape(None), 64 << 20).expect("opens");
    for batch in 0..n / 500 {
        let records = (0..500)
            .map(|i| {
                let at = batch * 500 + i;
                record(&format!("u{}", at % 97), &format!("item-{at}"), 1, at, at)
            })
            .collect();
        store
            .apply_batch(
                appended(records),
                &BTreeMap::from([(0, (batch + 1) * 500)]),
                &BTreeMap::new(),
            )
            .expect("commits");
    }
    identity
}

/// Damage done to a store file's bytes.
type Damage = fn(&mut Vec<u8>);

#[test]
fn a_truncated_or_garbled_store_is_refused_as_damaged() {
    let damages: [(&str, Damage); 3] = [
        ("truncated to half", |bytes| bytes.truncate(bytes.len() / 2)),
        ("second half zeroed", |bytes| {
            let half = bytes.len() / 2;
            bytes[half..].fill(0);
        }),
        ("every page garbled", |bytes| {
            for page in bytes.chunks_mut(4096).skip(1) {
                for b in page.iter_mut().skip(64).take(64) {
                    *b ^= 0x5a;
                }
            }
        }),
    ];
    for (damage, apply) in damages {
        let dir = tempfile::tempdir().expect("tempdir");
        let identity = filled_store(dir.path(), 5_000);
        let file = Store::file_in(dir.path());
        let mut bytes = std::fs::read(&file).expect("reads");
        apply(&mut bytes);
        std::fs::write(&file, &bytes).expect("writes");
        match Store::open(dir.path(), &identity, shape(None), 64 << 20) {
            Err(StoreError::Damaged { detail, .. }) => assert!(!detail.is_empty(), "{damage}"),
            Err(other) => panic!("{damage}: not reported as damage: {other:?}"),
            Ok(store) => panic!(
                "{damage}: opened, {} rows",
                store.row_count().unwrap_or_default()
            ),
        }
    }
}

/// A small deterministic generator (xorshift), so failures reproduce.
pub(super) struct Draws(pub(super) u64);

impl Draws {
    pub(super) fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// Items of group `g` as a read must serve them: by the order field, ties
/// by id, highest or lowest first, at most `limit` (computed from the
/// whole row, apart from the store's index).
pub(super) fn served(row: &Row, g: u16, items: &CompiledItems) -> Vec<(String, String)> {
    use matview_engine::view::compare_values;
    let mut all: Vec<(&String, &StoredRecord)> = row
        .records
        .iter()
        .filter(|(_, r)| r.group == Some(g))
        .collect();
    all.sort_by(|(ia, a), (ib, b)| {
        let ord = compare_values(a.fields.first(), b.fields.first()).then_with(|| ia.cmp(ib));
        match items.keep {
            Keep::Lowest => ord,
            Keep::Highest => ord.reverse(),
        }
    });
    all.into_iter()
        .take(items.limit)
        .map(|(id, r)| (id.clone(), r.fields[0].text().to_string()))
        .collect()
}

#[test]
fn kept_totals_and_indexed_items_equal_the_row_folded_in_memory() {
    for keep in [Keep::Highest, Keep::Lowest] {
        let items = CompiledItems {
            limit: 7,
            order_by: Some(0),
            keep,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(
            dir.path(),
            &identity(),
            shape(Some(items.clone())),
            64 << 20,
        )
        .expect("opens");
        let mut expected: BTreeMap<String, Row> = BTreeMap::new();
        let mut draws = Draws(0x9e37_79b9_7f4a_7c15);
        let mut offset = 0;
        for batch in 0..12 {
            let mut records = Vec::new();
            for _ in 0..50 {
                // "big" outgrows what a read scans whole (64 records) and is
                // indexed; "small" never does.
                let (key, ids) = if draws.next(4) == 0 {
                    ("small", 40)
                } else {
                    ("big", 300)
                };
                let id = format!("i{}", draws.next(ids));
                let group = match draws.next(5) {
                    4 => None,
                    g => Some(g.min(2) as u16),
                };
                // Few distinct prices: ties are ordered by id. Some equal
                // values are written differently (12.5 and 12.50).
                let cents = draws.next(40) as i64 * 25 - 300;
                let exact = Decimal::from_nanos(i128::from(cents) * 10_000_000);
                let price = matview_engine::json::RawJson::number(exact);
                let price = if price.text().contains('.') && draws.next(2) == 0 {
                    serde_json::from_str(&format!("{}0", price.text())).expect("a number")
                } else {
                    price
                };
                // Now and then an older version arrives again: stale.
                let version = if draws.next(10) == 0 && offset > 5 {
                    offset - 5
                } else {
                    offset += 1;
                    offset
                };
                records.push(Record {
                    key: key.into(),
                    id,
                    group,
                    sums: vec![exact],
                    fields: vec![price],
                    version: Position {
                        partition: 0,
                        offset: version,
                    },
                });
            }
            for r in &records {
                expected
                    .entry(r.key.clone())
                    .or_insert_with(|| Row::new(3, 1))
                    .upsert(r.clone());
            }
            store
                .apply_batch(
                    appended(records),
                    &BTreeMap::from([(0, offset)]),
                    &BTreeMap::new(),
                )
                .expect("commits");
            for (key, want) in &expected {
                let got = store.row(key).expect("reads").expect("exists");
                assert_eq!(got.totals, want.totals, "{keep:?} batch {batch} row {key}");
                for g in 0..3 {
                    assert_eq!(
                        served(&got, g, &items),
                        served(want, g, &items),
                        "{keep:?} batch {batch} row {key} group {g}"
                    );
                }
            }
        }
        let big = store.row("big").expect("reads").expect("exists");
        assert!(
            big.records.len() <= 3 * items.limit,
            "an indexed row reads only what it serves: {}",
            big.records.len()
        );
        assert_eq!(store.row_count().expect("count"), 2);
    }
}

#[test]
fn a_store_of_an_older_layout_is_outdated_not_foreign() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), &identity(), shape(None), 64 << 20).expect("opens");
    let txn = store.db.begin_write().expect("write");
    {
        let mut meta = txn.open_table(META).expect("meta");
        let old = StoreIdentity {
            format: 2,
            ..identity()
        };
        let bytes = serde_json::to_vec(&old).expect("json");
        meta.insert("identity", bytes.as_slice()).expect("insert");
    }
    txn.commit().expect("commit");
    drop(store);
    match Store::open(dir.path(), &identity(), shape(None), 64 << 20) {
        Err(StoreError::Outdated {
            found, expected, ..
        }) => {
            assert_eq!((found, expected), (2, STORE_FORMAT));
        }
        other => panic!("expected Outdated, got {:?}", other.err()),
    }
}

#[test]
fn row_records_pages_every_record_with_its_group_and_the_positions() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A list of one item: every record is still read, not only those listed.
    let listed = CompiledItems {
        limit: 1,
        order_by: None,
        keep: Keep::Lowest,
    };
    let store = Store::open(dir.path(), &identity(), shape(Some(listed)), 64 << 20).expect("opens");
    store
        .apply_batch(
            appended(vec![
                record("u1", "a", 0, 3, 0),
                record("u1", "b", 2, 70, 1),
                record("u1", "c", 0, 4, 2),
                record("u2", "d", 1, 9, 3),
            ]),
            &BTreeMap::from([(0, 4)]),
            &BTreeMap::new(),
        )
        .expect("commits");
    let (rows, positions) = store.row_records(None, 1).expect("reads");
    assert_eq!(positions, BTreeMap::from([(0, 4)]));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].key, "u1");
    assert_eq!(
        rows[0].records,
        [
            ("a".to_string(), Some(0)),
            ("b".to_string(), Some(2)),
            ("c".to_string(), Some(0))
        ]
    );
    assert_eq!(rows[0].totals[0].count, 2);
    let (rest, _) = store.row_records(Some("u1"), 10).expect("reads");
    assert_eq!(rest.len(), 1);
    assert_eq!((rest[0].key.as_str(), rest[0].totals[1].count), ("u2", 1));
}
