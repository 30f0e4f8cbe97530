//! Events in Avro, written by an implementation independent of matview's
//! decoder: confluent-kafka's AvroSerializer (Python, fastavro) against the
//! real registry, registering schemas as a producer does
//! (`tests/fixtures/formats/avro_serialize.py`).

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

/// The item type, a subject of its own that the order schemas reference.
pub const ITEM: &str = r#"{"type":"record","name":"Item","namespace":"shop","fields":[
  {"name":"itemId","type":"string"},
  {"name":"name","type":"string"},
  {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":40,"scale":4}},
  {"name":"tag","type":["null","string"],"default":null}]}"#;

/// The first order schema.
pub const ORDER_V1: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"orderId","type":"string"},
  {"name":"userId","type":"string"},
  {"name":"placedAt","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"items","type":{"type":"array","items":"shop.Item"}}]}"#;

/// v1 and two optional fields (a union with a nested record among them):
/// a compatible evolution.
pub const ORDER_V2: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"orderId","type":"string"},
  {"name":"userId","type":"string"},
  {"name":"placedAt","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"items","type":{"type":"array","items":"shop.Item"}},
  {"name":"coupon","type":["null","string"],"default":null},
  {"name":"shipping","type":["null",{"type":"record","name":"Address","fields":[
    {"name":"city","type":"string"},{"name":"zip","type":["null","int"],"default":null}]}],"default":null}]}"#;

/// A message to serialize: its key, schema name (`v1`, `v2`) and value.
pub struct AvroMessage {
    pub key: String,
    pub schema: &'static str,
    pub value: Value,
}

/// A generated shop order in the schema's shape: prices as exact decimal
/// strings (from the generator's cents), every third item tagged, and with
/// `v2` a coupon and an address on some orders.
pub fn avro_order(order: &Value, schema: &'static str) -> AvroMessage {
    let items: Vec<Value> = order["items"]
        .as_array()
        .expect("items")
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let cents = (item["price"].as_f64().expect("price") * 100.0).round() as i64;
            let mut out = json!({
                "itemId": item["itemId"],
                "name": item["name"],
                "price": format!("{}.{:02}", cents / 100, cents % 100),
            });
            if i % 3 == 0 {
                out["tag"] = json!("gift");
            }
            out
        })
        .collect();
    let mut value = json!({
        "orderId": order["orderId"],
        "userId": order["userId"],
        "placedAt": order["placedAt"],
        "items": items,
    });
    let id = order["orderId"].as_str().expect("orderId").to_string();
    if schema == "v2" && id.len().is_multiple_of(2) {
        value["coupon"] = json!("WINTER");
        value["shipping"] = json!({"city": "Lisbon", "zip": 1100});
    }
    AvroMessage {
        key: id,
        schema,
        value,
    }
}

/// Serializes `messages` for `topic` against `registry`: (key, framed value).
pub fn serialize(
    python: &Path,
    registry: &str,
    topic: &str,
    messages: &[AvroMessage],
) -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("input.json");
    let output = dir.path().join("output.jsonl");
    let spec = json!({
        "schemas": {"shop.Item": ITEM, "v1": ORDER_V1, "v2": ORDER_V2},
        "messages": messages
            .iter()
            .map(|m| json!({"key": m.key, "schema": m.schema, "value": m.value}))
            .collect::<Vec<_>>(),
    });
    std::fs::write(&input, spec.to_string()).expect("write the serializer's input");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats/avro_serialize.py");
    let out = Command::new(python)
        .arg(&script)
        .args([registry, topic])
        .arg(&input)
        .arg(&output)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (start the test environment: `make testenv`): {e}",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "the Avro serializer failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&output)
        .expect("the serializer's output")
        .lines()
        .map(|line| {
            let m: Value = serde_json::from_str(line).expect("a JSON line");
            let hex = m["value"].as_str().expect("value");
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            (m["key"].as_str().expect("key").to_string(), bytes)
        })
        .collect()
}
