//! `matview bench projector`: produce N realistic orders to a broker, then time
//! one projector (one shard) from start to caught up, and report throughput,
//! peak memory, the broker's CPU share and where the time went.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use super::{BenchError, io_err, kafka_err, spawn_projector, view_yaml};
use crate::workload::OrderGenerator;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchConfig {
    /// Kafka bootstrap servers.
    #[arg(long, env = "MATVIEW_KAFKA_BOOTSTRAP")]
    pub bootstrap_servers: String,
    /// Orders to produce (1-10 items each).
    #[arg(long, default_value_t = 2_000_000)]
    pub events: usize,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Distinct users (rows).
    #[arg(long, default_value_t = 100_000)]
    pub users: u64,
    /// Seed of the order generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// PID of the broker, to report its CPU share.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Directory for the view file and the projector's store.
    #[arg(long, default_value = "target/bench")]
    pub work_dir: PathBuf,
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn metric(text: &str, name: &str) -> f64 {
    crate::projector::metrics::sample(text, name).unwrap_or(0.0)
}

/// Produces the orders; returns (items, seconds).
fn produce(config: &BenchConfig, topic: &str) -> Result<(u64, f64), BenchError> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap_servers)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "500000")
        .set("compression.type", "lz4")
        .create()
        .map_err(kafka_err)?;
    let mut generator = OrderGenerator::new(config.seed, config.users);
    let started = Instant::now();
    let mut items = 0u64;
    let step = (config.events / 10).max(1);
    for i in 0..config.events {
        let order = generator.next_order();
        items += order["items"].as_array().map_or(0, |a| a.len() as u64);
        let key = order["orderId"].as_str().unwrap_or_default().to_string();
        let mut payload = order.to_string();
        loop {
            match producer.send(BaseRecord::to(topic).key(&key).payload(&payload)) {
                Ok(()) => break,
                Err((e, record)) => {
                    if e.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::QueueFull) {
                        return Err(kafka_err(e));
                    }
                    payload = record.payload.map(String::from).unwrap_or_default();
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        if (i + 1) % step == 0 {
            eprintln!("  produced {:>9} / {} events", i + 1, config.events);
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .map_err(kafka_err)?;
    Ok((items, started.elapsed().as_secs_f64()))
}

pub fn run(config: BenchConfig) -> Result<String, BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err)?;
    let topic = format!("bench-orders-{}", std::process::id());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap_servers)
        .create()
        .map_err(kafka_err)?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let dead_letter_topic = format!("{topic}.dlq");
    runtime.block_on(async {
        let topics = [
            NewTopic::new(&topic, config.partitions, TopicReplication::Fixed(1)),
            NewTopic::new(&dead_letter_topic, 1, TopicReplication::Fixed(1)),
        ];
        for r in admin
            .create_topics(topics.iter(), &options)
            .await
            .map_err(kafka_err)?
        {
            r.map_err(|(t, e)| kafka_err(format!("cannot create {t}: {e}")))?;
        }
        Ok::<_, BenchError>(())
    })?;

    eprintln!(
        "producing {} orders to {topic} ({} partitions)…",
        config.events, config.partitions
    );
    let (items, produce_secs) = produce(&config, &topic)?;
    eprintln!("  done: {items} items in {produce_secs:.1} s");

    std::fs::create_dir_all(&config.work_dir).map_err(io_err)?;
    let view = config.work_dir.join("bench-view.yaml");
    std::fs::write(&view, view_yaml(&config.bootstrap_servers, &topic, 1)).map_err(io_err)?;
    let data = config
        .work_dir
        .join(format!("bench-data-{}", std::process::id()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(io_err)?
        .port();

    eprintln!("projecting…");
    let broker_cpu_start = config.broker_pid.and_then(cpu_seconds);
    let started = Instant::now();
    let mut child = spawn_projector(&view, 0, &data, port)?;
    let pid = child.id();
    let base = format!("http://127.0.0.1:{port}");
    let projectors = crate::api::ProjectorClient::new(Duration::from_secs(3));
    let (mut peak_kib, mut projector_cpu, mut last_report) = (0u64, 0.0, Instant::now());
    let mut first_applied: Option<f64> = None;
    let applied = runtime.block_on(async {
        loop {
            if let Some(status) = child.try_wait().map_err(io_err)? {
                return Err(BenchError::Projector(format!("exited early with {status}")));
            }
            peak_kib = peak_kib.max(peak_rss_kib(pid).unwrap_or(0));
            projector_cpu = cpu_seconds(pid).unwrap_or(projector_cpu);
            let applied: i64 = match projectors.positions(&base).await {
                Ok(positions) => positions.partitions.iter().map(|p| p.applied).sum(),
                Err(_) => 0,
            };
            if applied >= config.events as i64 {
                return Ok(applied);
            }
            if applied > 0 && first_applied.is_none() {
                first_applied = Some(started.elapsed().as_secs_f64());
            }
            if last_report.elapsed() > Duration::from_secs(5) {
                eprintln!(
                    "  applied {applied:>9} / {} events ({:.0} s)",
                    config.events,
                    started.elapsed().as_secs_f64()
                );
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let broker_cpu = match (broker_cpu_start, config.broker_pid.and_then(cpu_seconds)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let metrics = runtime
        .block_on(projectors.metrics_text(&base))
        .unwrap_or_default();
    let _ = std::fs::write(config.work_dir.join("last-metrics.txt"), &metrics);
    let _ = child.kill();
    let _ = child.wait();
    let store_bytes = std::fs::metadata(data.join("view.redb"))
        .map(|m| m.len())
        .unwrap_or(0);
    let _ = std::fs::remove_dir_all(&data);
    runtime.block_on(async {
        let _ = admin
            .delete_topics(&[&topic, &format!("{topic}.dlq")], &options)
            .await;
    });

    let other = metric(&metrics, "matview_loop_seconds_total{stage=\"other\"}");
    let (poll, shape, commit) = (
        metric(&metrics, "matview_loop_seconds_total{stage=\"poll\"}"),
        metric(&metrics, "matview_loop_seconds_total{stage=\"shape\"}"),
        metric(&metrics, "matview_loop_seconds_total{stage=\"commit\"}"),
    );
    let batches = metric(&metrics, "matview_batches_total");
    let mut report = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        report,
        "events            {applied} ({items} items, {:.1} items/event)",
        items as f64 / config.events as f64
    );
    let _ = writeln!(
        report,
        "produce           {produce_secs:.1} s ({:.0} events/s)",
        config.events as f64 / produce_secs
    );
    let _ = writeln!(
        report,
        "start → caught up {elapsed:.1} s (first batch visible after {:.1} s)",
        first_applied.unwrap_or(0.0)
    );
    let _ = writeln!(
        report,
        "throughput        {:.0} events/s, {:.0} items/s",
        config.events as f64 / elapsed,
        items as f64 / elapsed
    );
    let _ = writeln!(
        report,
        "projector CPU     {projector_cpu:.1} s ({:.0}% of one core)",
        100.0 * projector_cpu / elapsed
    );
    match broker_cpu {
        Some(b) => {
            let _ = writeln!(
                report,
                "broker CPU        {b:.1} s ({:.0}% of the 2 cores)",
                100.0 * b / (2.0 * elapsed)
            );
        }
        None => {
            let _ = writeln!(report, "broker CPU        (pass --broker-pid to measure)");
        }
    }
    let _ = writeln!(
        report,
        "peak RSS          {:.0} MiB",
        peak_kib as f64 / 1024.0
    );
    let _ = writeln!(
        report,
        "store             {:.0} MiB",
        store_bytes as f64 / (1024.0 * 1024.0)
    );
    let _ = writeln!(
        report,
        "batches           {batches:.0} (mean {:.1} ms commit)",
        1000.0 * commit / batches.max(1.0)
    );
    let _ = writeln!(
        report,
        "time split        poll {poll:.1} s, parse/shape/classify {shape:.1} s, store commit {commit:.1} s, other {other:.1} s"
    );
    Ok(report)
}
