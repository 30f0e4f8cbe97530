//! Exact numbers end to end, checked against an independent arbitrary
//! precision decimal (the `bigdecimal` crate): random decimal texts go
//! through shaping, folding, splitting over two shards, merging and JSON
//! output; what comes out is compared with what bigdecimal computes.

use std::str::FromStr;

use bigdecimal::BigDecimal;
use proptest::prelude::*;

use super::*;
use matview_crd::MaterializedView;

fn shop() -> CompiledView {
    let path = format!(
        "{}/../../examples/items-by-price.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).expect("example exists");
    let view: MaterializedView = serde_yaml_ng::from_str(&text).expect("example parses");
    compile(&view.spec).expect("compiles")
}

/// An exponent: mostly small, also anywhere in i32 and i64, and beyond both.
fn exponent_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (-12i64..12).prop_map(|e| e.to_string()),
        1 => any::<i32>().prop_map(|e| e.to_string()),
        1 => prop::sample::select(vec![i32::MAX, i32::MIN, i32::MAX - 1, i32::MIN + 1])
            .prop_map(|e| e.to_string()),
        1 => any::<i64>().prop_map(|e| e.to_string()),
        1 => "-?[1-9][0-9]{19,30}",
    ]
}

/// A JSON number text: sign, up to 30 integer digits, up to 12 fraction
/// digits, sometimes an exponent — inside and outside the decimal's limits.
fn number_text() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        "[1-9][0-9]{0,29}|0",
        prop::option::of("[0-9]{1,12}"),
        prop::option::of(exponent_text()),
    )
        .prop_map(|(negative, int, frac, exp)| {
            let mut text = String::new();
            if negative {
                text.push('-');
            }
            text.push_str(&int);
            if let Some(frac) = frac {
                text.push('.');
                text.push_str(&frac);
            }
            if let Some(exp) = exp {
                text.push_str(&format!("e{exp}"));
            }
            text
        })
}

/// The value of a number text, independently of the code under test; `None`
/// when it is certainly unrepresentable. An exponent beyond ±100 puts any
/// non-zero mantissa outside the range or below the precision (and would
/// make bigdecimal build a huge integer), so only zero survives it.
fn independent_value(text: &str) -> Option<BigDecimal> {
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text, "0"));
    let small_exponent = exponent.parse::<i64>().is_ok_and(|e| e.abs() <= 100);
    if small_exponent {
        return Some(BigDecimal::from_str(text).expect("valid decimal"));
    }
    let zero = mantissa.bytes().all(|b| matches!(b, b'0' | b'.' | b'-'));
    zero.then(|| BigDecimal::from(0))
}

/// The independent verdict: representable exactly with 9 fraction digits
/// and a magnitude (in nano units) within i128::MAX / 10.
fn representable(value: &BigDecimal) -> bool {
    let nanos = value * BigDecimal::from(1_000_000_000u64);
    let limit = BigDecimal::from(i128::MAX / 10);
    nanos.is_integer() && nanos.abs() <= limit
}

fn served_sum(row: &RowView, group: &str) -> Option<BigDecimal> {
    let json = serde_json::to_string(row).expect("serializes");
    // Read the sum back from the served text, never through a float.
    let at = json.find(&format!("\"{group}\":"))?;
    let rest = &json[at..];
    let sum_at = rest.find("\"sum\":{\"price\":")? + "\"sum\":{\"price\":".len();
    let end = rest[sum_at..].find(['}', ','])?;
    BigDecimal::from_str(&rest[sum_at..sum_at + end]).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_value_in_range_comes_out_exact_and_others_are_bad_numbers(
        prices in prop::collection::vec(number_text(), 1..12),
    ) {
        let view = shop();
        // One group catches everything, so sums can be compared per group
        // without re-implementing classification: use each record's group.
        let items: Vec<String> = prices
            .iter()
            .enumerate()
            .map(|(i, p)| format!(r#"{{"itemId":"i{i}","name":"n","price":{p}}}"#))
            .collect();
        let event = format!(r#"{{"orderId":"o","userId":"u","items":[{}]}}"#, items.join(","));
        let values: Vec<Option<BigDecimal>> =
            prices.iter().map(|p| independent_value(p)).collect();
        let shaped = view.shape(event.as_bytes(), Position { partition: 0, offset: 1 });
        if !values.iter().all(|v| v.as_ref().is_some_and(representable)) {
            let err = shaped.expect_err("an unrepresentable price is refused");
            prop_assert_eq!(err.reason(), "bad-number");
            return Ok(());
        }
        let parsed: Vec<BigDecimal> = values.into_iter().flatten().collect();
        // A group's sum may leave one value's range: it must stay exact.
        let records = shaped.expect("all representable");
        // Two shards hold alternate records; each folds its own, then merge.
        let mut shards = [Row::new(view.groups.len(), 1), Row::new(view.groups.len(), 1)];
        let mut expected: std::collections::BTreeMap<String, BigDecimal> = Default::default();
        for (i, record) in records.into_iter().enumerate() {
            let group = record.group.map(|g| view.groups[usize::from(g)].clone());
            if let Some(group) = group {
                *expected.entry(group).or_default() += &parsed[i];
            }
            // The served item keeps the price's text exactly.
            prop_assert_eq!(record.fields[2].text(), prices[i].as_str());
            shards[i % 2].upsert(record);
        }
        let a = view.view("u", &shards[0]);
        let b = view.view("u", &shards[1]);
        let merged = view.merge_views(a, b);
        // Through JSON and back, as the gateway reads a projector's answer.
        let text = serde_json::to_string(&merged).expect("serializes");
        let reread: RowView = serde_json::from_str(&text).expect("reads back");
        prop_assert_eq!(&reread, &merged);
        for (group, sum) in &expected {
            let served = served_sum(&merged, group);
            prop_assert_eq!(served.as_ref(), Some(sum), "group {}", group);
        }
    }
}

#[test]
fn the_edge_values_of_the_issue() {
    let view = shop();
    let event = |price: &str| {
        format!(
            r#"{{"orderId":"o","userId":"u","items":[{{"itemId":"i","name":"n","price":{price}}}]}}"#
        )
    };
    let at = Position {
        partition: 0,
        offset: 1,
    };
    let records = view
        .shape(event("12345678901234567890.123456789").as_bytes(), at)
        .expect("in range");
    assert_eq!(
        records[0].sums[0].to_string(),
        "12345678901234567890.123456789"
    );
    let mut row = Row::new(view.groups.len(), 1);
    row.upsert(records[0].clone());
    let json = serde_json::to_string(&view.view("u", &row)).expect("json");
    assert!(
        json.contains(r#""sum":{"price":12345678901234567890.123456789}"#)
            && json.contains(r#""price":12345678901234567890.123456789"#),
        "{json}"
    );
    for (price, problem) in [
        ("1e400", "out of range"),
        ("0.1234567891", "more than 9 fraction digits"),
        ("123456789012345678901234567890", "out of range"),
        // Exponents at and beyond i32's ends once wrapped to zero.
        ("1e2147483647", "out of range"),
        ("9.5e2147483647", "out of range"),
        ("1e2147483648", "out of range"),
        ("1e99999999999999999999", "out of range"),
        ("5e-2147483648", "more than 9 fraction digits"),
        (
            "1.00000000000000000001e-2147483640",
            "more than 9 fraction digits",
        ),
    ] {
        let err = view.shape(event(price).as_bytes(), at).expect_err(price);
        assert_eq!(err.reason(), "bad-number", "{price}: {err}");
        assert!(err.to_string().contains(problem), "{price}: {err}");
        assert!(err.to_string().contains(price), "{price}: {err}");
    }
}

/// Twenty items of 1.5e28 (each within a value's range) make a group sum
/// of 3e29, past the decimal's ±1.7e29: it is served with every digit,
/// merged across shards exactly, and removing items takes back exactly
/// what they added. Expected values come from bigdecimal.
#[test]
fn a_groups_sum_past_the_decimals_range_is_served_exactly() {
    let view = shop();
    let price = "15000000000000000000000000000.5";
    let at = |offset| Position {
        partition: 0,
        offset,
    };
    let event = |id: usize, price: &str| {
        format!(
            r#"{{"orderId":"o","userId":"u","items":[{{"itemId":"i{id}","name":"n","price":{price}}}]}}"#
        )
    };
    let mut shards = [
        Row::new(view.groups.len(), 1),
        Row::new(view.groups.len(), 1),
    ];
    for id in 0..20 {
        let records = view
            .shape(event(id, price).as_bytes(), at(id as i64))
            .expect("in range");
        for record in records {
            shards[id % 2].upsert(record);
        }
    }
    let merged = view.merge_views(view.view("u", &shards[0]), view.view("u", &shards[1]));
    let expected = BigDecimal::from_str(price).expect("decimal") * BigDecimal::from(20);
    assert_eq!(served_sum(&merged, "expensive"), Some(expected.clone()));
    let text = serde_json::to_string(&merged).expect("serializes");
    let reread: RowView = serde_json::from_str(&text).expect("reads back");
    assert_eq!(reread, merged, "the gateway reads it back exactly");
    // Fifteen items get cheap (a later event of the same id moves them).
    for id in 0..15 {
        let records = view
            .shape(event(id, "1").as_bytes(), at(100 + id as i64))
            .expect("in range");
        for record in records {
            shards[id % 2].upsert(record);
        }
    }
    let merged = view.merge_views(view.view("u", &shards[0]), view.view("u", &shards[1]));
    let expected = BigDecimal::from_str(price).expect("decimal") * BigDecimal::from(5);
    assert_eq!(served_sum(&merged, "expensive"), Some(expected));
    assert_eq!(served_sum(&merged, "cheap"), Some(BigDecimal::from(15)));
}
