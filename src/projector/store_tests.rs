//! The store's encoding, commits, identity checks and dead-letter ends.

use super::*;
use crate::engine::{Decimal, Position};

/// The store of shard 0 of 1 of view ns/v, revision r1.
fn identity() -> StoreIdentity {
    StoreIdentity {
        format: 0,
        view: "ns/v".into(),
        revision: "r1".into(),
        shard: 0,
        shards: 1,
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
                crate::engine::json::RawJson::number(
                    Decimal::parse_exact("12345678901234567890.123456789").expect("exact"),
                ),
                crate::engine::json::RawJson::null(),
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
    let store = Store::open(dir.path(), &identity, 3, 1, 64 << 20).expect("opens");
    let offsets = BTreeMap::from([(0, 3)]);
    let outcome = store
        .apply_batch(
            vec![
                record("u1", "a", 0, 3, 0),
                record("u1", "b", 2, 70, 1),
                record("u2", "c", 0, 1, 2),
            ],
            &offsets,
            &BTreeMap::new(),
        )
        .expect("commits");
    assert_eq!((outcome.inserted, outcome.new_rows), (3, 2));
    let stale = store
        .apply_batch(
            vec![record("u1", "a", 1, 9, 0)],
            &BTreeMap::from([(0, 4)]),
            &BTreeMap::new(),
        )
        .expect("commits");
    assert_eq!(stale.unchanged, 1, "same position again is a re-delivery");
    let moved = store
        .apply_batch(
            vec![record("u1", "a", 1, 9, 5)],
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
        (1, Decimal::from_i64(9))
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
        Store::open(dir.path(), &other, 3, 1, 64 << 20),
        Err(StoreError::ForeignState { .. })
    ));
    let reopened = Store::open(dir.path(), &identity, 3, 1, 64 << 20).expect("reopens");
    assert_eq!(reopened.row_count().expect("count"), 2);
}

#[test]
fn letter_ends_begin_once_and_only_move_forward_with_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let identity = identity();
    let store = Store::open(dir.path(), &identity, 3, 1, 64 << 20).expect("opens");
    assert_eq!(store.letter_ends().expect("reads"), None);
    store
        .begin_letter_ends(&BTreeMap::from([(0, 10), (1, 4)]))
        .expect("begins");
    store
        .apply_batch(
            vec![record("u1", "a", 0, 3, 0)],
            &BTreeMap::from([(0, 1)]),
            &BTreeMap::from([(0, 12), (1, 2)]),
        )
        .expect("commits");
    drop(store);
    let reopened = Store::open(dir.path(), &identity, 3, 1, 64 << 20).expect("reopens");
    assert_eq!(
        reopened.letter_ends().expect("reads"),
        Some(BTreeMap::from([(0, 12), (1, 4)]))
    );
}

/// A store of `n` records in `dir`, closed.
fn filled_store(dir: &Path, n: i64) -> StoreIdentity {
    let identity = identity();
    let store = Store::open(dir, &identity, 3, 1, 64 << 20).expect("opens");
    for batch in 0..n / 500 {
        let records = (0..500)
            .map(|i| {
                let at = batch * 500 + i;
                record(&format!("u{}", at % 97), &format!("item-{at}"), 1, at, at)
            })
            .collect();
        store
            .apply_batch(
                records,
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
        match Store::open(dir.path(), &identity, 3, 1, 64 << 20) {
            Err(StoreError::Damaged { detail, .. }) => assert!(!detail.is_empty(), "{damage}"),
            Err(other) => panic!("{damage}: not reported as damage: {other:?}"),
            Ok(store) => panic!(
                "{damage}: opened, {} rows",
                store.row_count().unwrap_or_default()
            ),
        }
    }
}
