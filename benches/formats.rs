//! Avro and Protobuf beside JSON on the shop's orders (10,000, ~5.5 items each): what the
//! projector does per event for each format, and the decoder beside
//! apache-avro's own reader. Run: `cargo bench --bench formats`.
//!
//! - `json/shape`: the engine on the JSON text (validate + shape).
//! - `avro/decode+shape`: the framed Avro decoded to JSON, then the same.
//! - `avro/decode`: the decoder alone (Avro body to JSON text).
//! - `protobuf/decode+shape`, `protobuf/decode`: the same for Protobuf
//!   (prices as `google.type.Decimal`).
//! - `…/decode+shape tape`: the projector's way: decoded onto a tape (no
//!   JSON text), only what the view's paths read, then shaped from the tape.
//! - `avro/apache-avro-value`: apache-avro's `GenericDatumReader` to its
//!   `Value` tree, no JSON: what the decoder would start from if it used the
//!   crate's reader (the comparison `matview-formats/src/avro.rs` cites).

use std::hint::black_box;

use apache_avro::Schema;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use matview::bench::encoded_orders::{AVRO_ORDER, BenchFormat, OrderEncoder, PROTO_ORDER};
use matview::crd::MaterializedView;
use matview::engine::{Position, Tape, compile};
use matview::workload::OrderGenerator;
use matview_formats::registry::ResolvedSchema;
use matview_formats::{Encoding, Projection, SchemaCache};
use serde_json::Value;

const EVENTS: usize = 10_000;

fn formats(c: &mut Criterion) {
    let view: MaterializedView =
        serde_yaml_ng::from_str(include_str!("../examples/items-by-price.yaml")).expect("example");
    let view = compile(&view.spec).expect("example compiles");
    let schema = Schema::parse_str(AVRO_ORDER).expect("schema");
    let mut generator = OrderGenerator::new(42, 5_000);
    let orders: Vec<Value> = (0..EVENTS).map(|_| generator.next_order()).collect();
    let json: Vec<Vec<u8>> = orders.iter().map(|o| o.to_string().into_bytes()).collect();
    let encode = |format, id| {
        let encoder = OrderEncoder::new(format, id).expect("encoder");
        let framed: Vec<Vec<u8>> = orders
            .iter()
            .map(|o| encoder.encode(o).expect("encodes"))
            .collect();
        framed
    };
    let (framed, protobuf) = (
        encode(BenchFormat::Avro, 1),
        encode(BenchFormat::Protobuf, 2),
    );
    let projection = matview::projector::value_projection(&view);
    let cache = |encoding, id, schema_type: &str, schema: &str, projection: &Projection| {
        let mut cache = SchemaCache::with_projection(encoding, projection.clone());
        cache.insert(&ResolvedSchema {
            id,
            schema_type: schema_type.into(),
            schema: schema.into(),
            references: Vec::new(),
        });
        cache
    };
    let all = Projection::All;
    let avro_cache = cache(Encoding::Avro, 1, "AVRO", AVRO_ORDER, &all);
    let proto_cache = cache(Encoding::Protobuf, 2, "PROTOBUF", PROTO_ORDER, &all);
    let avro_projected = cache(Encoding::Avro, 1, "AVRO", AVRO_ORDER, &projection);
    let proto_projected = cache(Encoding::Protobuf, 2, "PROTOBUF", PROTO_ORDER, &projection);
    let at = Position {
        partition: 0,
        offset: 0,
    };
    let json_bytes: usize = json.iter().map(Vec::len).sum();
    let avro_bytes: usize = framed.iter().map(Vec::len).sum();
    let proto_bytes: usize = protobuf.iter().map(Vec::len).sum();
    eprintln!(
        "{EVENTS} orders: {json_bytes} bytes as JSON, {avro_bytes} as framed Avro, {proto_bytes} as framed Protobuf"
    );

    let mut group = c.benchmark_group("formats");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("json/shape", |b| {
        b.iter(|| {
            for e in &json {
                black_box(view.shape(e, at).map(|r| r.len()).unwrap_or(0));
            }
        })
    });
    // Each binary format decoded alone, and decoded then shaped.
    for (name, cache, frames) in [
        ("avro", &avro_cache, &framed),
        ("protobuf", &proto_cache, &protobuf),
    ] {
        for shaped in [true, false] {
            let id = format!("{name}/{}", if shaped { "decode+shape" } else { "decode" });
            let mut out = Vec::new();
            group.bench_function(id, |b| {
                b.iter(|| {
                    for e in frames {
                        cache.decode(e, &mut out).expect("decodes");
                        let records = shaped.then(|| view.shape(&out, at).map(|r| r.len()));
                        black_box((out.len(), records));
                    }
                })
            });
        }
    }
    for (name, cache, frames) in [
        ("avro", &avro_projected, &framed),
        ("protobuf", &proto_projected, &protobuf),
    ] {
        let mut tape = Tape::new();
        group.bench_function(format!("{name}/decode+shape tape"), |b| {
            b.iter(|| {
                for e in frames {
                    cache.decode_to_tape(e, &mut tape).expect("decodes");
                    black_box(view.shape_tape(&tape, at).map(|r| r.len()).unwrap_or(0));
                }
            })
        });
    }
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
