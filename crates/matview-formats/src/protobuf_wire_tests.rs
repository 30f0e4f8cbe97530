//! The wire reader against the reference reading (prost-reflect's
//! `DynamicMessage`): random messages, merged bodies, every scalar kind.

use proptest::prelude::*;
use prost::Message;
use prost_reflect::{DynamicMessage, MapKey, Value};
use serde_json::json;

use super::protobuf_tests::{decoder, pool};
use super::{DecodeError, Projection, ProtobufDecoder};

/// Both readings of `body` as JSON text: the wire reader's and prost-reflect's.
fn both_readings(body: &[u8]) -> (Result<String, DecodeError>, Result<String, DecodeError>) {
    let decoder = decoder();
    let read = |dynamic: bool| {
        let mut tape = matview_tape::Tape::new();
        let mut out = Vec::new();
        if dynamic {
            decoder.to_tape_dynamic(body, &Projection::All, &mut tape)?;
        } else {
            decoder.to_tape(body, &Projection::All, &mut tape)?;
        }
        tape.write_json(&mut out);
        Ok(String::from_utf8(out).expect("utf-8"))
    };
    (read(false), read(true))
}

/// A random order: every kind of field the schema has, each maybe unset.
fn random_order() -> impl Strategy<Value = DynamicMessage> {
    let text = "\\PC{0,6}";
    let item = (text, "-?[0-9]{1,22}(\\.[0-9]{1,6})?", any::<i32>());
    (
        (proptest::option::of(text), proptest::option::of(text)),
        proptest::collection::vec(item, 0..4),
        proptest::option::of((any::<i64>(), 0..1_000_000_000i32)),
        proptest::option::of((0..3u8, text)),
        proptest::collection::vec((text, any::<i64>()), 0..4),
        (-2..4i32, proptest::option::of(text), any::<i64>()),
        (
            proptest::option::of(text),
            proptest::option::of(any::<i32>()),
        ),
    )
        .prop_map(|(ids, items, placed, payment, counters, rest, extra)| {
            let pool = pool();
            let message =
                |name: &str| DynamicMessage::new(pool.get_message_by_name(name).expect("declared"));
            let mut order = message("shop.Order");
            let set = |m: &mut DynamicMessage, name: &str, v: Value| m.set_field_by_name(name, v);
            if let Some(id) = ids.0 {
                set(&mut order, "order_id", Value::String(id));
            }
            if let Some(id) = ids.1 {
                set(&mut order, "user_id", Value::String(id));
            }
            let items = items
                .into_iter()
                .map(|(id, price, quantity)| {
                    let mut decimal = message("google.type.Decimal");
                    set(&mut decimal, "value", Value::String(price));
                    let mut item = message("shop.Item");
                    set(&mut item, "item_id", Value::String(id));
                    set(&mut item, "price", Value::Message(decimal));
                    set(&mut item, "quantity", Value::I32(quantity));
                    Value::Message(item)
                })
                .collect();
            set(&mut order, "items", Value::List(items));
            if let Some((seconds, nanos)) = placed {
                let mut at = message("google.protobuf.Timestamp");
                set(&mut at, "seconds", Value::I64(seconds % 250_000_000_000));
                set(&mut at, "nanos", Value::I32(nanos));
                set(&mut order, "placed_at", Value::Message(at));
            }
            match payment {
                Some((0, code)) => set(&mut order, "card", Value::String(code)),
                Some((1, code)) => set(&mut order, "voucher", Value::String(code)),
                Some((_, to)) => {
                    let mut gift = message("shop.Order.Gift");
                    set(&mut gift, "to", Value::String(to));
                    set(&mut order, "gift_card", Value::Message(gift));
                }
                None => {}
            }
            let counters = counters
                .into_iter()
                .map(|(k, v)| (MapKey::String(k), Value::I64(v)))
                .collect();
            set(&mut order, "counters", Value::Map(counters));
            set(&mut order, "status", Value::EnumNumber(rest.0));
            if let Some(note) = rest.1 {
                let mut wrapper = message("google.protobuf.StringValue");
                set(&mut wrapper, "value", Value::String(note));
                set(&mut order, "note", Value::Message(wrapper));
            }
            set(&mut order, "total_cents", Value::I64(rest.2));
            if let Some(to) = extra.0 {
                let mut gift = message("shop.Order.Gift");
                set(&mut gift, "to", Value::String(to));
                set(&mut order, "gift", Value::Message(gift));
            }
            if let Some(priority) = extra.1 {
                set(&mut order, "priority", Value::I32(priority));
            }
            order
        })
}

#[test]
fn a_oneof_keeps_its_last_member_and_a_message_member_restarts_after_another() {
    let pool = pool();
    let message =
        |name: &str| DynamicMessage::new(pool.get_message_by_name(name).expect("declared"));
    let gift = |field: &str, who: &str| {
        let mut gift = message("shop.Order.Gift");
        gift.set_field_by_name(field, Value::String(who.into()));
        let mut order = message("shop.Order");
        order.set_field_by_name("gift_card", Value::Message(gift));
        order
    };
    let mut voucher = message("shop.Order");
    voucher.set_field_by_name("voucher", Value::String("V".into()));
    // Gift {to: a}, then a voucher, then Gift {from: b}: the voucher
    // cleared the first gift, so the last is not merged with it.
    let mut body = vec![0];
    for order in [gift("to", "a"), voucher.clone(), gift("from", "b")] {
        body.extend(order.encode_to_vec());
    }
    let (wire, dynamic) = both_readings(&body);
    let wire = wire.expect("reads");
    assert_eq!(Ok(wire.clone()), dynamic);
    let read: serde_json::Value = serde_json::from_str(&wire).expect("json");
    assert_eq!(read["gift_card"], json!({"to": "", "from": "b"}));
    assert!(read.get("voucher").is_none(), "{read}");
    // Two gifts in a row merge; a voucher after them wins.
    let mut body = vec![0];
    for order in [gift("to", "a"), gift("from", "b")] {
        body.extend(order.encode_to_vec());
    }
    let read: serde_json::Value =
        serde_json::from_str(&both_readings(&body).0.expect("reads")).expect("json");
    assert_eq!(read["gift_card"], json!({"to": "a", "from": "b"}));
    body.extend(voucher.encode_to_vec());
    let read: serde_json::Value =
        serde_json::from_str(&both_readings(&body).0.expect("reads")).expect("json");
    assert_eq!(
        (read.get("gift_card"), &read["voucher"]),
        (None, &json!("V"))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random orders, one after another in one body (which Protobuf reads
    /// as their merge: last values win, messages merge, a oneof keeps its
    /// last member): the wire reader reads what prost-reflect reads.
    #[test]
    fn the_wire_reader_reads_what_prost_reflect_reads(
        orders in proptest::collection::vec(random_order(), 1..3),
    ) {
        let mut body = vec![0];
        for order in &orders {
            body.extend(order.encode_to_vec());
        }
        let (wire, dynamic) = both_readings(&body);
        prop_assert_eq!(wire.expect("the wire reader reads it"), dynamic.expect("prost-reflect reads it"));
    }

    /// Random bytes: when both read them, both read the same.
    #[test]
    fn random_bodies_read_alike_when_both_read_them(
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut framed = vec![0];
        framed.extend(body);
        if let (Ok(wire), Ok(dynamic)) = both_readings(&framed) {
            prop_assert_eq!(wire, dynamic);
        }
    }
}

const SCALARS: &str = r#"syntax = "proto2";
package kinds;
message All {
  optional double d = 1; optional float f = 2; optional int32 i32 = 3; optional int64 i64 = 4;
  optional uint32 u32 = 5; optional uint64 u64 = 6; optional sint32 s32 = 7; optional sint64 s64 = 8;
  optional fixed32 x32 = 9; optional fixed64 x64 = 10; optional sfixed32 y32 = 11; optional sfixed64 y64 = 12;
  optional bool b = 13; optional bytes raw = 14; optional int32 dflt = 15 [default = 7];
  repeated sint64 packed = 16 [packed = true]; repeated fixed32 unpacked = 17;
  optional group Part = 18 { optional string name = 19; repeated int32 n = 20; }
  map<uint64, string> names = 21; map<bool, double> flags = 22;
}
"#;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every scalar kind, packed and unpacked repeats, a proto2 group, maps
    /// keyed by numbers and booleans: both readings agree.
    #[test]
    fn every_scalar_kind_and_a_group_read_as_prost_reflect_reads(
        numbers in (any::<f64>(), any::<f32>(), any::<i32>(), any::<i64>(), any::<u32>(), any::<u64>()),
        signed in (any::<i32>(), any::<i64>(), any::<u32>(), any::<u64>(), any::<i32>(), any::<i64>()),
        rest in (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..8), proptest::collection::vec(any::<i64>(), 0..5)),
        part in proptest::option::of(("\\PC{0,5}", proptest::collection::vec(any::<i32>(), 0..3))),
        maps in (proptest::collection::vec((any::<u64>(), "\\PC{0,4}"), 0..3), proptest::collection::vec((any::<bool>(), any::<f64>()), 0..3)),
        unset in proptest::collection::vec(1..23u32, 0..6),
    ) {
        let decoder = ProtobufDecoder::new(5, SCALARS, &[]).expect("compiles");
        let dir = std::env::temp_dir().join(format!("matview-proto-kinds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("kinds.proto"), SCALARS).expect("write");
        let pool = protox::compile(["kinds.proto"], [&dir]).map_or_else(
            |e| panic!("{e}"),
            |set| prost_reflect::DescriptorPool::from_file_descriptor_set(set).expect("pool"),
        );
        let mut all = DynamicMessage::new(pool.get_message_by_name("kinds.All").expect("All"));
        let values = [
            ("d", Value::F64(numbers.0)), ("f", Value::F32(numbers.1)), ("i32", Value::I32(numbers.2)),
            ("i64", Value::I64(numbers.3)), ("u32", Value::U32(numbers.4)), ("u64", Value::U64(numbers.5)),
            ("s32", Value::I32(signed.0)), ("s64", Value::I64(signed.1)), ("x32", Value::U32(signed.2)),
            ("x64", Value::U64(signed.3)), ("y32", Value::I32(signed.4)), ("y64", Value::I64(signed.5)),
            ("b", Value::Bool(rest.0)), ("raw", Value::Bytes(rest.1.into())),
            ("packed", Value::List(rest.2.iter().map(|v| Value::I64(*v)).collect())),
            ("unpacked", Value::List(rest.2.iter().map(|v| Value::U32(*v as u32)).collect())),
            ("names", Value::Map(maps.0.into_iter().map(|(k, v)| (MapKey::U64(k), Value::String(v))).collect())),
            ("flags", Value::Map(maps.1.into_iter().map(|(k, v)| (MapKey::Bool(k), Value::F64(v))).collect())),
        ];
        for (name, value) in values {
            all.set_field_by_name(name, value);
        }
        if let Some((name, n)) = part {
            let mut group = DynamicMessage::new(pool.get_message_by_name("kinds.All.Part").expect("Part"));
            group.set_field_by_name("name", Value::String(name));
            group.set_field_by_name("n", Value::List(n.into_iter().map(Value::I32).collect()));
            all.set_field_by_name("part", Value::Message(group));
        }
        for number in unset {
            all.clear_field_by_number(number);
        }
        let mut body = vec![0];
        body.extend(all.encode_to_vec());
        let read = |dynamic: bool| {
            let mut tape = matview_tape::Tape::new();
            let mut out = Vec::new();
            if dynamic {
                decoder.to_tape_dynamic(&body, &Projection::All, &mut tape)?;
            } else {
                decoder.to_tape(&body, &Projection::All, &mut tape)?;
            }
            tape.write_json(&mut out);
            Ok::<_, DecodeError>(String::from_utf8(out).expect("utf-8"))
        };
        prop_assert_eq!(read(false).expect("the wire reader reads it"), read(true).expect("prost-reflect reads it"));
    }
}
