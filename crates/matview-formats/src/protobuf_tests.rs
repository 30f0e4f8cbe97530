//! The Protobuf decoder against messages encoded by prost-reflect from the
//! same `.proto` text, and against random bytes.

use proptest::prelude::*;
use prost::Message;
use prost_reflect::{DynamicMessage, MapKey, Value};
use serde_json::json;

use super::registry::NamedSchema;
use super::{DecodeError, Projection, ProtobufDecoder};

const ITEM: &str = r#"syntax = "proto3";
package shop;
import "google/type/decimal.proto";
message Item { string item_id = 1; google.type.Decimal price = 2; int32 quantity = 3; }
"#;

const ORDER: &str = r#"syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
import "shop/item.proto";
message Order {
  enum Status { NEW = 0; PAID = 1; }
  message Gift { string to = 1; string from = 2; }
  string order_id = 1;
  string user_id = 2;
  repeated Item items = 3;
  google.protobuf.Timestamp placed_at = 4;
  oneof payment { string card = 5; string voucher = 6; Gift gift_card = 13; }
  map<string, int64> counters = 7;
  Status status = 8;
  google.protobuf.StringValue note = 9;
  int64 total_cents = 10;
  Gift gift = 11;
  optional int32 priority = 12;
}
message Other { bool flag = 1; }
"#;

pub(super) fn decoder() -> ProtobufDecoder {
    let item = NamedSchema {
        name: "shop/item.proto".into(),
        schema: ITEM.into(),
    };
    ProtobufDecoder::new(3, ORDER, &[item]).expect("compiles")
}

/// The pool prost-reflect encodes with: the same texts, compiled apart.
pub(super) fn pool() -> prost_reflect::DescriptorPool {
    let dir = std::env::temp_dir().join(format!("matview-proto-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("shop")).expect("dir");
    std::fs::write(dir.join("shop/item.proto"), ITEM).expect("item");
    std::fs::write(dir.join("order.proto"), ORDER).expect("order");
    std::fs::create_dir_all(dir.join("google/type")).expect("dir");
    std::fs::write(
        dir.join("google/type/decimal.proto"),
        "syntax = \"proto3\";\npackage google.type;\nmessage Decimal { string value = 1; }\n",
    )
    .expect("decimal");
    protox::compile(["order.proto"], [&dir]).map_or_else(
        |e| panic!("{e}"),
        |set| prost_reflect::DescriptorPool::from_file_descriptor_set(set).expect("pool"),
    )
}

fn framed(indexes: &[u8], message: &DynamicMessage) -> Vec<u8> {
    let mut out = indexes.to_vec();
    out.extend(message.encode_to_vec());
    out
}

fn json_of(body: &[u8]) -> Result<serde_json::Value, DecodeError> {
    let mut out = Vec::new();
    decoder().to_json(body, &mut out)?;
    Ok(serde_json::from_slice(&out).expect("the decoder writes JSON"))
}

#[test]
fn an_order_reads_with_oneof_maps_enums_and_well_known_types() {
    let pool = pool();
    let order_desc = pool.get_message_by_name("shop.Order").expect("Order");
    let item_desc = pool.get_message_by_name("shop.Item").expect("Item");
    let decimal_desc = pool
        .get_message_by_name("google.type.Decimal")
        .expect("Decimal");
    let ts_desc = pool
        .get_message_by_name("google.protobuf.Timestamp")
        .expect("Timestamp");
    let wrapper = pool
        .get_message_by_name("google.protobuf.StringValue")
        .expect("wrapper");
    let mut price = DynamicMessage::new(decimal_desc);
    price.set_field_by_name("value", Value::String("12345678901234567890.1234".into()));
    let mut item = DynamicMessage::new(item_desc);
    item.set_field_by_name("item_id", Value::String("i-1".into()));
    item.set_field_by_name("price", Value::Message(price));
    let mut placed = DynamicMessage::new(ts_desc);
    placed.set_field_by_name("seconds", Value::I64(1_764_775_200));
    placed.set_field_by_name("nanos", Value::I32(123_000_000));
    let mut note = DynamicMessage::new(wrapper);
    note.set_field_by_name("value", Value::String("ring twice".into()));
    let mut order = DynamicMessage::new(order_desc);
    order.set_field_by_name("order_id", Value::String("o-1".into()));
    order.set_field_by_name("items", Value::List(vec![Value::Message(item)]));
    order.set_field_by_name("placed_at", Value::Message(placed));
    order.set_field_by_name("voucher", Value::String("WINTER".into()));
    order.set_field_by_name(
        "counters",
        Value::Map(
            [(
                MapKey::String("views".into()),
                Value::I64(9_007_199_254_740_993),
            )]
            .into(),
        ),
    );
    order.set_field_by_name("status", Value::EnumNumber(1));
    order.set_field_by_name("note", Value::Message(note));

    // A single 0: the file's first message.
    let body = framed(&[0], &order);
    projected_reads_only_the_paths(&body);
    let mut text = Vec::new();
    decoder().to_json(&body, &mut text).expect("decodes");
    let text = String::from_utf8(text).expect("utf-8");
    assert!(
        text.contains(r#""price":12345678901234567890.1234"#),
        "{text}"
    );
    assert!(
        text.contains(r#""views":9007199254740993"#),
        "64 bits exact: {text}"
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).expect("json"),
        json!({
            "order_id": "o-1",
            "user_id": "",
            "items": [{"item_id": "i-1", "price": 12345678901234567890.1234, "quantity": 0}],
            "placed_at": "2025-12-03T15:20:00.123Z",
            "voucher": "WINTER",
            "counters": {"views": 9007199254740993u64},
            "status": "PAID",
            "note": "ring twice",
            "total_cents": 0
        })
    );
}

/// Only the members a view's paths reach are written.
fn projected_reads_only_the_paths(body: &[u8]) {
    let path = |p: &[&str]| p.iter().map(|t| t.to_string()).collect::<Vec<String>>();
    let paths = [
        path(&["order_id"]),
        path(&["items", "price"]),
        path(&["counters", "views"]),
    ];
    let projection = Projection::of_paths(paths.iter().map(Vec::as_slice), []);
    let mut out = Vec::new();
    decoder()
        .to_json_projected(body, &projection, &mut out)
        .expect("decodes");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out).expect("json"),
        json!({
            "order_id": "o-1",
            "items": [{"price": 12345678901234567890.1234}],
            "counters": {"views": 9007199254740993u64}
        })
    );
}

#[test]
fn message_indexes_pick_nested_and_later_messages() {
    let pool = pool();
    let mut gift = DynamicMessage::new(pool.get_message_by_name("shop.Order.Gift").expect("Gift"));
    gift.set_field_by_name("to", Value::String("Ana".into()));
    // Two indexes (zig-zag 2 = 4): message 0 (Order), its nested message 0.
    assert_eq!(
        json_of(&framed(&[4, 0, 0], &gift)).expect("gift"),
        json!({"to": "Ana", "from": ""})
    );
    let mut other = DynamicMessage::new(pool.get_message_by_name("shop.Other").expect("Other"));
    other.set_field_by_name("flag", Value::Bool(true));
    // One index (zig-zag 1 = 2): message 1.
    assert_eq!(
        json_of(&framed(&[2, 2], &other)).expect("other"),
        json!({"flag": true})
    );
    match json_of(&framed(&[2, 8], &other)) {
        Err(DecodeError::BadEncoding(why)) => assert!(why.contains("name no message"), "{why}"),
        got => panic!("{got:?}"),
    }
}

#[test]
fn bad_bodies_and_schemas_are_named() {
    match json_of(&[0, 0x0a, 0x05, b'a']) {
        Err(DecodeError::BadEncoding(why)) => assert!(why.contains("not a shop.Order"), "{why}"),
        got => panic!("{got:?}"),
    }
    let err = ProtobufDecoder::new(9, "syntax = \"proto3\"; message {", &[]).expect_err("invalid");
    assert!(
        err.to_string().contains("not a valid Protobuf schema"),
        "{err}"
    );
    let err = ProtobufDecoder::new(9, ORDER, &[]).expect_err("missing import");
    assert!(err.to_string().contains("shop/item.proto"), "{err}");
}

proptest! {
    /// Any bytes: an answer, never a panic, and an answer that is JSON.
    #[test]
    fn random_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut out = Vec::new();
        if decoder().to_json(&body, &mut out).is_ok() {
            prop_assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
        }
    }
}

#[test]
fn a_schema_registered_as_a_serialized_descriptor_reads_the_same() {
    use base64::Engine;
    let mut compiler = protox::Compiler::with_file_resolver(TextFiles);
    compiler.include_imports(true);
    compiler.open_file("order.proto").expect("compiles");
    let set = compiler.file_descriptor_set();
    let encode = |name: &str| {
        let file = set.file.iter().find(|f| f.name() == name).expect("file");
        base64::engine::general_purpose::STANDARD.encode(file.encode_to_vec())
    };
    let item = NamedSchema {
        name: "shop/item.proto".into(),
        schema: encode("shop/item.proto"),
    };
    let serialized = ProtobufDecoder::new(4, &encode("order.proto"), &[item]).expect("compiles");
    let pool = pool();
    let mut other = DynamicMessage::new(pool.get_message_by_name("shop.Other").expect("Other"));
    other.set_field_by_name("flag", Value::Bool(true));
    let mut out = Vec::new();
    serialized
        .to_json(&framed(&[2, 2], &other), &mut out)
        .expect("decodes");
    assert_eq!(out, br#"{"flag":true}"#);
}

/// The test's texts as files, for compiling them to descriptors.
struct TextFiles;

impl protox::file::FileResolver for TextFiles {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        let text = match name {
            "order.proto" => ORDER,
            "shop/item.proto" => ITEM,
            "google/type/decimal.proto" => {
                "syntax = \"proto3\";\npackage google.type;\nmessage Decimal { string value = 1; }\n"
            }
            other => {
                return protox::file::GoogleFileResolver::new().open_file(other);
            }
        };
        protox::file::File::from_source(name, text)
    }
}
