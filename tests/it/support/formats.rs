//! Events in Avro and Protobuf, written by implementations independent of
//! matview's decoders: confluent-kafka's AvroSerializer (Python, fastavro)
//! and ProtobufSerializer (Python, protoc-generated classes) against the real
//! registry, registering schemas as producers do
//! (`tests/fixtures/formats/`).

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

/// A message to serialize: its key, schema name (`v1`, `v2`) and value
/// (`Value::Null`: a tombstone).
pub struct AvroMessage {
    pub key: String,
    pub schema: &'static str,
    pub value: Value,
    /// The key written in Avro instead: key schema name and key value.
    pub avro_key: Option<(&'static str, Value)>,
}

/// The order key in Avro.
pub const ORDER_KEY_V1: &str = r#"{"type":"record","name":"OrderKey","namespace":"shop","fields":[
  {"name":"orderId","type":"string"}]}"#;

/// The order key with an optional field added: another schema id, the same
/// key as JSON while the field is null.
pub const ORDER_KEY_V2: &str = r#"{"type":"record","name":"OrderKey","namespace":"shop","fields":[
  {"name":"orderId","type":"string"},
  {"name":"region","type":["null","string"],"default":null}]}"#;

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
        avro_key: None,
    }
}

/// Serializes `messages` for `topic` against `registry`: (key, framed value).
pub fn serialize(
    python: &Path,
    registry: &str,
    topic: &str,
    messages: &[AvroMessage],
) -> Vec<Framed> {
    let spec = json!({
        "schemas": {"shop.Item": ITEM, "v1": ORDER_V1, "v2": ORDER_V2},
        "key_schemas": {"k1": ORDER_KEY_V1, "k2": ORDER_KEY_V2},
        "messages": messages
            .iter()
            .map(|m| {
                let mut out = json!({"key": m.key, "schema": m.schema, "value": m.value});
                if let Some((schema, value)) = &m.avro_key {
                    out["key_schema"] = json!(schema);
                    out["key_value"] = value.clone();
                }
                out
            })
            .collect::<Vec<_>>(),
    });
    run_serializer("avro_serialize.py", python, registry, topic, &spec)
}

/// The item type of the Protobuf orders, in a file of its own that the
/// orders import (a reference in the registry); its price a
/// `google.type.Decimal`.
pub const ITEM_PROTO: &str = r#"syntax = "proto3";
package shop;
import "google/type/decimal.proto";
message Item { string item_id = 1; string name = 2; google.type.Decimal price = 3; int32 quantity = 4; }
"#;

/// googleapis' `google.type.Decimal`, which protoc needs to generate the
/// producer's classes.
pub const DECIMAL_PROTO: &str =
    "syntax = \"proto3\";\npackage google.type;\nmessage Decimal { string value = 1; }\n";

/// The order file in version 1, and in version 2 with a `oneof` and a
/// nested message added (a compatible evolution).
pub fn order_proto(version: u32) -> String {
    let added = if version >= 2 {
        "  oneof payment { string card = 5; string voucher = 6; }\n  message Address { string city = 1; }\n  Address shipping = 7;\n"
    } else {
        ""
    };
    format!(
        "syntax = \"proto3\";\npackage shop;\nimport \"shop/item.proto\";\nimport \"google/protobuf/timestamp.proto\";\nmessage Order {{\n  string order_id = 1;\n  string user_id = 2;\n  repeated Item items = 3;\n  google.protobuf.Timestamp placed_at = 4;\n{added}}}\n"
    )
}

/// A generated shop order as proto3 JSON for [`order_proto`]: prices as
/// `google.type.Decimal`, and with version 2 a voucher and an address on
/// some orders.
pub fn protobuf_order(order: &Value, version: u32) -> (String, Value) {
    let items: Vec<Value> = order["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            let cents = (item["price"].as_f64().expect("price") * 100.0).round() as i64;
            json!({
                "item_id": item["itemId"],
                "name": item["name"],
                "price": {"value": format!("{}.{:02}", cents / 100, cents % 100)},
                "quantity": item["quantity"],
            })
        })
        .collect();
    let millis = order["placedAt"].as_i64().expect("placedAt");
    let mut value = json!({
        "order_id": order["orderId"],
        "user_id": order["userId"],
        "items": items,
        "placed_at": format!("{}Z", rfc3339_utc(millis)),
    });
    let id = order["orderId"].as_str().expect("orderId").to_string();
    if version >= 2 && id.len().is_multiple_of(2) {
        value["voucher"] = json!("WINTER");
        value["shipping"] = json!({"city": "Lisbon"});
    }
    (id, value)
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmm` (UTC), by the
/// civil-from-days rule: the test's own, not the decoder's.
fn rfc3339_utc(millis: i64) -> String {
    let (days, rest) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, ms) = (
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}")
}

/// Serializes proto3-JSON orders as `shop.Order` of [`order_proto`]`(version)`.
pub fn serialize_protobuf(
    python: &Path,
    registry: &str,
    topic: &str,
    version: u32,
    messages: &[(String, Value)],
) -> Vec<Framed> {
    let spec = json!({
        "protos": {
            "google/type/decimal.proto": DECIMAL_PROTO,
            "shop/item.proto": ITEM_PROTO,
            "shop/order.proto": order_proto(version),
        },
        "file": "shop/order.proto",
        "message": "Order",
        "messages": messages
            .iter()
            .map(|(key, value)| json!({"key": key, "value": value}))
            .collect::<Vec<_>>(),
    });
    run_serializer("protobuf_serialize.py", python, registry, topic, &spec)
}

/// Runs one of `tests/fixtures/formats/`'s serializers on `spec`.
fn run_serializer(
    script: &str,
    python: &Path,
    registry: &str,
    topic: &str,
    spec: &Value,
) -> Vec<Framed> {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("input.json");
    let output = dir.path().join("output.jsonl");
    std::fs::write(&input, spec.to_string()).expect("write the serializer's input");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/formats")
        .join(script);
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
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&output)
        .expect("the serializer's output")
        .lines()
        .map(|line| {
            let m: Value = serde_json::from_str(line).expect("a JSON line");
            let key = unhex(m["key"].as_str().expect("key"));
            (key, m["value"].as_str().map(unhex))
        })
        .collect()
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A message as Kafka carries it: key and value bytes, `None` for null.
pub type Framed = (Vec<u8>, Option<Vec<u8>>);

/// A message as produced: key and value bytes, each possibly Kafka's null.
pub type Produced = (Option<Vec<u8>>, Option<Vec<u8>>);

/// [`serialize`]d messages as produced, every key present.
pub fn serialized(
    python: &Path,
    registry: &str,
    topic: &str,
    messages: &[AvroMessage],
) -> Vec<Produced> {
    serialize(python, registry, topic, messages)
        .into_iter()
        .map(|(k, v)| (Some(k), v))
        .collect()
}
