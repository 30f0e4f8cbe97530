//! The engine's hot path on realistic orders: parse + shape + classify + fold.
//! Run: `cargo bench --bench engine`.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use matview::crd::MaterializedView;
use matview::engine::{Position, Row, compile};
use matview::workload::OrderGenerator;

const EVENTS: usize = 10_000;

fn shop_view() -> matview::engine::CompiledView {
    let text = include_str!("../examples/items-by-price.yaml");
    let view: MaterializedView = serde_yaml_ng::from_str(text).expect("example parses");
    compile(&view.spec).expect("example compiles")
}

fn engine(c: &mut Criterion) {
    let view = shop_view();
    let mut generator = OrderGenerator::new(42, 5_000);
    let events: Vec<Vec<u8>> = (0..EVENTS).map(|_| generator.next_event()).collect();
    let items: usize = events
        .iter()
        .map(|e| {
            view.shape(
                e,
                Position {
                    partition: 0,
                    offset: 0,
                },
            )
            .map(|r| r.len())
            .unwrap_or(0)
        })
        .sum();
    eprintln!(
        "{EVENTS} orders, {items} items, {:.1} items/order",
        items as f64 / EVENTS as f64
    );

    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("parse JSON only (events)", |b| {
        b.iter(|| {
            for event in &events {
                black_box(serde_json::from_slice::<serde_json::Value>(event).ok());
            }
        })
    });
    group.bench_function("shape+classify (events)", |b| {
        b.iter(|| {
            for (offset, event) in events.iter().enumerate() {
                let records = view.shape(
                    event,
                    Position {
                        partition: 0,
                        offset: offset as i64,
                    },
                );
                black_box(records.ok());
            }
        })
    });
    group.bench_function("shape+classify+fold (events)", |b| {
        b.iter(|| {
            let mut rows: HashMap<String, Row> = HashMap::new();
            for (offset, event) in events.iter().enumerate() {
                let Ok(records) = view.shape(
                    event,
                    Position {
                        partition: 0,
                        offset: offset as i64,
                    },
                ) else {
                    continue;
                };
                for record in records {
                    match rows.get_mut(&record.key) {
                        Some(row) => {
                            row.upsert(record);
                        }
                        None => {
                            let mut row = Row::new(view.groups.len(), view.aggregate.sums.len());
                            let key = record.key.clone();
                            row.upsert(record);
                            rows.insert(key, row);
                        }
                    }
                }
            }
            black_box(rows.len())
        })
    });
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
