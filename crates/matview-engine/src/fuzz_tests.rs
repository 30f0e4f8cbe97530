//! Hostile input, fuzzed with proptest: arbitrary bytes and arbitrary JSON
//! through shaping and classification, random numbers as raw JSON text,
//! random specs through compilation and random manifests through
//! `matview validate`. Nothing panics; every rejection is typed (a dead
//! letter's reason) or names the field to fix.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use matview_crd::{MaterializedView, MaterializedViewSpec};

const REASONS: [&str; EventError::REASONS.len()] = EventError::REASONS;

fn example_text() -> String {
    let path = format!(
        "{}/../../examples/items-by-price.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).expect("example exists")
}

fn example_spec() -> MaterializedViewSpec {
    serde_yaml_ng::from_str::<MaterializedView>(&example_text())
        .expect("example parses")
        .spec
}

fn shop() -> CompiledView {
    compile(&example_spec()).expect("the example compiles")
}

const AT: Position = Position {
    partition: 0,
    offset: 0,
};

/// Shapes `bytes`; checks what any outcome must satisfy. Returns the
/// records, or the rejection's reason.
fn shape_checked(view: &CompiledView, bytes: &[u8]) -> Result<Vec<Record>, &'static str> {
    let shaped = view.shape(bytes, AT);
    // A value that is JSON shapes alike from a decoder's tape.
    // (The text is written again: a float in `Value` may have lost digits.)
    if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        let tape = Tape::of_json(&value);
        let text = value.to_string();
        assert_eq!(
            view.shape_tape(&tape, AT),
            view.shape(text.as_bytes(), AT),
            "{text}"
        );
    }
    match shaped {
        Ok(records) => {
            for r in &records {
                assert!(!r.key.is_empty() && r.key != "." && r.key != "..", "{r:?}");
                if let Some(g) = r.group {
                    assert!(usize::from(g) < view.groups.len(), "{r:?}");
                }
            }
            Ok(records)
        }
        Err(e) => {
            assert!(REASONS.contains(&e.reason()), "{e:?}");
            assert!(!e.to_string().is_empty());
            Err(e.reason())
        }
    }
}

/// Any JSON value; the shop's field names are likely, and so are the keys
/// that cannot be stored ("", ".", "..").
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::from),
        prop::sample::select(vec!["", ".", "..", "u1", "0"]).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let field = prop_oneof![
            prop::sample::select(vec![
                "userId", "orderId", "items", "itemId", "name", "price"
            ])
            .prop_map(String::from),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(field, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A shop order whose every field may hold anything.
fn order() -> impl Strategy<Value = Value> {
    let item = (json_value(), json_value(), json_value())
        .prop_map(|(id, name, price)| json!({"itemId": id, "name": name, "price": price}));
    (
        json_value(),
        json_value(),
        prop::collection::vec(item, 0..4),
    )
        .prop_map(|(user, order, items)| json!({"userId": user, "orderId": order, "items": items}))
}

/// Every node of a document, as a JSON pointer.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let token = k.replace('~', "~0").replace('/', "~1");
                pointers(v, format!("{at}/{token}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A change to one node of a spec, as people make them.
#[derive(Debug, Clone)]
enum Edit {
    /// A value of the same JSON type (so the schema lets it through).
    SameType { text: String, number: i64 },
    /// The node removed from its object or array.
    Remove,
    /// Anything at all.
    Replace(Value),
}

fn edit() -> impl Strategy<Value = Edit> {
    let text = prop_oneof![
        prop::sample::select(vec![
            "/price",
            "^/orderId",
            "/items",
            "",
            "/",
            "price",
            "/a~2b",
            "cheap",
            "items.price",
            "^",
            "/items/0",
            "-1",
            "1e400",
            "..",
        ])
        .prop_map(String::from),
        "\\PC{0,10}",
    ];
    let number = prop::sample::select(vec![
        -1i64,
        0,
        1,
        5,
        50,
        100_000,
        i64::from(i32::MAX) + 1,
        i64::MIN,
    ]);
    prop_oneof![
        3 => (text, number).prop_map(|(text, number)| Edit::SameType { text, number }),
        1 => Just(Edit::Remove),
        1 => json_value().prop_map(Edit::Replace),
    ]
}

/// Applies an edit at a pointer (not the root).
fn apply_edit(doc: &mut Value, at: &str, edit: Edit) {
    let Some((parent, last)) = at.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    let Some(container) = doc.pointer_mut(parent) else {
        return;
    };
    let slot = match container {
        Value::Object(map) if matches!(edit, Edit::Remove) => {
            map.remove(&last);
            return;
        }
        Value::Array(items) if matches!(edit, Edit::Remove) => {
            if let Ok(i) = last.parse::<usize>()
                && i < items.len()
            {
                items.remove(i);
            }
            return;
        }
        Value::Object(map) => map.get_mut(&last),
        Value::Array(items) => last.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
        _ => None,
    };
    let Some(slot) = slot else { return };
    *slot = match (edit, &*slot) {
        (Edit::SameType { text, .. }, Value::String(_)) => Value::from(text),
        (Edit::SameType { number, .. }, Value::Number(_)) => Value::from(number),
        (Edit::SameType { .. }, Value::Bool(b)) => Value::from(!b),
        (Edit::SameType { text, .. }, _) => Value::from(text),
        (Edit::Replace(value), _) => value,
        (Edit::Remove, _) => return,
    };
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_are_shaped_or_refused_with_a_reason(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = shape_checked(&shop(), &bytes);
    }

    #[test]
    fn arbitrary_json_is_shaped_or_refused_with_a_reason(doc in json_value()) {
        let _ = shape_checked(&shop(), doc.to_string().as_bytes());
    }

    #[test]
    fn an_order_with_anything_in_its_fields_gives_one_record_per_item_or_a_reason(doc in order()) {
        let items = doc["items"].as_array().map_or(0, Vec::len);
        if let Ok(records) = shape_checked(&shop(), doc.to_string().as_bytes()) {
            prop_assert_eq!(records.len(), items);
        }
    }

    #[test]
    fn any_number_text_is_read_exactly_or_refused_as_bad_number(
        number in "-?(0|[1-9][0-9]{0,40})(\\.[0-9]{1,40})?([eE][-+]?[0-9]{1,4})?",
    ) {
        let text = format!(r#"{{"orderId":"o","userId":"u","items":[{{"itemId":"i","name":"n","price":{number}}}]}}"#);
        match shape_checked(&shop(), text.as_bytes()) {
            Ok(records) => prop_assert_eq!(records.len(), 1),
            Err(reason) => prop_assert_eq!(reason, "bad-number"),
        }
    }

    #[test]
    fn a_spec_with_any_field_changed_compiles_or_names_the_field(
        edits in prop::collection::vec((any::<prop::sample::Index>(), edit()), 1..4),
    ) {
        let mut spec = serde_json::to_value(example_spec()).expect("spec as JSON");
        for (index, edit) in edits {
            let mut all = Vec::new();
            pointers(&spec, String::new(), &mut all);
            if all.len() > 1 {
                let at = index.get(&all[1..]).clone();
                apply_edit(&mut spec, &at, edit);
            }
        }
        // What does not even deserialize is the API server's schema's to refuse.
        if let Ok(spec) = serde_json::from_value::<MaterializedViewSpec>(spec)
            && let Err(e) = compile(&spec)
        {
            prop_assert!(!e.issues.is_empty());
            for issue in &e.issues {
                prop_assert!(issue.path.starts_with("spec."), "{:?}", issue);
                prop_assert!(!issue.message.is_empty(), "{:?}", issue);
            }
        }
    }
}
