//! The decoder against bodies written by apache-avro's encoder (and, for
//! decimals, by hand), and against random bytes.

use apache_avro::Schema;
use apache_avro::types::Value;
use num_bigint::BigInt;
use proptest::prelude::*;
use serde_json::json;

use super::{AvroDecoder, DecodeError, Projection};

const ITEM: &str = r#"{"type":"record","name":"Item","namespace":"shop","fields":[
  {"name":"itemId","type":"string"},
  {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":30,"scale":4}},
  {"name":"tag","type":["null","string",{"type":"enum","name":"Color","symbols":["RED","GREEN"]}],"default":null}
]}"#;

const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"orderId","type":"string"},
  {"name":"placedAt","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"day","type":{"type":"int","logicalType":"date"}},
  {"name":"items","type":{"type":"array","items":"shop.Item"}},
  {"name":"attributes","type":{"type":"map","values":"long"}},
  {"name":"weight","type":"double"},
  {"name":"note","type":["null","string"],"default":null}
]}"#;

fn decimal(unscaled: i128) -> Value {
    Value::Decimal(BigInt::from(unscaled).to_signed_bytes_be().into())
}

fn item(id: &str, unscaled: i128, tag: Value) -> Value {
    Value::Record(vec![
        ("itemId".into(), Value::String(id.into())),
        ("price".into(), decimal(unscaled)),
        ("tag".into(), tag),
    ])
}

fn encode(schema: &str, references: &[&str], value: Value) -> Vec<u8> {
    let (schema, referenced) = Schema::parse_str_with_list(schema, references).expect("schema");
    let schemata = referenced.iter().chain(std::iter::once(&schema)).collect();
    apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
        .schemata(schemata)
        .expect("schemata")
        .build()
        .expect("writer")
        .write_value_to_vec(value)
        .expect("encodes")
}

fn json_of(decoder: &AvroDecoder, body: &[u8]) -> Result<serde_json::Value, DecodeError> {
    let mut out = Vec::new();
    decoder.to_json(body, &mut out)?;
    Ok(serde_json::from_slice(&out).expect("the decoder writes JSON"))
}

/// An order using every kind of member the schema has.
fn sample_order() -> Value {
    Value::Record(vec![
        ("orderId".into(), Value::String("o-1".into())),
        ("placedAt".into(), Value::TimestampMillis(1_764_775_200_123)),
        ("day".into(), Value::Date(20_425)),
        (
            "items".into(),
            Value::Array(vec![
                item("i-1", 49_900, Value::Union(0, Box::new(Value::Null))),
                item(
                    "i-2",
                    -5,
                    Value::Union(2, Box::new(Value::Enum(1, "GREEN".into()))),
                ),
            ]),
        ),
        (
            "attributes".into(),
            Value::Map([("gift".to_string(), Value::Long(1))].into_iter().collect()),
        ),
        ("weight".into(), Value::Double(0.1)),
        (
            "note".into(),
            Value::Union(1, Box::new(Value::String("ring \"twice\"".into()))),
        ),
    ])
}

#[test]
fn an_order_with_referenced_items_reads_as_json() {
    let order = sample_order();
    let body = encode(ORDER, &[ITEM], order);
    let decoder = AvroDecoder::new(1, ORDER, &[ITEM.to_string()]).expect("decoder");
    let mut text = Vec::new();
    decoder.to_json(&body, &mut text).expect("decodes");
    let text = String::from_utf8(text).expect("utf-8");
    // Decimals are exact tokens with the schema's scale.
    assert!(text.contains(r#""price":4.9900"#), "{text}");
    assert!(text.contains(r#""price":-0.0005"#), "{text}");
    let got: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        got,
        json!({
            "orderId": "o-1",
            "placedAt": "2025-12-03T15:20:00.123Z",
            "day": "2025-12-03",
            "items": [
                {"itemId": "i-1", "price": 4.99},
                {"itemId": "i-2", "price": -0.0005, "tag": "GREEN"}
            ],
            "attributes": {"gift": 1},
            "weight": 0.1,
            "note": "ring \"twice\""
        })
    );
}

#[test]
fn a_projection_writes_only_the_paths_a_view_reads_and_still_reads_every_byte() {
    let body = encode(ORDER, &[ITEM], sample_order());
    let decoder = AvroDecoder::new(1, ORDER, &[ITEM.to_string()]).expect("decoder");
    let path = |p: &[&str]| p.iter().map(|t| t.to_string()).collect::<Vec<String>>();
    let paths = [
        path(&["orderId"]),
        path(&["items", "price"]),
        path(&["attributes", "gift"]),
    ];
    let needed = [path(&["items"])];
    let projection = Projection::of_paths(
        paths.iter().map(Vec::as_slice),
        needed.iter().map(Vec::as_slice),
    );
    let mut out = Vec::new();
    decoder
        .to_json_projected(&body, &projection, &mut out)
        .expect("decodes");
    let got: serde_json::Value = serde_json::from_slice(&out).expect("JSON");
    assert_eq!(
        got,
        json!({
            "orderId": "o-1",
            "items": [{"price": 4.99}, {"price": -0.0005}],
            "attributes": {"gift": 1}
        })
    );
    // What is read past is still read: a truncated or overlong body is refused.
    for broken in [
        &body[..body.len() - 1],
        &[body.as_slice(), &[0]].concat()[..],
    ] {
        let said = decoder.to_json_projected(broken, &projection, &mut Vec::new());
        assert!(matches!(said, Err(DecodeError::BadEncoding(_))), "{said:?}");
    }
}

/// An Avro long, zig-zag varint, written by hand.
fn long(v: i64) -> Vec<u8> {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        let byte = (raw & 0x7f) as u8;
        raw >>= 7;
        if raw == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[test]
fn decimals_of_any_width_keep_every_digit() {
    let schema = r#"{"type":"record","name":"P","fields":[
      {"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":40,"scale":6}},
      {"name":"f","type":{"type":"fixed","name":"F","size":12,"logicalType":"decimal","precision":28,"scale":2}}
    ]}"#;
    let decoder = AvroDecoder::new(7, schema, &[]).expect("decoder");
    for digits in [
        "123456789012345678901234567890123",
        "-98765432109876543210987654",
        "1",
        "-1",
        "0",
    ] {
        let unscaled: BigInt = digits.parse().expect("digits");
        let bytes = unscaled.to_signed_bytes_be();
        let mut body = long(bytes.len() as i64);
        body.extend_from_slice(&bytes);
        // The fixed decimal: -250 in 12 bytes, sign-extended.
        let mut fixed = vec![0xff; 12];
        fixed[10..].copy_from_slice(&(-250i16).to_be_bytes());
        body.extend_from_slice(&fixed);
        let mut out = Vec::new();
        decoder.to_json(&body, &mut out).expect("decodes");
        let text = String::from_utf8(out).expect("utf-8");
        // The expected text, from the digits by string surgery.
        let (sign, magnitude) = digits.strip_prefix('-').map_or(("", digits), |m| ("-", m));
        let padded = format!("{magnitude:0>7}");
        let (whole, fraction) = padded.split_at(padded.len() - 6);
        let whole = whole.trim_start_matches('0');
        let whole = if whole.is_empty() { "0" } else { whole };
        assert_eq!(
            text,
            format!(r#"{{"d":{sign}{whole}.{fraction},"f":-2.50}}"#)
        );
    }
    // More integer digits than any JSON reader takes (a fuzzer's find: the
    // bytes of a decimal are not bounded by its precision): a bad encoding,
    // not text the engine cannot read.
    let huge: BigInt = format!("-{}", "7".repeat(420)).parse().expect("digits");
    let bytes = huge.to_signed_bytes_be();
    let mut body = long(bytes.len() as i64);
    body.extend_from_slice(&bytes);
    body.extend_from_slice(&[0; 12]);
    let said = decoder.to_json(&body, &mut Vec::new());
    assert!(
        matches!(&said, Err(DecodeError::BadEncoding(d)) if d.contains("integer digits")),
        "{said:?}"
    );
}

#[test]
fn bodies_the_schema_cannot_read_are_named() {
    let decoder = AvroDecoder::new(1, ORDER, &[ITEM.to_string()]).expect("decoder");
    let good = encode(
        ORDER,
        &[ITEM],
        Value::Record(vec![
            ("orderId".into(), Value::String("o".into())),
            ("placedAt".into(), Value::TimestampMillis(0)),
            ("day".into(), Value::Date(0)),
            (
                "items".into(),
                Value::Array(vec![item("i", 1, Value::Union(0, Box::new(Value::Null)))]),
            ),
            ("attributes".into(), Value::Map(Default::default())),
            ("weight".into(), Value::Double(1.5)),
            ("note".into(), Value::Union(0, Box::new(Value::Null))),
        ]),
    );
    let got = json_of(&decoder, &good).expect("good body");
    assert_eq!(got["items"][0]["price"], json!(0.0001));
    assert!(got.get("note").is_none(), "a null branch is absent: {got}");
    let said = |body: &[u8]| match json_of(&decoder, body) {
        Err(DecodeError::BadEncoding(why)) => why,
        other => panic!("expected a bad encoding, got {other:?}"),
    };
    assert!(said(&good[..good.len() - 1]).contains("truncated"));
    let mut longer = good.clone();
    longer.push(0);
    assert!(said(&longer).contains("1 bytes left"));
    let mut bad_union = good.clone();
    let last = bad_union.len() - 1;
    bad_union[last] = 8; // union index 4 of 2
    assert!(said(&bad_union).contains("union branch 4"));
    assert!(said(&[0x80; 12]).contains("past 10 bytes"));
}

#[test]
fn recursion_and_zero_byte_entries_are_bounded() {
    let list = r#"{"type":"record","name":"Node","fields":[
      {"name":"next","type":["null","Node"]}]}"#;
    let decoder = AvroDecoder::new(1, list, &[]).expect("decoder");
    let mut deep = vec![2u8; 500]; // branch 1 (a Node) 500 times, never null
    deep.push(0);
    match json_of(&decoder, &deep) {
        Err(DecodeError::BadEncoding(why)) => assert!(why.contains("nested deeper"), "{why}"),
        other => panic!("{other:?}"),
    }
    let shallow = [2u8, 2, 0];
    assert_eq!(
        json_of(&decoder, &shallow).expect("shallow"),
        json!({"next": {"next": {}}})
    );
    let nulls = AvroDecoder::new(1, r#"{"type":"array","items":"null"}"#, &[]).expect("decoder");
    let mut huge = long(i64::MAX);
    huge.push(0);
    assert!(json_of(&nulls, &huge).is_err(), "2^63 nulls from 10 bytes");
    let mut three = long(3);
    three.push(0);
    assert_eq!(
        json_of(&nulls, &three).expect("three"),
        json!([null, null, null])
    );
}

#[test]
fn logical_types_have_one_documented_text() {
    let schema = r#"{"type":"record","name":"T","fields":[
      {"name":"t","type":{"type":"int","logicalType":"time-millis"}},
      {"name":"u","type":{"type":"string","logicalType":"uuid"}},
      {"name":"l","type":{"type":"long","logicalType":"local-timestamp-micros"}},
      {"name":"b","type":"bytes"},
      {"name":"e","type":"float"}
    ]}"#;
    let decoder = AvroDecoder::new(1, schema, &[]).expect("decoder");
    let mut body = long(3_723_004); // 01:02:03.004
    let uuid = "6f1c1d3e-8c2a-4f4e-9a55-0123456789ab";
    body.extend(long(uuid.len() as i64));
    body.extend_from_slice(uuid.as_bytes());
    body.extend(long(1_500_000)); // 1.5 s after the epoch, local
    body.extend(long(2));
    body.extend_from_slice(&[0xfb, 0xff]);
    body.extend_from_slice(&0.1f32.to_le_bytes());
    assert_eq!(
        json_of(&decoder, &body).expect("decodes"),
        json!({"t": "01:02:03.004", "u": uuid, "l": "1970-01-01T00:00:01.5", "b": "+/8=", "e": 0.1})
    );
}

proptest! {
    /// Any bytes: an answer, never a panic, and an answer that is JSON.
    #[test]
    fn random_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let decoder = AvroDecoder::new(1, ORDER, &[ITEM.to_string()]).expect("decoder");
        let mut out = Vec::new();
        if decoder.to_json(&body, &mut out).is_ok() {
            prop_assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
        }
    }
}

#[test]
fn a_big_decimal_zero_with_a_negative_scale_is_zero() {
    // A fuzzer's find: 0 × 10^8 was written "000000000", no JSON number.
    for (unscaled, scale, expected) in [(0i64, -8, "0"), (5, -3, "5000"), (-5, 2, "-0.05")] {
        let digits = BigInt::from(unscaled).to_signed_bytes_be();
        let mut bytes = long(digits.len() as i64);
        bytes.extend_from_slice(&digits);
        bytes.extend_from_slice(&long(scale));
        let mut out = Vec::new();
        crate::avro_values::big_decimal(&bytes, &mut out).expect("decodes");
        assert_eq!(String::from_utf8_lossy(&out), expected);
    }
}
