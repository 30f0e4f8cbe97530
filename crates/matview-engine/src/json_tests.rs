//! Reading by levels finds what a full parse finds, and numbers keep their text.

use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::node::resolve;

fn level(text: &str) -> (Level<'_>, &RawValue) {
    let root: &RawValue = serde_json::from_str(text).expect("json");
    (Level::of(root), root)
}

#[test]
fn members_are_found_by_name_index_and_escaped_name() {
    let text = r#"{"a": {"b": [10, {"c": 12345678901234567890.123456789}]}, "we\"ird": 1, "a": {"b": [7]}}"#;
    let (top, _) = level(text);
    let tokens = |path: &[&str]| path.iter().map(|t| t.to_string()).collect::<Vec<_>>();
    // A repeated name: the last one wins, as in a full parse.
    assert_eq!(
        resolve(&top, &tokens(&["a", "b", "0"])).map(|v| v.get()),
        Some("7")
    );
    assert_eq!(
        resolve(&top, &tokens(&["we\"ird"])).map(|v| v.get()),
        Some("1")
    );
    let text = r#"{"a": {"b": [10, {"c": 12345678901234567890.123456789}]}}"#;
    let (top, _) = level(text);
    assert_eq!(
        resolve(&top, &tokens(&["a", "b", "1", "c"])).map(|v| v.get()),
        Some("12345678901234567890.123456789")
    );
    assert!(resolve(&top, &tokens(&["a", "b", "01"])).is_none());
    assert!(resolve(&top, &tokens(&["a", "x"])).is_none());
}

#[test]
fn raw_values_say_what_they_are_and_keep_numbers_exact() {
    let n = RawJson::borrowed(level("12345678901234567890.123456789").1);
    assert_eq!(n.kind(), JsonKind::Number);
    assert_eq!(
        n.as_decimal().map(|d| d.map(|d| d.to_string())),
        Some(Ok("12345678901234567890.123456789".into()))
    );
    assert_eq!(
        RawJson::borrowed(level("1e400").1).as_decimal(),
        Some(Err(DecimalError::OutOfRange))
    );
    assert_eq!(
        RawJson::borrowed(level("0.1234567891").1).as_decimal(),
        Some(Err(DecimalError::TooPrecise))
    );
    let s = RawJson::borrowed(level(r#""caf\u00e9""#).1);
    assert_eq!(s.as_string().as_deref(), Some("café"));
    assert_eq!(RawJson::string("a\"b").text(), r#""a\"b""#);
    assert_eq!(RawJson::borrowed(level("true").1).as_bool(), Some(true));
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z\"\\\\é/~]{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map("[a-c~/\"]{0,3}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every path of a document, as pointer tokens.
fn paths(value: &Value, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(prefix.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let mut p = prefix.clone();
                p.push(k.clone());
                paths(v, p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let mut p = prefix.clone();
                p.push(i.to_string());
                paths(v, p, out);
            }
        }
        _ => {}
    }
}

proptest! {
    #[test]
    fn level_reading_agrees_with_a_full_parse(doc in json_value(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_string_pretty(&doc).expect("json")
        } else {
            serde_json::to_string(&doc).expect("json")
        };
        let (top, _) = level(&text);
        let mut all = Vec::new();
        paths(&doc, Vec::new(), &mut all);
        for tokens in all.into_iter().filter(|t| !t.is_empty()) {
            let expected = tokens.iter().try_fold(&doc, |v, t| match v {
                Value::Object(m) => m.get(t),
                Value::Array(a) => a.get(t.parse::<usize>().ok()?),
                _ => None,
            });
            let found = resolve(&top, &tokens)
                .map(|raw| serde_json::from_str::<Value>(raw.get()).expect("a slice is json"));
            prop_assert_eq!(found.as_ref(), expected, "at {:?}", tokens);
        }
    }
}
