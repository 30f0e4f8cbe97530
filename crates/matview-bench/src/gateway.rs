//! `matview bench gateway`: two projectors (2 shards) behind the gateway,
//! all on this machine, in two layouts: the topic keyed by row key (a lookup
//! asks one shard) and keyed by order (a row's records are on both shards,
//! so every lookup asks both and merges). Per layout: point lookups straight
//! from a projector (the store's limit, for comparison) and through the
//! gateway, group scans, and freshness (produce → visible on the view's
//! stream and on a plain read) at each rate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::gateway_fresh::freshness;
use super::gateway_load::{Targets, load};
use super::{
    BenchError, create_topics, delete_topics, io_err, kafka_err, spawn_projector, view_yaml,
};
use crate::workload::OrderGenerator;
use matview_crd::{MaterializedView, MaterializedViewStatus};
use matview_gateway::auth::{AuthMode, Authorizer};
use matview_gateway::discovery::Directory;
use matview_gateway::routing::{Endpoint, ViewRoute};
use matview_gateway::{GatewayConfig, GatewayState, serve_until};

/// Partitions of the benchmark's topic.
const PARTITIONS: i32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// Both layouts, one after the other.
    Both,
    /// The topic keyed by row key: a lookup asks one shard.
    RowKey,
    /// The topic keyed by order: a row is spread over both shards.
    Order,
}

#[derive(Debug, Clone, clap::Args)]
pub struct GatewayBenchConfig {
    /// Kafka bootstrap servers.
    #[arg(long, env = "MATVIEW_KAFKA_BOOTSTRAP")]
    pub bootstrap_servers: String,
    /// Distinct row keys (users) to look up.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub keys: u64,
    /// Which topic layouts to measure.
    #[arg(long, value_enum, default_value_t = Layout::Both)]
    pub layout: Layout,
    /// Concurrent clients of the lookup and scan phases.
    #[arg(long, default_value_t = 64, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub concurrency: usize,
    /// Seconds of each measured phase.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub seconds: u64,
    /// Events per second produced in the freshness phases, one phase each.
    #[arg(long, value_delimiter = ',', default_values_t = [1000u64, 100], value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub rates: Vec<u64>,
    /// After the phases, add `--keys` new rows at a time until the view
    /// holds this many, measuring freshness at each size (0: do not grow).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100_000_000))]
    pub curve_to: u64,
    /// Write the machine's dirty pages back (`sync`) after each growth step,
    /// before its freshness phases, to tell stalls of the disk's write-back
    /// from others. The report gives the dirty MiB either way.
    #[arg(long)]
    pub settle_writes: bool,
    /// MiB of the gateway's row cache (the lookups are also measured without).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(0..=1 << 20))]
    pub row_cache_mib: u64,
    /// Directory for the view file and the projectors' stores.
    #[arg(long, default_value = "target/bench")]
    pub work_dir: PathBuf,
}

/// Projector processes, killed when dropped.
struct Projectors(Vec<Child>);

impl Drop for Projectors {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_address() -> Result<SocketAddr, BenchError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(io_err)
}

pub fn run(config: GatewayBenchConfig) -> Result<String, BenchError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(io_err)?;
    let layouts: &[bool] = match config.layout {
        Layout::Both => &[true, false],
        Layout::RowKey => &[true],
        Layout::Order => &[false],
    };
    let mut report = String::new();
    for &keyed_by_row in layouts {
        report.push_str(&runtime.block_on(bench(&config, keyed_by_row))?);
    }
    Ok(report)
}

/// One layout: produce, project, then every phase; the report's lines.
async fn bench(config: &GatewayBenchConfig, keyed_by_row: bool) -> Result<String, BenchError> {
    let layout = if keyed_by_row { "rowkey" } else { "order" };
    let topic = format!("bench-gateway-{layout}-{}", std::process::id());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap_servers)
        .create()
        .map_err(kafka_err)?;
    let dead_letters = format!("{topic}.dlq");
    create_topics(&admin, &[(&topic, PARTITIONS), (&dead_letters, 1)]).await?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap_servers)
        // Batching as Kafka clients do by default (5 ms): a thousand one-event
        // requests a second is a load on the broker no producer would make.
        .set("linger.ms", "5")
        // Java's partitioner, which the gateway's routing assumes.
        .set("partitioner", "murmur2_random")
        .create()
        .map_err(kafka_err)?;
    // Random users: three orders per key reach ~95 % of the keys.
    let events = config.keys * 3;
    eprintln!(
        "{layout}: producing {events} orders over {} users to {topic}…",
        config.keys
    );
    let mut generator = OrderGenerator::new(7, config.keys);
    let users = produce_orders(&producer, &topic, &mut generator, events, keyed_by_row).await?;

    std::fs::create_dir_all(&config.work_dir).map_err(io_err)?;
    let view_file = config.work_dir.join(format!("bench-gateway-{layout}.yaml"));
    let mut yaml = view_yaml(&config.bootstrap_servers, &topic, 2);
    if keyed_by_row {
        yaml = yaml.replace("  source:\n", "  source:\n    keyedByRowKey: true\n");
    }
    std::fs::write(&view_file, &yaml).map_err(io_err)?;
    let mut endpoints = Vec::new();
    let mut children = Vec::new();
    let mut stores = Vec::new();
    for shard in 0..2 {
        let address = free_address()?;
        let data = config.work_dir.join(format!(
            "bench-gateway-{layout}-{}-s{shard}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&data);
        stores.push(data.clone());
        children.push(spawn_projector(&view_file, shard, &data, address.port())?);
        endpoints.push(format!("http://{address}"));
    }
    let projectors = Projectors(children);
    eprintln!("{layout}: projecting…");
    wait_applied(&endpoints, events as i64).await?;

    let (state, url) = start_gateway(&yaml, &endpoints, keyed_by_row, config.row_cache_mib).await?;
    let keys: Arc<Vec<String>> = Arc::new(users);
    let seconds = Duration::from_secs(config.seconds);
    let clients = config.concurrency;
    let mut report = if keyed_by_row {
        format!(
            "topic keyed by row key: {} rows over 2 shards, a lookup asks one\n",
            keys.len()
        )
    } else {
        format!(
            "topic keyed by order: {} rows over 2 shards, a lookup asks both and merges\n",
            keys.len()
        )
    };
    eprintln!("{layout}: lookups straight from the projectors, {clients} clients…");
    // Keys each projector holds, so every direct read finds its row.
    let held = Arc::new(shard_keys(&endpoints).await?);
    let direct: Targets = {
        let (held, endpoints) = (held.clone(), endpoints.clone());
        Arc::new(move |r: u64| {
            let shard = (r >> 32) as usize % endpoints.len();
            let keys = &held[shard];
            let key = &keys[(r % keys.len().max(1) as u64) as usize];
            format!("{}/v1/rows/{key}", endpoints[shard])
        })
    };
    let mut direct = load(direct, clients, seconds).await;
    report.push_str(&direct.line("lookups, one projector", ""));
    let lookups = |url: &str| -> Targets {
        let (keys, url) = (keys.clone(), url.to_string());
        Arc::new(move |r: u64| format!("{url}/rows/{}", keys[(r % keys.len() as u64) as usize]))
    };
    let share = |rate: f64| {
        format!(
            "  {:.0} % of one projector's",
            100.0 * rate / direct.rate().max(1e-9)
        )
    };
    eprintln!("{layout}: lookups through a gateway without a row cache…");
    let (uncached_state, uncached) = start_gateway(&yaml, &endpoints, keyed_by_row, 0).await?;
    let mut uncached_lookups = load(lookups(&uncached), clients, seconds).await;
    report.push_str(&uncached_lookups.line(
        "lookups, gateway, no cache",
        &share(uncached_lookups.rate()),
    ));
    // Scans of 100 from a random key of a random group; the same pages asked
    // of one projector directly, of the gateway without and with its cache.
    let scans = |url: &str, gateway: bool| -> Targets {
        let (keys, url) = (keys.clone(), url.to_string());
        Arc::new(move |r: u64| {
            let key = &keys[(r % keys.len() as u64) as usize];
            let group = ["cheap", "affordable", "expensive"][(r % 3) as usize];
            if gateway {
                let cursor = matview_gateway::merge::encode_cursor(key);
                format!("{url}/groups/{group}/rows?limit=100&cursor={cursor}")
            } else {
                format!("{url}/v1/groups/{group}/rows?limit=100&after={key}")
            }
        })
    };
    let scan_clients = clients.min(16);
    eprintln!("{layout}: scans straight from a projector…");
    let mut direct_scans = load(scans(&endpoints[0], false), scan_clients, seconds).await;
    report.push_str(&direct_scans.line("scans of 100, one projector", ""));
    eprintln!("{layout}: scans through a gateway without a row cache…");
    let mut uncached_scans = load(scans(&uncached, true), scan_clients, seconds).await;
    uncached_state.shutdown.cancel();
    report.push_str(&uncached_scans.line("scans of 100, gateway, no cache", ""));
    eprintln!("{layout}: every row read once through the gateway (its cache warms)…");
    warm(&url, &keys).await;
    eprintln!("{layout}: lookups through the gateway…");
    let (hits_before, misses_before) = state.metrics.row_reads();
    let mut cached = load(lookups(&url), clients, seconds).await;
    report.push_str(&cached.line("lookups, gateway", &share(cached.rate())));
    report.push_str(&format!(
        "row cache                 {:.1} % hits, {:.1} MiB held\n",
        hit_share(&state, (hits_before, misses_before)),
        state.row_cache.bytes() as f64 / 1048576.0
    ));
    eprintln!("{layout}: scans through the gateway…");
    let (hits_before, misses_before) = state.metrics.row_reads();
    let mut cached_scans = load(scans(&url, true), scan_clients, seconds).await;
    report.push_str(&cached_scans.line(
        "scans of 100, gateway",
        &format!(
            "  rows {:.1} % from the cache",
            hit_share(&state, (hits_before, misses_before))
        ),
    ));
    let fresh_producer = super::gateway_fresh::fresh_producer(&config.bootstrap_servers)?;
    let fresh = FreshnessRun {
        url: &url,
        producer: &fresh_producer,
        topic: &topic,
        keyed_by_row,
        rates: &config.rates,
        seconds,
    };
    // Events in the topic, so far: the first orders and what the phases added.
    let (lines, fresh_events) = fresh.lines(layout, "").await?;
    let mut produced = events + fresh_events;
    report.push_str(&lines);
    // Freshness as the view grows: `--keys` new users at a time.
    let (mut rows, mut step) = (keys.len() as u64, 1);
    while rows < config.curve_to {
        eprintln!("{layout}: {rows} rows; adding {} users…", config.keys);
        let mut more =
            OrderGenerator::continuing(7 + step, step * config.keys, config.keys, produced);
        let added = produce_orders(&producer, &topic, &mut more, events, keyed_by_row).await?;
        (rows, step, produced) = (rows + added.len() as u64, step + 1, produced + events);
        wait_applied(&endpoints, produced as i64).await?;
        report.push_str(&super::gateway_fresh::settle(rows, config.settle_writes)?);
        let (lines, fresh_events) = fresh.lines(layout, &format!("{rows} rows, ")).await?;
        report.push_str(&lines);
        produced += fresh_events;
    }
    state.shutdown.cancel();
    drop(projectors);
    for store in &stores {
        let _ = std::fs::remove_dir_all(store);
    }
    delete_topics(&admin, &[&topic, &dead_letters]).await;
    Ok(report)
}

/// Percent of the row reads since `before` (hits, misses) that the cache answered.
fn hit_share(state: &GatewayState, before: (u64, u64)) -> f64 {
    let (hits, misses) = state.metrics.row_reads();
    let (hits, misses) = (hits - before.0, misses - before.1);
    100.0 * hits as f64 / (hits + misses).max(1) as f64
}

/// Where the freshness phases produce and read, and at which rates.
struct FreshnessRun<'a> {
    url: &'a str,
    producer: &'a super::gateway_fresh::FreshProducer,
    topic: &'a str,
    keyed_by_row: bool,
    rates: &'a [u64],
    seconds: Duration,
}

impl FreshnessRun<'_> {
    /// Freshness at each rate, each line starting with `at`; the lines and
    /// the events the phases produced.
    async fn lines(&self, layout: &str, at: &str) -> Result<(String, u64), BenchError> {
        let (mut out, mut produced) = (String::new(), 0);
        for &rate in self.rates {
            eprintln!("{layout}: {at}freshness at {rate} events/s…");
            let mut fresh = freshness(
                self.url,
                self.producer,
                self.topic,
                self.keyed_by_row,
                rate,
                self.seconds,
            )
            .await?;
            produced += rate * self.seconds.as_secs();
            out.push_str(
                &fresh
                    .stream
                    .freshness_line(&format!("{at}fresh at {rate}/s, stream")),
            );
            out.push_str(
                &fresh
                    .read
                    .freshness_line(&format!("{at}fresh at {rate}/s, read")),
            );
            out.push_str(&fresh.acked.freshness_line("  of which Kafka's ack"));
            if let Some((some, full)) = fresh.io_stalled_ms {
                out.push_str(&format!(
                    "  stalled on I/O during it: some {some} ms, full {full} ms\n"
                ));
            }
        }
        Ok((out, produced))
    }
}

/// Produces `events` seeded orders; returns the distinct users.
async fn produce_orders(
    producer: &FutureProducer,
    topic: &str,
    generator: &mut OrderGenerator,
    events: u64,
    keyed_by_row: bool,
) -> Result<Vec<String>, BenchError> {
    let mut users = std::collections::BTreeSet::new();
    let mut pending = Vec::new();
    for _ in 0..events {
        let order = generator.next_order();
        users.insert(order["userId"].as_str().unwrap_or_default().to_string());
        let key = if keyed_by_row { "userId" } else { "orderId" };
        let key = order[key].as_str().unwrap_or_default().to_string();
        pending.push((key, order.to_string()));
        if pending.len() == 5000 {
            send_all(producer, topic, std::mem::take(&mut pending)).await?;
        }
    }
    send_all(producer, topic, pending).await?;
    Ok(users.into_iter().collect())
}

async fn send_all(
    producer: &FutureProducer,
    topic: &str,
    batch: Vec<(String, String)>,
) -> Result<(), BenchError> {
    let sends = batch.iter().map(|(key, payload)| {
        producer.send(
            FutureRecord::to(topic).key(key).payload(payload),
            Duration::from_secs(60),
        )
    });
    for sent in futures::future::join_all(sends).await {
        sent.map_err(|(e, _)| kafka_err(e))?;
    }
    Ok(())
}

/// Reads every key once, 16 at a time.
async fn warm(url: &str, keys: &[String]) {
    use futures::StreamExt;
    let http = reqwest::Client::new();
    futures::stream::iter(keys)
        .for_each_concurrent(16, |key| {
            let http = http.clone();
            async move {
                if let Ok(response) = http.get(format!("{url}/rows/{key}")).send().await {
                    let _ = response.bytes().await;
                }
            }
        })
        .await;
}

/// Every row key of each projector, in order.
async fn shard_keys(endpoints: &[String]) -> Result<Vec<Vec<String>>, BenchError> {
    let client = matview_api::ProjectorClient::new(Duration::from_secs(10));
    let mut held = Vec::new();
    for url in endpoints {
        let mut keys: Vec<String> = Vec::new();
        loop {
            let page = client
                .keys(url, keys.last().map(String::as_str), 10_000)
                .await
                .map_err(io_err)?;
            keys.extend(page.keys);
            if page.next.is_none() {
                break;
            }
        }
        if keys.is_empty() {
            return Err(BenchError::Projector(format!("{url} holds no rows")));
        }
        held.push(keys);
    }
    Ok(held)
}

async fn wait_applied(endpoints: &[String], events: i64) -> Result<(), BenchError> {
    let client = matview_api::ProjectorClient::new(Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut applied = 0;
        for url in endpoints {
            if let Ok(p) = client.positions(url).await {
                applied += p.partitions.iter().map(|p| p.applied).sum::<i64>();
            }
        }
        if applied >= events {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::Projector(format!(
                "applied {applied} of {events}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The gateway in this process, with the two projectors as the view's route.
async fn start_gateway(
    yaml: &str,
    endpoints: &[String],
    keyed_by_row_key: bool,
    row_cache_mib: u64,
) -> Result<(Arc<GatewayState>, String), BenchError> {
    let mut view: MaterializedView = serde_yaml_ng::from_str(yaml).map_err(io_err)?;
    let revision = matview_engine::revision(&view.spec);
    view.status = Some(MaterializedViewStatus {
        active_revision: Some(revision.clone()),
        ..Default::default()
    });
    let route = ViewRoute {
        namespace: "bench".into(),
        name: "bench".into(),
        revision,
        topic: view.spec.source.kafka.topic.clone(),
        keyed_by_row_key,
        shards: endpoints
            .iter()
            .enumerate()
            .map(|(i, url)| {
                vec![Endpoint {
                    pod: format!("bench-s{i}"),
                    url: url.clone(),
                }]
            })
            .collect(),
    };
    let address = free_address()?;
    let config = GatewayConfig {
        listen: address,
        namespace: None,
        auth: AuthMode::None,
        auth_cache: Duration::from_secs(10),
        deadline: Duration::from_secs(5),
        projector_timeout: Duration::from_secs(1),
        max_streams: 100,
        row_cache_bytes: row_cache_mib << 20,
    };
    let directory = Directory::fixed(vec![(view, route)]);
    let state = GatewayState::new(
        directory,
        Authorizer::new(AuthMode::None, None, config.auth_cache),
        &config,
    );
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(io_err)?;
    let stop = state.shutdown.clone();
    tokio::spawn(serve_until(listener, state.clone(), async move {
        stop.cancelled().await
    }));
    Ok((
        state,
        format!("http://{address}/v1/namespaces/bench/views/bench"),
    ))
}
