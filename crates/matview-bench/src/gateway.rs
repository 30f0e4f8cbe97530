//! `matview bench gateway`: two projectors (2 shards, topic keyed by order, so
//! every lookup asks both) behind the gateway, all on this machine. Measures
//! point lookups (random keys, N concurrent clients), group scans, and
//! freshness (produce → change visible on a live stream).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

use super::{
    BenchError, create_topics, delete_topics, io_err, kafka_err, spawn_projector, view_yaml,
};
use crate::workload::OrderGenerator;
use matview_crd::{MaterializedView, MaterializedViewStatus};
use matview_gateway::auth::{AuthMode, Authorizer};
use matview_gateway::discovery::Directory;
use matview_gateway::routing::{Endpoint, ViewRoute};
use matview_gateway::upstream::{MAX_PENDING_BYTES, sse_events};
use matview_gateway::{GatewayConfig, GatewayState, serve_until};

#[derive(Debug, Clone, clap::Args)]
pub struct GatewayBenchConfig {
    /// Kafka bootstrap servers.
    #[arg(long, env = "MATVIEW_KAFKA_BOOTSTRAP")]
    pub bootstrap_servers: String,
    /// Distinct row keys (users) to look up.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub keys: u64,
    /// Concurrent clients of the lookup and scan phases.
    #[arg(long, default_value_t = 64, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub concurrency: usize,
    /// Seconds of each measured phase.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub seconds: u64,
    /// Events per second produced in the freshness phase.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub rate: u64,
    /// Directory for the view file and the projectors' stores.
    #[arg(long, default_value = "target/bench")]
    pub work_dir: PathBuf,
}

/// Latency figures of one phase.
struct Phase {
    requests: usize,
    errors: usize,
    seconds: f64,
    micros: Vec<u64>,
}

impl Phase {
    fn percentile(&mut self, p: f64) -> f64 {
        if self.micros.is_empty() {
            return 0.0;
        }
        self.micros.sort_unstable();
        let at = ((self.micros.len() as f64 * p) as usize).min(self.micros.len() - 1);
        self.micros[at] as f64 / 1000.0
    }

    fn line(&mut self, what: &str) -> String {
        format!(
            "{what:<18}{:>9.0} req/s  p50 {:.2} ms  p99 {:.2} ms  ({} requests, {} errors)\n",
            self.requests as f64 / self.seconds,
            self.percentile(0.50),
            self.percentile(0.99),
            self.requests,
            self.errors
        )
    }
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
    runtime.block_on(bench(config))
}

async fn bench(config: GatewayBenchConfig) -> Result<String, BenchError> {
    let topic = format!("bench-gateway-{}", std::process::id());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap_servers)
        .create()
        .map_err(kafka_err)?;
    let dead_letters = format!("{topic}.dlq");
    create_topics(&admin, &[(&topic, 4), (&dead_letters, 1)]).await?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap_servers)
        .set("linger.ms", "0")
        .create()
        .map_err(kafka_err)?;
    // Random users: three orders per key reach ~95 % of the keys.
    let events = config.keys * 3;
    eprintln!(
        "producing {events} orders over {} users to {topic}…",
        config.keys
    );
    let users = produce_orders(&producer, &topic, &config, events).await?;

    std::fs::create_dir_all(&config.work_dir).map_err(io_err)?;
    let view_file = config.work_dir.join("bench-gateway-view.yaml");
    let yaml = view_yaml(&config.bootstrap_servers, &topic, 2);
    std::fs::write(&view_file, &yaml).map_err(io_err)?;
    let mut endpoints = Vec::new();
    let mut children = Vec::new();
    for shard in 0..2 {
        let address = free_address()?;
        let data = config
            .work_dir
            .join(format!("bench-gateway-{}-s{shard}", std::process::id()));
        children.push(spawn_projector(&view_file, shard, &data, address.port())?);
        endpoints.push(format!("http://{address}"));
    }
    let projectors = Projectors(children);
    eprintln!("projecting…");
    wait_applied(&endpoints, events as i64).await?;

    let (state, url) = start_gateway(&yaml, &endpoints).await?;
    let keys: Arc<Vec<String>> = Arc::new(users);
    let seconds = Duration::from_secs(config.seconds);
    eprintln!(
        "lookups: {} clients for {} s…",
        config.concurrency, config.seconds
    );
    let mut lookups = load(&url, &keys, config.concurrency, seconds, false).await;
    eprintln!("scans…");
    let mut scans = load(&url, &keys, config.concurrency.min(16), seconds, true).await;
    eprintln!("freshness at {} events/s…", config.rate);
    let mut fresh = freshness(&url, &producer, &topic, config.rate, seconds).await?;
    state.shutdown.cancel();
    drop(projectors);
    delete_topics(&admin, &[&topic, &dead_letters]).await;
    let mut report = format!(
        "keys              {} rows over 2 shards (topic keyed by order: lookups ask both)\n",
        keys.len()
    );
    report.push_str(&lookups.line("lookups"));
    report.push_str(&scans.line("scans (limit 100)"));
    report.push_str(&format!(
        "freshness         p50 {:.1} ms  p99 {:.1} ms  ({} of {} changes seen on the stream)\n",
        fresh.percentile(0.50),
        fresh.percentile(0.99),
        fresh.micros.len(),
        fresh.requests
    ));
    Ok(report)
}

/// Produces `events` seeded orders; returns the distinct users.
async fn produce_orders(
    producer: &FutureProducer,
    topic: &str,
    config: &GatewayBenchConfig,
    events: u64,
) -> Result<Vec<String>, BenchError> {
    let mut generator = OrderGenerator::new(7, config.keys);
    let mut users = std::collections::BTreeSet::new();
    let mut pending = Vec::new();
    for _ in 0..events {
        let order = generator.next_order();
        users.insert(order["userId"].as_str().unwrap_or_default().to_string());
        let key = order["orderId"].as_str().unwrap_or_default().to_string();
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
        keyed_by_row_key: false,
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

/// `clients` loops of random lookups (or scan pages) for `duration`.
async fn load(
    url: &str,
    keys: &Arc<Vec<String>>,
    clients: usize,
    duration: Duration,
    scan: bool,
) -> Phase {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap_or_default();
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (http, url, keys) = (http.clone(), url.to_string(), keys.clone());
            tokio::spawn(async move {
                let mut state = (c as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                let (mut micros, mut errors) = (Vec::new(), 0);
                while started.elapsed() < duration {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let key = &keys[(state % keys.len() as u64) as usize];
                    let target = if scan {
                        let group = ["cheap", "affordable", "expensive"][(state % 3) as usize];
                        format!(
                            "{url}/groups/{group}/rows?limit=100&cursor={}",
                            matview_gateway::merge::encode_cursor(key)
                        )
                    } else {
                        format!("{url}/rows/{key}")
                    };
                    let sent = Instant::now();
                    match http.get(&target).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            micros.push(sent.elapsed().as_micros() as u64);
                        }
                        _ => errors += 1,
                    }
                }
                (micros, errors)
            })
        })
        .collect();
    let mut phase = Phase {
        requests: 0,
        errors: 0,
        seconds: 0.0,
        micros: Vec::new(),
    };
    for task in tasks {
        if let Ok((micros, errors)) = task.await {
            phase.requests += micros.len() + errors;
            phase.errors += errors;
            phase.micros.extend(micros);
        }
    }
    phase.seconds = started.elapsed().as_secs_f64();
    phase
}

/// Reads the stream; each item found that `sent_at` holds is timed into
/// `seen`. Ends once `done` and every sent item was seen.
async fn time_items(
    response: reqwest::Response,
    sent_at: Arc<std::sync::Mutex<HashMap<String, Instant>>>,
    seen: Arc<std::sync::Mutex<Vec<u64>>>,
    done: Arc<AtomicBool>,
) {
    let mut events = std::pin::pin!(sse_events(response.bytes_stream(), MAX_PENDING_BYTES));
    while let Some(Ok(frame)) = events.next().await {
        let now = Instant::now();
        let data = serde_json::from_str::<Value>(&frame.data).unwrap_or_default();
        let groups = data["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| {
                row["groups"]
                    .as_object()
                    .into_iter()
                    .flat_map(|g| g.values())
            });
        for item in groups.flat_map(|g| g["items"].as_array().into_iter().flatten()) {
            let id = item["id"].as_str().unwrap_or_default();
            if let Some(at) = sent_at.lock().ok().and_then(|mut s| s.remove(id))
                && let Ok(mut seen) = seen.lock()
            {
                seen.push((now - at).as_micros() as u64);
            }
        }
        if done.load(Ordering::Relaxed) && sent_at.lock().map(|s| s.is_empty()).unwrap_or(true) {
            return;
        }
    }
}

/// Produces new items at `rate`/s for `duration` and times each until a
/// stream event shows it.
async fn freshness(
    url: &str,
    producer: &FutureProducer,
    topic: &str,
    rate: u64,
    duration: Duration,
) -> Result<Phase, BenchError> {
    let response = reqwest::get(format!("{url}/watch")).await.map_err(io_err)?;
    let sent_at: Arc<std::sync::Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen: Arc<std::sync::Mutex<Vec<u64>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(time_items(
        response,
        sent_at.clone(),
        seen.clone(),
        done.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let total = rate * duration.as_secs();
    let mut sends = Vec::new();
    for i in 0..total {
        let due = started + Duration::from_micros(i * 1_000_000 / rate.max(1));
        tokio::time::sleep_until(due.into()).await;
        let item = format!("fresh-{i}");
        // Few items per user, so every item is among a row's listed items.
        let order = json!({"orderId": format!("fresh-{i}"), "userId": format!("fresh-user-{}", i % 5000),
            "items": [{"itemId": item, "name": "pen", "price": 1.5}]});
        if let Ok(mut s) = sent_at.lock() {
            s.insert(item.clone(), Instant::now());
        }
        let producer = producer.clone();
        let topic = topic.to_string();
        sends.push(tokio::spawn(async move {
            let payload = order.to_string();
            let _ = producer
                .send(
                    FutureRecord::to(&topic).key(&item).payload(&payload),
                    Duration::from_secs(30),
                )
                .await;
        }));
    }
    futures::future::join_all(sends).await;
    done.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(10), reader).await;
    let micros = seen.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(Phase {
        requests: total as usize,
        errors: total as usize - micros.len(),
        seconds: started.elapsed().as_secs_f64(),
        micros,
    })
}
