//! Engine tests on the shipped examples: shaping, errors, and the laws that
//! make shards and re-delivery safe (property tests).

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use matview_crd::{MaterializedView, MaterializedViewSpec};

fn example(name: &str) -> MaterializedViewSpec {
    let path = format!("{}/../../examples/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("example exists");
    serde_yaml_ng::from_str::<MaterializedView>(&text)
        .expect("example parses")
        .spec
}

fn shop() -> CompiledView {
    compile(&example("items-by-price")).expect("shop example compiles")
}

fn at(offset: i64) -> Position {
    Position {
        partition: 0,
        offset,
    }
}

fn group_of(view: &CompiledView, record: &Record) -> Option<String> {
    record.group.map(|g| view.groups[usize::from(g)].clone())
}

#[test]
fn shop_event_becomes_classified_records() {
    let view = shop();
    let event = json!({"orderId": "o1", "userId": "u1", "items": [
        {"itemId": "i1", "name": "pen", "price": 1.5},
        {"itemId": "i2", "name": "book", "price": 5},
        {"itemId": "i3", "name": "lamp", "price": 50},
        {"itemId": "i4", "name": "chair", "price": 50.01},
    ]});
    let records = view
        .shape(event.to_string().as_bytes(), at(7))
        .expect("valid event");
    let groups: Vec<_> = records.iter().map(|r| group_of(&view, r)).collect();
    assert_eq!(
        groups,
        [
            Some("cheap"),
            Some("affordable"),
            Some("affordable"),
            Some("expensive")
        ]
        .map(|g| g.map(String::from))
    );
    assert!(records.iter().all(|r| r.key == "u1"));
    assert_eq!(records[0].id, "i1");
    // Fields in name order: name, orderId, price.
    assert_eq!(
        records[0].fields,
        vec![json!("pen").into(), json!("o1").into(), json!(1.5).into()]
            as Vec<crate::json::RawJson>
    );
    assert_eq!(
        records[3].sums,
        vec![Decimal::parse("50.01").expect("decimal")]
    );
}

#[test]
fn bad_events_are_rejected_whole_with_the_reason() {
    let view = shop();
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (b"{not json".to_vec(), "not-json", "not JSON"),
        (json!({"userId": "u1", "items": [{"itemId": "a", "name": "x", "price": 1}, {"itemId": "b", "name": "y"}], "orderId": "o"}).to_string().into_bytes(),
            "missing-field", "missing field \"price\" at /price"),
        (json!({"userId": "u1", "orderId": "o", "items": [{"itemId": "a", "name": "x", "price": "12"}]}).to_string().into_bytes(),
            "wrong-type", "expected a number, found a string"),
        (json!({"userId": "u1", "orderId": "o", "items": {"itemId": "a"}}).to_string().into_bytes(),
            "explode-not-array", "/items is not an array but an object"),
        (json!({"orderId": "o", "items": [{"itemId": "a", "name": "x", "price": 1}]}).to_string().into_bytes(),
            "missing-field", "missing row key at ^/userId"),
        (json!({"userId": ["u1"], "orderId": "o", "items": [{"itemId": "a", "name": "x", "price": 1}]}).to_string().into_bytes(),
            "wrong-type", "row key at ^/userId"),
        (vec![b' '; 2 << 20], "too-large", "over the limit of 1048576"),
        (json!({"userId": "", "orderId": "o", "items": [{"itemId": "a", "name": "x", "price": 1}]}).to_string().into_bytes(),
            "empty-key", "row key at ^/userId is empty"),
        (json!({"userId": "..", "orderId": "o", "items": [{"itemId": "a", "name": "x", "price": 1}]}).to_string().into_bytes(),
            "unaddressable-key", "a URL dot segment"),
        (br#"{"userId": "\ud800", "orderId": "o", "items": [{"itemId": "a", "name": "x", "price": 1}]}"#.to_vec(),
            "wrong-type", "not valid Unicode"),
        (json!({"userId": "u", "orderId": "o", "items": [{"itemId": "a", "name": "x", "price": 1e300}]}).to_string().into_bytes(),
            "bad-number", "is out of range"),
    ];
    for (bytes, reason, text) in cases {
        let err = view.shape(&bytes, at(1)).expect_err("must be rejected");
        assert_eq!(err.reason(), reason, "{err}");
        assert!(
            err.to_string().contains(text),
            "{err:?} should mention {text:?}"
        );
    }
    // An empty items array is a valid event with no records.
    let empty = json!({"userId": "u1", "orderId": "o", "items": []}).to_string();
    assert_eq!(view.shape(empty.as_bytes(), at(2)).expect("valid"), vec![]);
}

#[test]
fn numeric_strings_optional_fields_and_otherwise() {
    let view = compile(&example("orders-by-total")).expect("compiles");
    let event = json!({"orderId": "o1", "country": "FR", "total": "129.90"}).to_string();
    let records = view.shape(event.as_bytes(), at(3)).expect("valid");
    assert_eq!(group_of(&view, &records[0]).as_deref(), Some("eu"));
    assert_eq!(
        records[0].sums,
        vec![Decimal::parse("129.9").expect("decimal")]
    );
    let us = json!({"orderId": "o2", "country": "US", "total": 5, "coupon": "X"}).to_string();
    assert_eq!(
        group_of(&view, &view.shape(us.as_bytes(), at(4)).expect("valid")[0]).as_deref(),
        Some("world")
    );
    let bad = json!({"orderId": "o3", "country": "DE", "total": "12,5"}).to_string();
    assert_eq!(
        view.shape(bad.as_bytes(), at(5))
            .expect_err("bad number")
            .reason(),
        "bad-number"
    );
}

#[test]
fn unmatched_records_are_dropped_without_otherwise() {
    let view = compile(&example("payments-by-method")).expect("compiles");
    let event = json!({"paymentId": "p1", "merchant": "m1", "method": "cash", "amount": 3, "refunded": false});
    let records = view
        .shape(event.to_string().as_bytes(), at(1))
        .expect("valid");
    assert_eq!(records[0].group, None);
    let mut row = Row::new(view.groups.len(), 1);
    row.upsert(records[0].clone());
    assert_eq!(row.unclassified(), 1);
    assert!(row.totals.iter().all(|t| t.count == 0));
}

#[test]
fn row_view_bounds_items_and_keeps_totals_exact() {
    let mut spec = example("items-by-price");
    if let Some(items) = spec.aggregate.items.as_mut() {
        items.limit = 2;
    }
    let view = compile(&spec).expect("compiles");
    let event = json!({"orderId": "o1", "userId": "u1", "items": [
        {"itemId": "a", "name": "a", "price": 60}, {"itemId": "b", "name": "b", "price": 99.99},
        {"itemId": "c", "name": "c", "price": 75}, {"itemId": "d", "name": "d", "price": 1},
    ]});
    let mut row = Row::new(view.groups.len(), 1);
    for r in view
        .shape(event.to_string().as_bytes(), at(1))
        .expect("valid")
    {
        row.upsert(r);
    }
    let out = serde_json::to_value(view.view("u1", &row)).expect("serializes");
    let expensive = &out["groups"]["expensive"];
    assert_eq!(expensive["count"], 3);
    assert_eq!(expensive["sum"]["price"], json!(234.99));
    let ids: Vec<_> = expensive["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    assert_eq!(ids, [json!("b"), json!("c")], "keeps the highest prices");
    assert_eq!(expensive["truncated"], true);
    assert_eq!(out["groups"]["affordable"]["count"], 0);
    let back: RowView = serde_json::from_value(out).expect("round trips");
    assert_eq!(back, view.view("u1", &row));
}

#[test]
fn revision_ignores_replicas_resources_and_connection() {
    let spec = example("items-by-price");
    let base = revision(&spec);
    assert_eq!(base.len(), 10);
    let mut scaled = spec.clone();
    scaled.replicas_per_shard = 5;
    scaled.source.kafka.bootstrap_servers = Some("other:9092".into());
    scaled.projector = Some(Default::default());
    assert_eq!(revision(&scaled), base);
    let mut rules = spec.clone();
    rules.classify.rules[0].lt = Some(json!(4));
    assert_ne!(revision(&rules), base);
    let mut sharded = spec;
    sharded.shards = 3;
    assert_ne!(revision(&sharded), base);
}

// ---- laws -------------------------------------------------------------------

/// Independent reference: the final record of each id is the one at the
/// highest position; count and sum per group straight from those.
fn reference_totals(records: &[Record], groups: usize) -> Vec<(u64, Decimal)> {
    let mut latest: BTreeMap<&str, &Record> = BTreeMap::new();
    for r in records {
        let keep = latest
            .get(r.id.as_str())
            .is_none_or(|old| old.version < r.version);
        if keep {
            latest.insert(&r.id, r);
        }
    }
    let mut totals = vec![(0u64, Decimal::ZERO); groups];
    for r in latest.values() {
        if let Some(g) = r.group {
            let t = &mut totals[usize::from(g)];
            t.0 += 1;
            t.1 = t.1.checked_add(r.sums[0]).expect("small sums");
        }
    }
    totals
}

fn fold(records: &[Record], groups: usize) -> Row {
    let mut row = Row::new(groups, 1);
    for r in records {
        row.upsert(r.clone());
    }
    row
}

prop_compose! {
    /// Records of one row: few ids (so ids repeat), unique positions.
    fn records()(raw in prop::collection::vec((0u8..12, prop::option::of(0u16..3), 0i64..10_000, 0i32..3), 0..60)) -> Vec<Record> {
        raw.into_iter().enumerate().map(|(i, (id, group, cents, partition))| Record {
            key: "k".into(),
            id: format!("id{id}"),
            group,
            fields: vec![Value::from(cents).into()],
            sums: vec![Decimal::parse(&format!("{}.{:02}", cents / 100, cents % 100)).expect("decimal")],
            version: Position { partition, offset: i as i64 },
        }).collect()
    }
}

proptest! {
    #[test]
    fn fold_matches_the_reference(rs in records()) {
        let row = fold(&rs, 3);
        let got: Vec<_> = row.totals.iter().map(|t| (t.count, t.sums[0].to_string())).collect();
        let expected: Vec<_> = reference_totals(&rs, 3)
            .into_iter()
            .map(|(count, sum)| (count, sum.to_string()))
            .collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn fold_is_idempotent_and_order_free(rs in records(), seed in any::<u64>()) {
        let once = fold(&rs, 3);
        let mut twice_input = rs.clone();
        twice_input.extend(rs.iter().cloned());
        prop_assert_eq!(&fold(&twice_input, 3), &once);
        let mut shuffled = rs.clone();
        // Deterministic shuffle from the seed.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(fold(&shuffled, 3), once);
    }

    #[test]
    fn merge_is_associative_commutative_and_equals_one_pass(rs in records()) {
        let part = |p: i32| fold(&rs.iter().filter(|r| r.version.partition == p).cloned().collect::<Vec<_>>(), 3);
        let (a, b, c) = (part(0), part(1), part(2));
        let merged = |x: &Row, y: &Row| { let mut m = x.clone(); m.merge(y); m };
        let left = merged(&merged(&a, &b), &c);
        let right = merged(&a, &merged(&b, &c));
        prop_assert_eq!(&left, &right);
        prop_assert_eq!(&merged(&a, &b), &merged(&b, &a));
        prop_assert_eq!(&left, &fold(&rs, 3));
        prop_assert_eq!(&merged(&left, &left), &left);
    }

    #[test]
    fn shard_views_merge_into_the_single_pass_view(rs in records(), limit in 1i32..8) {
        let mut spec = example("items-by-price");
        if let Some(items) = spec.aggregate.items.as_mut() { items.limit = limit; }
        let view = compile(&spec).expect("compiles");
        // Shards hold disjoint ids (each id lives in one partition here).
        let rs: Vec<Record> = rs.into_iter().map(|mut r| {
            r.version.partition = (r.id.len() as i32 + r.id.as_bytes()[2] as i32) % 3;
            r.fields = vec![json!("n").into(), json!("o").into(), r.fields[0].clone()];
            r
        }).collect();
        let shard = |p: i32| fold(&rs.iter().filter(|r| r.version.partition == p).cloned().collect::<Vec<_>>(), 3);
        let views: Vec<RowView> = (0..3).map(|p| view.view("k", &shard(p))).collect();
        let single = view.view("k", &fold(&rs, 3));
        let ab_c = view.merge_views(view.merge_views(views[0].clone(), views[1].clone()), views[2].clone());
        let c_ba = view.merge_views(views[2].clone(), view.merge_views(views[1].clone(), views[0].clone()));
        prop_assert_eq!(&ab_c, &single);
        prop_assert_eq!(&c_ba, &single);
    }
}

/// Order values of every kind: absent, null, numbers written alike and not
/// exact as decimals, text with escapes, a boolean.
const ORDER_VALUES: [Option<&str>; 12] = [
    None,
    Some("null"),
    Some("1"),
    Some("1.0"),
    Some("1.50"),
    Some("1.5"),
    Some("-3"),
    Some("1e3"),
    Some("123456789012345678901234567890123"),
    Some("\"a \\\"quoted\\\" é\""),
    Some("true"),
    Some("2"),
];

/// The shop example keeping `limit` items per group, `keep`ing the highest
/// or lowest by price, or by id.
fn shop_keeping(limit: i32, keep: matview_crd::Keep, by_id: bool) -> CompiledView {
    let mut spec = example("items-by-price");
    if let Some(items) = spec.aggregate.items.as_mut() {
        items.limit = limit;
        items.keep = keep;
        if by_id {
            items.order_by = None;
        }
    }
    compile(&spec).expect("compiles")
}

/// Item lists as a naive sort with `compare_values` orders them: by price
/// (numbers exactly, however written; text where a number is not exact),
/// ties by id, highest kept, cut to the limit.
fn reference_order(mut items: Vec<view::Item>, limit: usize) -> Vec<view::Item> {
    items.sort_by(|a, b| {
        view::compare_values(a.get("price"), b.get("price"))
            .then_with(|| view::compare_values(a.get("id"), b.get("id")))
            .reverse()
    });
    items.truncate(limit);
    items
}

proptest! {
    #[test]
    fn merged_items_are_ordered_as_compare_values_orders_them(
        prices in proptest::collection::vec(0usize..12, 0..40),
        split in 0usize..40,
        limit in 1i32..30,
    ) {
        let view = shop_keeping(limit, matview_crd::Keep::Highest, false);
        let items: Vec<view::Item> = prices
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let mut item = view::Item::new();
                item.insert("id".into(), json::RawJson::string(&format!("i{i:02}")));
                if let Some(text) = ORDER_VALUES[p] {
                    item.insert("price".into(), json::RawJson::from_text(text));
                }
                item
            })
            .collect();
        let (a, b) = items.split_at(split.min(items.len()));
        let row = |part: &[view::Item]| RowView {
            key: "u".into(),
            groups: BTreeMap::from([("cheap".to_string(), GroupView {
                count: Some(part.len() as u64),
                sum: BTreeMap::new(),
                items: Some(part.to_vec()),
                truncated: false,
            })]),
        };
        let merged = view.merge_views(row(a), row(b));
        let got = merged.groups["cheap"].items.clone().unwrap_or_default();
        prop_assert_eq!(got, reference_order(items, limit as usize));
    }
}

proptest! {
    #[test]
    fn written_views_are_the_bytes_of_serialized_views(
        records in proptest::collection::vec((0u8..6, 0usize..12, 0usize..3, any::<bool>()), 0..40),
        limit in 1i32..30,
        lowest in any::<bool>(),
        by_id in any::<bool>(),
        counts in proptest::collection::vec(0u64..60, 3),
    ) {
        let keep = if lowest { matview_crd::Keep::Lowest } else { matview_crd::Keep::Highest };
        let view = shop_keeping(limit, keep, by_id);
        let mut row = Row::new(view.groups.len(), view.aggregate.sums.len());
        for (g, count) in counts.iter().enumerate() {
            row.totals[g].count = *count;
        }
        for (n, (group, price, name, short)) in records.iter().enumerate() {
            let mut fields = vec![json::RawJson::from_text("null"); view.fields.len()];
            for (field, value) in view.fields.iter().zip(fields.iter_mut()) {
                *value = match field.name.as_str() {
                    "price" => json::RawJson::from_text(ORDER_VALUES[*price].unwrap_or("0")),
                    _ => json::RawJson::string(["x", "y\u{1F600}", "<\u{7}>"][*name]),
                };
            }
            if *short {
                fields.pop();
            }
            row.records.insert(format!("id\"{n:02}"), row::StoredRecord {
                group: (*group < 3).then_some(u16::from(*group)),
                fields,
                sums: Vec::new(),
                version: at(n as i64),
            });
        }
        let mut written = Vec::new();
        view.write_view("u\"1", &row, &mut written);
        let serialized = serde_json::to_vec(&view.into_view("u\"1", row)).expect("serializes");
        prop_assert_eq!(String::from_utf8_lossy(&written), String::from_utf8_lossy(&serialized));
    }
}
