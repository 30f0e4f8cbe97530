//! Envelopes on the shipped examples: what each kind of message does, and
//! the messages that are refused with their reason.

use serde_json::json;

use super::*;
use crate::envelope::{EventValue, MessageChange};
use matview_crd::{Envelope, MaterializedView, MaterializedViewSpec};

fn example(name: &str) -> MaterializedViewSpec {
    let path = format!("{}/../../examples/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("example exists");
    serde_yaml_ng::from_str::<MaterializedView>(&text)
        .expect("example parses")
        .spec
}

fn at(offset: i64) -> Position {
    Position {
        partition: 0,
        offset,
    }
}

fn shape(
    view: &CompiledView,
    key: Option<&str>,
    value: Option<serde_json::Value>,
) -> Result<MessageChange, EventError> {
    let tape = value.as_ref().map(Tape::of_json);
    let text = value.map(|v| v.to_string());
    let key = key.map(str::as_bytes);
    let from_json = view.shape_message(key, text.as_deref().map(str::as_bytes), at(3));
    // The same event decoded from a binary format changes the view alike.
    let decoded = view.shape_event(key, tape.as_ref().map(EventValue::Decoded), at(3));
    assert_eq!(decoded, from_json);
    from_json
}

/// (row key, id, group name) of each record a change puts.
fn placed(view: &CompiledView, change: &MessageChange) -> Vec<(String, String, String)> {
    let records = match change {
        MessageChange::Add(records) | MessageChange::Replace { records, .. } => records,
        MessageChange::Ignore => return Vec::new(),
    };
    records
        .iter()
        .map(|r| {
            let group = r.group.map(|g| view.groups[usize::from(g)].clone());
            (r.key.clone(), r.id.clone(), group.unwrap_or_default())
        })
        .collect()
}

#[test]
fn upsert_replaces_by_key_and_a_tombstone_removes() {
    let view = compile(&example("customers-by-tier")).expect("compiles");
    let ada =
        json!({"customerId": "c-1", "name": "Ada", "country": "DE", "lifetimeValue": "1234.50"});
    let change = shape(&view, Some("c-1"), Some(ada)).expect("valid");
    assert!(matches!(&change, MessageChange::Replace { source, .. } if source == b"c-1"));
    assert_eq!(
        placed(&view, &change),
        [("DE".into(), "c-1".into(), "gold".into())]
    );
    match shape(&view, Some("c-1"), None).expect("a tombstone is valid") {
        MessageChange::Replace { source, records } => {
            assert_eq!(source, b"c-1");
            assert!(records.is_empty(), "a tombstone removes the key's records");
        }
        other => panic!("{other:?}"),
    }
    let err = shape(&view, None, Some(json!({"customerId": "c-2"}))).expect_err("no key");
    assert_eq!(err.reason(), "missing-key");
    // A bad value is refused whole, with the value's reason.
    let err =
        shape(&view, Some("c-1"), Some(json!({"customerId": "c-1"}))).expect_err("no country");
    assert_eq!(err.reason(), "missing-field");
}

/// A change event as Debezium's PostgreSQL connector writes it (shape from
/// its documentation), optionally inside the JSON converter's wrapper.
fn change_event(
    op: &str,
    before: serde_json::Value,
    after: serde_json::Value,
    wrapped: bool,
) -> serde_json::Value {
    let payload = json!({
        "before": before, "after": after,
        "source": {"version": "2.7.0.Final", "connector": "postgresql", "name": "shop",
                   "ts_ms": 1700000000000i64, "db": "shop", "schema": "public", "table": "orders",
                   "txId": 771, "lsn": 33227720},
        "op": op, "ts_ms": 1700000000123i64, "transaction": null
    });
    if wrapped {
        json!({"schema": {"type": "struct", "name": "shop.public.orders.Envelope", "optional": false,
                          "fields": [{"field": "before", "type": "struct", "optional": true}]},
               "payload": payload})
    } else {
        payload
    }
}

#[test]
fn debezium_ops_with_and_without_the_schema_wrapper() {
    let view = compile(&example("orders-from-postgres")).expect("compiles");
    let key = r#"{"id":7}"#;
    let row = json!({"id": 7, "customer_id": "c-3", "status": "paid", "total": "42.00"});
    for wrapped in [false, true] {
        for op in ["c", "r", "u"] {
            let change = shape(
                &view,
                Some(key),
                Some(change_event(op, json!(null), row.clone(), wrapped)),
            )
            .expect("valid");
            assert!(
                matches!(&change, MessageChange::Replace { source, .. } if source == key.as_bytes())
            );
            assert_eq!(
                placed(&view, &change),
                [("c-3".into(), "7".into(), "affordable".into())],
                "op {op}"
            );
        }
        let delete = shape(
            &view,
            Some(key),
            Some(change_event("d", row.clone(), json!(null), wrapped)),
        )
        .expect("valid");
        assert_eq!(
            delete,
            MessageChange::Replace {
                source: key.as_bytes().to_vec(),
                records: Vec::new()
            }
        );
        let truncate = shape(
            &view,
            None,
            Some(change_event("t", json!(null), json!(null), wrapped)),
        );
        assert_eq!(truncate.expect_err("not applied").reason(), "truncate");
        let no_after = shape(
            &view,
            Some(key),
            Some(change_event("u", row.clone(), json!(null), wrapped)),
        );
        assert_eq!(
            no_after.expect_err("u needs after").reason(),
            "bad-envelope"
        );
        let unknown = shape(
            &view,
            Some(key),
            Some(change_event("x", json!(null), row.clone(), wrapped)),
        );
        assert_eq!(unknown.expect_err("unknown op").reason(), "bad-envelope");
    }
    assert_eq!(
        shape(&view, Some(key), None),
        Ok(MessageChange::Ignore),
        "the tombstone after a delete"
    );
    let no_op = shape(&view, Some(key), Some(json!({"after": row})));
    assert_eq!(no_op.expect_err("no op").reason(), "bad-envelope");
    let no_key = shape(
        &view,
        None,
        Some(change_event("c", json!(null), row, false)),
    );
    assert_eq!(no_key.expect_err("no key").reason(), "missing-key");
    assert_eq!(
        shape(&view, Some(key), Some(json!([1])))
            .expect_err("array")
            .reason(),
        "bad-envelope"
    );
}

#[test]
fn debezium_paths_address_the_row_image() {
    let mut spec = example("orders-from-postgres");
    spec.records.key = "/after/customer_id".into();
    spec.records
        .fields
        .insert("when".into(), "^/payload/ts_ms".into());
    let err = compile(&spec).expect_err("envelope paths refused");
    let paths: Vec<_> = err.issues.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(paths, ["spec.records.key", "spec.records.fields.when"]);
    assert!(
        err.issues[0]
            .message
            .contains("write /price, not /after/price"),
        "{}",
        err.issues[0].message
    );
    // The same paths are fine for other envelopes (a column may be named so).
    spec.source.envelope = Envelope::Upsert;
    compile(&spec).expect("upsert accepts any path");
}

#[test]
fn the_envelope_is_part_of_the_revision_and_append_keeps_old_revisions() {
    let mut spec = example("customers-by-tier");
    let upsert = revision(&spec);
    spec.source.envelope = Envelope::Append;
    let append = revision(&spec);
    assert_ne!(upsert, append);
    // A spec written before envelopes existed serializes without the field.
    let mut json = serde_json::to_value(&spec).expect("serializes");
    json["source"]
        .as_object_mut()
        .expect("object")
        .remove("envelope");
    let old: MaterializedViewSpec = serde_json::from_value(json).expect("parses");
    assert_eq!(revision(&old), append);
}
