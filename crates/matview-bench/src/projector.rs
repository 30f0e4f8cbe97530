//! `matview bench projector`: produce N realistic orders to a broker, then time
//! one projector (one shard) from start to caught up, and report throughput,
//! peak memory, the broker's CPU share and where the time went.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::Producer;

use super::{
    BenchError, bulk_producer, cores, cpu_seconds, create_topics, delete_topics, io_err, kafka_err,
    reap_with_cpu, send_message, spawn_projector, view_yaml,
};
use crate::changelog::Changelog;
use crate::encoded_orders::{BenchFormat, OrderEncoder};
use crate::paced_reads::PacedReads;
use matview_crd::Envelope;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchConfig {
    /// Kafka bootstrap servers.
    #[arg(long, env = "MATVIEW_KAFKA_BOOTSTRAP")]
    pub bootstrap_servers: String,
    /// Orders to produce (1-10 items each).
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000_000))]
    pub events: usize,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub partitions: i32,
    /// Distinct users (rows).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    pub users: u64,
    /// Seed of the order generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// PID of the broker, to report its CPU share.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4_194_304))]
    pub broker_pid: Option<u32>,
    /// Directory for the view file and the projector's store.
    #[arg(long, default_value = "target/bench")]
    pub work_dir: PathBuf,
    /// Keep the benchmark topic afterwards (its name is in the report), for
    /// another implementation to read the same events.
    #[arg(long)]
    pub keep_topic: bool,
    /// What messages mean: `append` (every order new), or a table's
    /// changelog keyed by order id — `upsert` or `debezium` — where 20 % of
    /// the messages update a live order and 5 % delete one.
    #[arg(long, value_enum, default_value_t = BenchEnvelope::Append)]
    pub envelope: BenchEnvelope,
    /// Encoding of the events: `json`, or `avro` / `protobuf` in the
    /// Confluent wire format with the schema registered in `--schema-registry`
    /// (only with `--envelope append`).
    #[arg(long, value_enum, default_value_t = BenchFormat::Json)]
    pub format: BenchFormat,
    /// The schema registry's Confluent-compatible API, for `--format avro|protobuf`.
    #[arg(long, env = "MATVIEW_SCHEMA_REGISTRY")]
    pub schema_registry: Option<String>,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write every row the projector serves, caught up, as JSON lines to this file.
    #[arg(long, value_name = "FILE")]
    pub rows_out: Option<PathBuf>,
    /// Reads of random rows sent to the projector per second while it
    /// builds the view (0: none): what serving reads costs projection.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub lookups_per_second: u64,
}

/// `spec.source.envelope` of the benchmark view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchEnvelope {
    Append,
    Upsert,
    Debezium,
}

impl From<BenchEnvelope> for Envelope {
    fn from(e: BenchEnvelope) -> Envelope {
        match e {
            BenchEnvelope::Append => Envelope::Append,
            BenchEnvelope::Upsert => Envelope::Upsert,
            BenchEnvelope::Debezium => Envelope::Debezium,
        }
    }
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// What was produced.
struct Produced {
    /// Messages (orders, updates, deletes and Debezium's tombstones).
    messages: u64,
    items: u64,
    /// Bytes of the items as JSON, each on its own: what the view keeps.
    item_json_bytes: u64,
    secs: f64,
}

/// Produces the orders.
fn produce(
    config: &BenchConfig,
    topic: &str,
    encoder: Option<&OrderEncoder>,
) -> Result<Produced, BenchError> {
    let producer = bulk_producer(&config.bootstrap_servers)?;
    let mut changelog = Changelog::new(config.envelope.into(), config.seed, config.users);
    let started = Instant::now();
    let (mut messages, mut items, mut item_json_bytes) = (0u64, 0u64, 0u64);
    let step = (config.events / 10).max(1);
    for i in 0..config.events {
        let (sent, order) = changelog.next_change();
        for item in order
            .iter()
            .flat_map(|o| o["items"].as_array().into_iter().flatten())
        {
            items += 1;
            item_json_bytes += item.to_string().len() as u64;
        }
        for message in &sent {
            let value = match (encoder, &order) {
                (Some(encoder), Some(order)) => Some(encoder.encode(order)?),
                _ => message.value.as_ref().map(|v| v.as_bytes().to_vec()),
            };
            send_message(&producer, topic, &message.key, value.as_deref())?;
        }
        messages += sent.len() as u64;
        if (i + 1) % step == 0 {
            eprintln!("  produced {:>9} / {} events", i + 1, config.events);
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .map_err(kafka_err)?;
    Ok(Produced {
        messages,
        items,
        item_json_bytes,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// What one run measured (`--report` writes it as JSON).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    topic: String,
    applied: i64,
    items: u64,
    item_json_bytes: u64,
    produce_secs: f64,
    elapsed: f64,
    first_applied: f64,
    /// Events per second over the first and the last tenth of the events
    /// (none when the run is too short to tell).
    first_tenth_rate: Option<f64>,
    last_tenth_rate: Option<f64>,
    projector_cpu: Option<f64>,
    broker_cpu: Option<f64>,
    peak_kib: u64,
    store_bytes: u64,
    /// Reads served while projecting (`--lookups-per-second`).
    #[serde(skip_serializing_if = "Option::is_none")]
    reads: Option<ReadsFigure>,
    #[serde(skip)]
    metrics: String,
}

#[derive(Debug, serde::Serialize)]
struct ReadsFigure {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
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
    let dead_letter_topic = format!("{topic}.dlq");
    runtime.block_on(create_topics(
        &admin,
        &[(&topic, config.partitions), (&dead_letter_topic, 1)],
    ))?;
    eprintln!(
        "producing {} orders to {topic} ({} partitions)…",
        config.events, config.partitions
    );
    let encoder = runtime.block_on(encoder_for(&config, &topic))?;
    let produced = produce(&config, &topic, encoder.as_ref())?;
    eprintln!("  done: {} items in {:.1} s", produced.items, produced.secs);
    let figures = runtime.block_on(project(&config, &topic, &produced));
    if config.keep_topic {
        eprintln!("kept topic {topic}");
    } else {
        runtime.block_on(delete_topics(&admin, &[&topic, &dead_letter_topic]));
    }
    let figures = figures?;
    // Every benchmark event is valid: a dead letter means the figures time
    // something other than the view being built.
    let dead = dead_lettered(&figures.metrics);
    if dead > 0.0 {
        return Err(io_err(format!(
            "{dead} events were dead-lettered; the benchmark's events are all valid"
        )));
    }
    if let Some(path) = &config.report {
        let json = serde_json::to_vec_pretty(&figures).map_err(io_err)?;
        std::fs::write(path, json).map_err(io_err)?;
    }
    Ok(report(&config, &figures))
}

/// The encoder of `--format avro|protobuf`, its schema registered for
/// `topic`; none for JSON.
async fn encoder_for(
    config: &BenchConfig,
    topic: &str,
) -> Result<Option<OrderEncoder>, BenchError> {
    match (config.format, &config.schema_registry) {
        (BenchFormat::Json, _) => Ok(None),
        (_, None) => Err(io_err(
            "--format avro|protobuf needs --schema-registry (or MATVIEW_SCHEMA_REGISTRY)",
        )),
        (_, Some(_)) if config.envelope != BenchEnvelope::Append => Err(io_err(
            "--format avro|protobuf is measured with --envelope append only",
        )),
        (format, Some(registry)) => {
            OrderEncoder::register(format, registry, &format!("{topic}-value"))
                .await
                .map(Some)
        }
    }
}

/// Events dead-lettered, by the projector's metrics.
fn dead_lettered(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("matview_dead_lettered_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs one projector from start to caught up, watching it.
async fn project(
    config: &BenchConfig,
    topic: &str,
    produced: &Produced,
) -> Result<Figures, BenchError> {
    std::fs::create_dir_all(&config.work_dir).map_err(io_err)?;
    let view = config.work_dir.join("bench-view.yaml");
    let envelope = serde_json::to_value(Envelope::from(config.envelope)).map_err(io_err)?;
    let format = match (config.format, &config.schema_registry) {
        (BenchFormat::Json, _) | (_, None) => String::new(),
        (f, Some(url)) => {
            let name = serde_json::to_value(f).map_err(io_err)?;
            let name = name.as_str().unwrap_or("json").to_string();
            format!("\n    format: {name}\n    schemaRegistry: {{url: \"{url}\"}}")
        }
    };
    let yaml = view_yaml(&config.bootstrap_servers, topic, 1).replace(
        "\n  records:\n",
        &format!(
            "\n    envelope: {}{format}\n  records:\n",
            envelope.as_str().unwrap_or("append")
        ),
    );
    std::fs::write(&view, yaml).map_err(io_err)?;
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
    let projectors = matview_api::ProjectorClient::new(Duration::from_secs(3));
    let reads = match config.lookups_per_second {
        0 => None,
        n => Some(PacedReads::start(base.clone(), config.users, n).map_err(io_err)?),
    };
    let watched =
        watch_until_caught_up(produced.messages, &mut child, &projectors, &base, started).await;
    let reads = reads.map(PacedReads::stop).map(|mut phase| ReadsFigure {
        per_second: phase.rate(),
        p50_ms: phase.percentile(0.50),
        p99_ms: phase.percentile(0.99),
        errors: phase.errors,
    });
    let watched = watched?;
    let (applied, peak_kib) = (watched.applied, watched.peak_kib);
    let elapsed = started.elapsed().as_secs_f64();
    let first_tenth_rate = watched.progress.first_tenth_rate();
    let last_tenth_rate = watched.progress.last_tenth_rate(elapsed, applied);
    // Before the rows are dumped: that work is not the projection's.
    let cpu_caught_up = cpu_seconds(pid);
    let broker_cpu = match (broker_cpu_start, config.broker_pid.and_then(cpu_seconds)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let metrics = projectors.metrics_text(&base).await.unwrap_or_default();
    let _ = std::fs::write(config.work_dir.join("last-metrics.txt"), &metrics);
    if let Some(path) = &config.rows_out {
        let rows = super::rows_dump::dump_rows(&base, path).await?;
        eprintln!("  wrote {rows} rows to {}", path.display());
    }
    let reaped_cpu = reap_with_cpu(&mut child);
    let projector_cpu = cpu_caught_up.or(reaped_cpu);
    let store_bytes = disk_bytes(&matview_projector::store::Store::file_in(&data));
    let _ = std::fs::remove_dir_all(&data);
    Ok(Figures {
        topic: topic.to_string(),
        applied,
        items: produced.items,
        item_json_bytes: produced.item_json_bytes,
        produce_secs: produced.secs,
        elapsed,
        first_applied: watched.progress.first_applied().unwrap_or(0.0),
        first_tenth_rate,
        last_tenth_rate,
        projector_cpu,
        broker_cpu,
        peak_kib,
        store_bytes,
        reads,
        metrics,
    })
}

/// What watching the projector until it caught up saw.
struct Watched {
    applied: i64,
    peak_kib: u64,
    progress: Progress,
}

/// Samples the projector's applied events and peak memory every 100 ms
/// until it has applied every event, printing progress every 5 s.
async fn watch_until_caught_up(
    messages: u64,
    child: &mut std::process::Child,
    projectors: &matview_api::ProjectorClient,
    base: &str,
    started: Instant,
) -> Result<Watched, BenchError> {
    let (mut peak_kib, mut last_report) = (0u64, Instant::now());
    let mut progress = Progress::new(messages as usize);
    loop {
        if let Some(status) = child.try_wait().map_err(io_err)? {
            return Err(BenchError::Projector(format!("exited early with {status}")));
        }
        peak_kib = peak_kib.max(peak_rss_kib(child.id()).unwrap_or(0));
        let applied: i64 = match projectors.positions(base).await {
            Ok(positions) => positions.partitions.iter().map(|p| p.applied).sum(),
            Err(_) => 0,
        };
        if applied >= messages as i64 {
            return Ok(Watched {
                applied,
                peak_kib,
                progress,
            });
        }
        let secs = started.elapsed().as_secs_f64();
        progress.observe(secs, applied);
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("  applied {applied:>9} / {messages} events ({secs:.0} s)");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (seconds, applied) when applying began, a tenth later, and at nine
/// tenths: the first tenth is timed from the first visible batch.
struct Progress {
    tenth: i64,
    marks: [Option<(f64, i64)>; 3],
}

impl Progress {
    fn new(events: usize) -> Progress {
        Progress {
            tenth: (events / 10) as i64,
            marks: [None; 3],
        }
    }

    fn observe(&mut self, secs: f64, applied: i64) {
        let marks = &mut self.marks;
        match marks[0] {
            None if applied > 0 => marks[0] = Some((secs, applied)),
            Some((_, began)) if marks[1].is_none() && applied >= began + self.tenth => {
                marks[1] = Some((secs, applied))
            }
            _ => {}
        }
        if marks[2].is_none() && applied >= 9 * self.tenth {
            marks[2] = Some((secs, applied));
        }
    }

    /// Seconds until the first batch was visible.
    fn first_applied(&self) -> Option<f64> {
        self.marks[0].map(|(secs, _)| secs)
    }

    fn first_tenth_rate(&self) -> Option<f64> {
        rate(self.marks[0], self.marks[1])
    }

    fn last_tenth_rate(&self, elapsed: f64, applied: i64) -> Option<f64> {
        rate(self.marks[2], Some((elapsed, applied)))
    }
}

/// Events per second between two samples (none when they do not tell).
fn rate(from: Option<(f64, i64)>, to: Option<(f64, i64)>) -> Option<f64> {
    match (from, to) {
        (Some((t0, a0)), Some((t1, a1))) if t1 > t0 && a1 > a0 => {
            Some((a1 - a0) as f64 / (t1 - t0))
        }
        _ => None,
    }
}

fn report(config: &BenchConfig, f: &Figures) -> String {
    let metric = |name: &str| matview_projector::metrics::sample(&f.metrics, name).unwrap_or(0.0);
    let stage = |s: &str| metric(&format!("matview_loop_seconds_total{{stage=\"{s}\"}}"));
    let (poll, shape, commit, other) = (
        stage("poll"),
        stage("shape"),
        stage("commit"),
        stage("other"),
    );
    let batches = metric("matview_batches_total");
    let events = config.events as f64;
    let mut lines = vec![
        format!("envelope          {:?}", config.envelope).to_lowercase(),
        format!("format            {:?}", config.format).to_lowercase(),
        format!(
            "events            {} ({} items, {:.1} items/event)",
            f.applied,
            f.items,
            f.items as f64 / events
        ),
        format!(
            "produce           {:.1} s ({:.0} events/s)",
            f.produce_secs,
            events / f.produce_secs
        ),
        format!(
            "start → caught up {:.1} s (first batch visible after {:.1} s)",
            f.elapsed, f.first_applied
        ),
        format!(
            "throughput        {:.0} events/s, {:.0} items/s",
            events / f.elapsed,
            f.items as f64 / f.elapsed
        ),
    ];
    lines.push(match (f.first_tenth_rate, f.last_tenth_rate) {
        (Some(first), Some(last)) => format!(
            "first → last 10%  {first:.0} → {last:.0} events/s ({:+.0}%)",
            100.0 * (last / first - 1.0)
        ),
        _ => "first → last 10%  n/a (too few batches to tell)".to_string(),
    });
    lines.push(match f.projector_cpu {
        Some(cpu) => format!(
            "projector CPU     {cpu:.1} s ({:.0}% of one core)",
            100.0 * cpu / f.elapsed
        ),
        None => "projector CPU     (not measured)".into(),
    });
    lines.push(match f.broker_cpu {
        Some(b) => format!(
            "broker CPU        {b:.1} s ({:.0}% of the {} cores)",
            100.0 * b / (cores() * f.elapsed),
            cores()
        ),
        None => "broker CPU        (pass --broker-pid to measure)".into(),
    });
    if let Some(r) = &f.reads {
        lines.push(format!(
            "reads meanwhile   {:.0}/s, p50 {:.2} ms, p99 {:.2} ms ({} failed or not sent)",
            r.per_second, r.p50_ms, r.p99_ms, r.errors
        ));
    }
    lines.push(format!(
        "peak RSS          {:.0} MiB",
        f.peak_kib as f64 / 1024.0
    ));
    lines.push(format!(
        "store             {:.0} MiB ({:.2}x the items' JSON, {:.0} MiB)",
        f.store_bytes as f64 / (1024.0 * 1024.0),
        f.store_bytes as f64 / (f.item_json_bytes as f64).max(1.0),
        f.item_json_bytes as f64 / (1024.0 * 1024.0)
    ));
    lines.push(format!(
        "batches           {batches:.0} (mean {:.1} ms commit)",
        1000.0 * commit / batches.max(1.0)
    ));
    lines.push(format!(
        "time split        poll {poll:.1} s, parse/shape/classify {shape:.1} s, store commit {commit:.1} s, other {other:.1} s"
    ));
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Bytes the files under `path` take on disk, recursively (0 if it is
/// gone); blocks, not lengths: a journal is preallocated sparse.
fn disk_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(path) else {
        return std::fs::metadata(path).map_or(0, |m| m.blocks() * 512);
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| disk_bytes(&entry.path()))
        .sum()
}
