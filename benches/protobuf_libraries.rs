//! The Protobuf library comparison behind `matview-formats`: the two Rust
//! libraries that compile `.proto` text at run time (no protoc) and decode
//! messages of a schema known only then, on the shop's orders (10,000,
//! ~5.5 items each, prices as `google.type.Decimal`). Run: `cargo bench
//! --bench protobuf_libraries`.
//!
//! - `compile/protox`, `compile/protobuf-parse`: the registry's `.proto`
//!   text (and its import) to descriptors — once per schema id.
//! - `decode/prost-reflect`, `decode/rust-protobuf`: the message bytes to
//!   the library's dynamic message — once per event.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use matview::bench::encoded_orders::{BenchFormat, OrderEncoder, PROTO_ORDER};
use matview::workload::OrderGenerator;
use protobuf::reflect::{FileDescriptor, MessageDescriptor};

const EVENTS: usize = 10_000;
const DECIMAL_PROTO: &str =
    "syntax = \"proto3\";\npackage google.type;\nmessage Decimal { string value = 1; }\n";

/// The schema and its import as files, as protobuf-parse reads them.
fn write_sources(dir: &Path) {
    std::fs::create_dir_all(dir.join("shop")).expect("dir");
    std::fs::create_dir_all(dir.join("google/type")).expect("dir");
    std::fs::write(dir.join("shop/order.proto"), PROTO_ORDER).expect("write");
    std::fs::write(dir.join("google/type/decimal.proto"), DECIMAL_PROTO).expect("write");
}

fn protox_order(dir: &Path) -> prost_reflect::MessageDescriptor {
    let set = protox::compile(["shop/order.proto"], [dir]).expect("protox compiles");
    prost_reflect::DescriptorPool::from_file_descriptor_set(set)
        .expect("pool")
        .get_message_by_name("shop.Order")
        .expect("shop.Order")
}

fn rust_protobuf_order(dir: &Path) -> MessageDescriptor {
    let parsed = protobuf_parse::Parser::new()
        .pure()
        .include(dir)
        .input(dir.join("shop/order.proto"))
        .parse_and_typecheck()
        .expect("protobuf-parse compiles");
    let files = FileDescriptor::new_dynamic_fds(parsed.file_descriptors, &[]).expect("descriptors");
    files
        .iter()
        .find_map(|f| f.message_by_package_relative_name("Order"))
        .expect("shop.Order")
}

fn libraries(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    write_sources(dir.path());
    let encoder = OrderEncoder::new(BenchFormat::Protobuf, 1).expect("encoder");
    let mut generator = OrderGenerator::new(42, 5_000);
    // The messages without their frame (magic byte, id, message index 0).
    let messages: Vec<Vec<u8>> = (0..EVENTS)
        .map(|_| encoder.encode(&generator.next_order()).expect("encodes")[6..].to_vec())
        .collect();
    let prost_order = protox_order(dir.path());
    let rust_order = rust_protobuf_order(dir.path());
    // Both read the same fields from the same bytes.
    let first = &messages[0];
    let a = prost_reflect::DynamicMessage::decode(prost_order.clone(), first.as_slice())
        .expect("prost-reflect decodes");
    let b = rust_order
        .parse_from_bytes(first)
        .expect("rust-protobuf decodes");
    let ours = a
        .get_field_by_name("orderId")
        .and_then(|v| v.as_str().map(str::to_string));
    let theirs = rust_order.field_by_name("orderId").and_then(|f| {
        f.get_singular_field_or_default(&*b)
            .to_str()
            .map(str::to_string)
    });
    assert!(ours.is_some() && ours == theirs, "{ours:?} {theirs:?}");

    let mut group = c.benchmark_group("protobuf-libraries");
    group.bench_function("compile/protox", |bench| {
        bench.iter(|| black_box(protox_order(dir.path())))
    });
    group.bench_function("compile/protobuf-parse", |bench| {
        bench.iter(|| black_box(rust_protobuf_order(dir.path())))
    });
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("decode/prost-reflect", |bench| {
        bench.iter(|| {
            for m in &messages {
                let decoded =
                    prost_reflect::DynamicMessage::decode(prost_order.clone(), m.as_slice());
                black_box(decoded.expect("decodes"));
            }
        })
    });
    group.bench_function("decode/rust-protobuf", |bench| {
        bench.iter(|| {
            for m in &messages {
                black_box(rust_order.parse_from_bytes(m).expect("decodes"));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, libraries);
criterion_main!(benches);
