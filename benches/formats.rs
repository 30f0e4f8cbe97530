//! Avro beside JSON on the shop's orders (10,000, ~5.5 items each): what the
//! projector does per event for each format, and the decoder beside
//! apache-avro's own reader. Run: `cargo bench --bench formats`.
//!
//! - `json/shape`: the engine on the JSON text (validate + shape).
//! - `avro/decode+shape`: the framed Avro decoded to JSON, then the same.
//! - `avro/decode`: the decoder alone (Avro body to JSON text).
//! - `avro/apache-avro-value`: apache-avro's `GenericDatumReader` to its
//!   `Value` tree, no JSON: what the decoder would start from if it used the
//!   crate's reader (the comparison `matview-formats/src/avro.rs` cites).

use std::hint::black_box;

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use matview::crd::MaterializedView;
use matview::engine::{Position, compile};
use matview::workload::OrderGenerator;
use matview_formats::registry::ResolvedSchema;
use matview_formats::{Encoding, SchemaCache};
use num_bigint::BigInt;
use serde_json::Value;

const EVENTS: usize = 10_000;

const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"orderId","type":"string"},
  {"name":"userId","type":"string"},
  {"name":"country","type":"string"},
  {"name":"placedAt","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"items","type":{"type":"array","items":{"type":"record","name":"Item","fields":[
    {"name":"itemId","type":"string"},
    {"name":"name","type":"string"},
    {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}},
    {"name":"quantity","type":"int"}]}}}]}"#;

fn text(v: &Value) -> Avro {
    Avro::String(v.as_str().unwrap_or_default().to_string())
}

/// A generated order as the Avro value of [`ORDER`].
fn avro_order(order: &Value) -> Avro {
    let items = order["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    let cents = (i["price"].as_f64().unwrap_or_default() * 100.0).round() as i64;
                    Avro::Record(vec![
                        ("itemId".into(), text(&i["itemId"])),
                        ("name".into(), text(&i["name"])),
                        (
                            "price".into(),
                            Avro::Decimal(BigInt::from(cents).to_signed_bytes_be().into()),
                        ),
                        (
                            "quantity".into(),
                            Avro::Int(i["quantity"].as_i64().unwrap_or(1) as i32),
                        ),
                    ])
                })
                .collect()
        })
        .unwrap_or_default();
    Avro::Record(vec![
        ("orderId".into(), text(&order["orderId"])),
        ("userId".into(), text(&order["userId"])),
        ("country".into(), text(&order["country"])),
        (
            "placedAt".into(),
            Avro::TimestampMillis(order["placedAt"].as_i64().unwrap_or(0)),
        ),
        ("items".into(), Avro::Array(items)),
    ])
}

fn formats(c: &mut Criterion) {
    let view: MaterializedView =
        serde_yaml_ng::from_str(include_str!("../examples/items-by-price.yaml")).expect("example");
    let view = compile(&view.spec).expect("example compiles");
    let schema = Schema::parse_str(ORDER).expect("schema");
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
        .build()
        .expect("writer");
    let mut generator = OrderGenerator::new(42, 5_000);
    let orders: Vec<Value> = (0..EVENTS).map(|_| generator.next_order()).collect();
    let json: Vec<Vec<u8>> = orders.iter().map(|o| o.to_string().into_bytes()).collect();
    let framed: Vec<Vec<u8>> = orders
        .iter()
        .map(|o| {
            let mut frame = vec![0, 0, 0, 0, 1];
            frame.extend(writer.write_value_to_vec(avro_order(o)).expect("encodes"));
            frame
        })
        .collect();
    let mut cache = SchemaCache::new(Encoding::Avro);
    cache.insert(&ResolvedSchema {
        id: 1,
        schema_type: "AVRO".into(),
        schema: ORDER.into(),
        references: Vec::new(),
    });
    let at = Position {
        partition: 0,
        offset: 0,
    };
    let json_bytes: usize = json.iter().map(Vec::len).sum();
    let avro_bytes: usize = framed.iter().map(Vec::len).sum();
    eprintln!("{EVENTS} orders: {json_bytes} bytes as JSON, {avro_bytes} as framed Avro");

    let mut group = c.benchmark_group("formats");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("json/shape", |b| {
        b.iter(|| {
            for e in &json {
                black_box(view.shape(e, at).map(|r| r.len()).unwrap_or(0));
            }
        })
    });
    let mut out = Vec::new();
    group.bench_function("avro/decode+shape", |b| {
        b.iter(|| {
            for e in &framed {
                cache.decode(e, &mut out).expect("decodes");
                black_box(view.shape(&out, at).map(|r| r.len()).unwrap_or(0));
            }
        })
    });
    group.bench_function("avro/decode", |b| {
        b.iter(|| {
            for e in &framed {
                cache.decode(e, &mut out).expect("decodes");
                black_box(out.len());
            }
        })
    });
    let reader = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
        .build()
        .expect("reader");
    group.bench_function("avro/apache-avro-value", |b| {
        b.iter(|| {
            for e in &framed {
                black_box(reader.read_value(&mut &e[5..]).expect("reads"));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, formats);
criterion_main!(benches);
