//! Benchmarks against a running broker: `matview bench projector` (one
//! projector from start to caught up), `matview bench big-row` (reads of a
//! row of 100,000 records while the projector writes) and `matview bench
//! gateway` (lookups, scans and freshness through the gateway).

pub mod big_row;
pub mod changelog;
pub mod encoded_orders;
pub mod gateway;
mod gateway_fresh;
mod gateway_load;
mod paced_reads;
pub mod projector;
pub mod rows_dump;
pub mod workload;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

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
    view_yaml_listing(bootstrap, topic, shards, 1000)
}

/// [`view_yaml`] serving at most `items` items per group.
pub fn view_yaml_listing(bootstrap: &str, topic: &str, shards: u32, items: u32) -> String {
    format!(
        "apiVersion: matview.dev/v1alpha1\nkind: MaterializedView\nmetadata: {{name: bench, namespace: bench}}\nspec:\n  source:\n    kafka: {{bootstrapServers: \"{bootstrap}\", topic: {topic}}}\n  records:\n    explode: /items\n    key: ^/userId\n    id: /itemId\n    fields: {{name: /name, price: /price, orderId: ^/orderId}}\n  classify:\n    field: price\n    rules:\n      - {{group: cheap, lt: 5}}\n      - {{group: affordable, gte: 5, lte: 50}}\n      - {{group: expensive, gt: 50}}\n  aggregate: {{count: true, sum: [price], items: {{limit: {items}}}}}\n  shards: {shards}\n  deadLetter: {{topic: {topic}.dlq}}\n"
    )
}

/// Starts `matview projector` (this binary) for one shard.
pub fn spawn_projector(
    view: &Path,
    shard: u32,
    data: &Path,
    port: u16,
) -> Result<Child, BenchError> {
    spawn_projector_of(
        &std::env::current_exe().map_err(io_err)?,
        view,
        shard,
        data,
        port,
    )
}

/// Starts `<bin> projector` for one shard.
pub fn spawn_projector_of(
    bin: &Path,
    view: &Path,
    shard: u32,
    data: &Path,
    port: u16,
) -> Result<Child, BenchError> {
    Command::new(bin)
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

/// A producer for bulk loads: large lingering batches, LZ4.
pub fn bulk_producer(
    servers: &str,
) -> Result<
    rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
    BenchError,
> {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "500000")
        .set("compression.type", "lz4")
        .create()
        .map_err(kafka_err)
}

/// Sends one order keyed by its id, waiting while the local queue is full.
pub fn send_order(
    producer: &rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
    topic: &str,
    order: &serde_json::Value,
) -> Result<(), BenchError> {
    let key = order["orderId"].as_str().unwrap_or_default();
    send_message(producer, topic, key, Some(order.to_string().as_bytes()))
}

/// Sends one message (`None`: a tombstone), waiting while the queue is full.
pub fn send_message(
    producer: &rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
    topic: &str,
    key: &str,
    value: Option<&[u8]>,
) -> Result<(), BenchError> {
    loop {
        let mut record = rdkafka::producer::BaseRecord::<str, [u8]>::to(topic).key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((e, _))
                if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(kafka_err(e)),
        }
    }
}

/// Creates `(name, partitions)` topics, failing on any refusal.
pub async fn create_topics(
    admin: &AdminClient<DefaultClientContext>,
    topics: &[(&str, i32)],
) -> Result<(), BenchError> {
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    for r in admin
        .create_topics(new.iter(), &options)
        .await
        .map_err(kafka_err)?
    {
        r.map_err(|(t, e)| kafka_err(format!("cannot create {t}: {e}")))?;
    }
    Ok(())
}

/// Deletes the benchmark's topics; failures are only noise for a benchmark.
pub async fn delete_topics(admin: &AdminClient<DefaultClientContext>, topics: &[&str]) {
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let _ = admin.delete_topics(topics, &options).await;
}

/// Kills a child and returns the CPU seconds (user + system) it used, from
/// the kernel's own accounting of the reaped process (wait4).
pub fn reap_with_cpu(child: &mut Child) -> Option<f64> {
    let _ = child.kill();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child's pid with valid pointers.
    let reaped = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (reaped > 0).then(|| seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

/// CPU seconds (user + system) of any process so far, from /proc, in the
/// kernel's clock ticks.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf reads a constant of the running kernel.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| ticks / per_second as f64)
}

/// Cores this process may use.
pub fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}
