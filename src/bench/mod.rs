//! Benchmarks against a running broker: `matview bench projector` (one
//! projector from start to caught up) and `matview bench gateway` (lookups,
//! scans and freshness through the gateway).

pub mod gateway;
pub mod projector;

use std::path::Path;
use std::process::{Child, Command, Stdio};

pub use projector::{BenchConfig, run};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("{0}")]
    Io(String),
    #[error("the projector failed: {0}")]
    Projector(String),
}

pub(crate) fn kafka_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Kafka(e.to_string())
}

pub(crate) fn io_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Io(e.to_string())
}

/// The shop view the benchmarks project, with `shards` shards.
pub fn view_yaml(bootstrap: &str, topic: &str, shards: u32) -> String {
    format!(
        "apiVersion: matview.dev/v1alpha1\nkind: MaterializedView\nmetadata: {{name: bench, namespace: bench}}\nspec:\n  source:\n    kafka: {{bootstrapServers: \"{bootstrap}\", topic: {topic}}}\n  records:\n    explode: /items\n    key: ^/userId\n    id: /itemId\n    fields: {{name: /name, price: /price, orderId: ^/orderId}}\n  classify:\n    field: price\n    rules:\n      - {{group: cheap, lt: 5}}\n      - {{group: affordable, gte: 5, lte: 50}}\n      - {{group: expensive, gt: 50}}\n  aggregate: {{count: true, sum: [price], items: {{limit: 1000}}}}\n  shards: {shards}\n  deadLetter: {{topic: {topic}.dlq}}\n"
    )
}

/// Starts `matview projector` (this binary) for one shard.
pub fn spawn_projector(
    view: &Path,
    shard: u32,
    data: &Path,
    port: u16,
) -> Result<Child, BenchError> {
    Command::new(std::env::current_exe().map_err(io_err)?)
        .args(["projector", "--view"])
        .arg(view)
        .args(["--shard", &shard.to_string(), "--data-dir"])
        .arg(data)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log-format",
            "text",
        ])
        .env(
            "RUST_LOG",
            std::env::var("MATVIEW_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| BenchError::Projector(e.to_string()))
}
