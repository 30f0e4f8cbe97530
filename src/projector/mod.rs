//! The projector: one process per pod. Consumes its shard's partitions,
//! keeps the view's rows in a durable store with exactly-once effect, sends
//! bad events to the dead-letter topic, and serves rows over HTTP.

pub mod changes;
pub mod consume;
pub mod http;
pub mod metrics;
pub mod store;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use tracing::info;

use crate::crd::{MaterializedView, StartFrom};
use crate::engine::{CompiledView, compile, revision};
use changes::ChangeFeed;
use metrics::Metrics;
use store::{Store, StoreError, StoreIdentity};

/// Everything a projector process needs, from its command line.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// The MaterializedView manifest (as mounted from the operator's ConfigMap).
    pub view_file: PathBuf,
    pub shard: Option<u32>,
    pub ordinal: Option<u32>,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub bootstrap_servers: Option<String>,
    pub kafka_properties: Vec<(String, String)>,
    pub batch_max_events: usize,
    pub batch_max_wait: Duration,
    pub ready_max_lag: i64,
    pub store_cache_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("cannot read the view file {path}: {reason}")]
    ViewFile { path: PathBuf, reason: String },
    #[error("the view is invalid: {0}")]
    Invalid(#[from] crate::engine::CompileError),
    #[error("{0}")]
    Config(String),
    #[error("kafka: {0}")]
    Kafka(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("http: {0}")]
    Http(String),
}

/// State shared by the consume loop and the HTTP server.
pub struct Shared {
    pub config: ProjectorConfig,
    pub name: String,
    pub namespace: String,
    pub revision: String,
    pub topic: String,
    pub dead_letter_topic: String,
    pub group_id: String,
    pub start_from: StartFrom,
    pub shard: u32,
    pub shards: u32,
    pub view: CompiledView,
    pub store: Store,
    pub metrics: Metrics,
    pub feed: ChangeFeed,
    progress: Mutex<Progress>,
}

#[derive(Debug, Default, Clone)]
struct Progress {
    /// High-water marks seen at start: ready once applied up to them.
    targets: Option<BTreeMap<i32, i64>>,
    caught_up: bool,
    applied: BTreeMap<i32, i64>,
    high_water: BTreeMap<i32, i64>,
    dead_letter_error: Option<String>,
}

impl Shared {
    fn set_targets(&self, targets: &BTreeMap<i32, i64>) {
        if let Ok(mut p) = self.progress.lock() {
            p.targets = Some(targets.clone());
        }
    }

    fn update_lag(&self, applied: &BTreeMap<i32, i64>, high_water: &BTreeMap<i32, i64>) {
        let lag: BTreeMap<i32, i64> = high_water
            .iter()
            .map(|(p, h)| (*p, (h - applied.get(p).copied().unwrap_or(0)).max(0)))
            .collect();
        if let Ok(mut m) = self.metrics.lag.lock() {
            *m = lag;
        }
        if let Ok(mut p) = self.progress.lock() {
            p.applied = applied.clone();
            p.high_water = high_water.clone();
            if let Some(targets) = &p.targets {
                let behind: i64 = targets
                    .iter()
                    .map(|(part, t)| (t - applied.get(part).copied().unwrap_or(0)).max(0))
                    .sum();
                if behind <= self.config.ready_max_lag {
                    p.caught_up = true;
                }
            }
        }
        if let Ok(rows) = self.store.row_count() {
            self.metrics.rows.store(rows, Relaxed);
        }
        if let Some(bytes) = self.store.file_bytes() {
            self.metrics.store_bytes.store(bytes, Relaxed);
        }
    }

    fn set_dead_letter_error(&self, error: Option<String>) {
        if let Ok(mut p) = self.progress.lock() {
            p.dead_letter_error = error;
        }
    }

    /// `Ok` when ready to serve; otherwise why not.
    pub fn readiness(&self) -> Result<(), String> {
        let p = self
            .progress
            .lock()
            .map_err(|_| "internal state poisoned".to_string())?;
        if let Some(e) = &p.dead_letter_error {
            return Err(format!("dead-letter topic cannot be written: {e}"));
        }
        if !p.caught_up {
            return Err("catching up with the topic".into());
        }
        Ok(())
    }

    /// Applied offsets and high-water marks per partition.
    pub fn positions(&self) -> (BTreeMap<i32, i64>, BTreeMap<i32, i64>) {
        self.progress
            .lock()
            .map(|p| (p.applied.clone(), p.high_water.clone()))
            .unwrap_or_default()
    }
}

/// Parses the view file, opens the store and builds the shared state.
pub fn prepare(config: ProjectorConfig) -> Result<(Arc<Shared>, ClientConfig), ProjectorError> {
    let text =
        std::fs::read_to_string(&config.view_file).map_err(|e| ProjectorError::ViewFile {
            path: config.view_file.clone(),
            reason: e.to_string(),
        })?;
    let mv: MaterializedView =
        serde_yaml::from_str(&text).map_err(|e| ProjectorError::ViewFile {
            path: config.view_file.clone(),
            reason: e.to_string(),
        })?;
    let view = compile(&mv.spec)?;
    let shards = u32::try_from(mv.spec.shards).unwrap_or(1).max(1);
    let shard = match (config.shard, config.ordinal) {
        (Some(s), _) => s,
        (None, Some(ordinal)) => ordinal % shards,
        (None, None) => return Err(ProjectorError::Config("give --shard or --ordinal".into())),
    };
    if shard >= shards {
        return Err(ProjectorError::Config(format!(
            "shard {shard} is out of range: the view has {shards} shards"
        )));
    }
    let name = mv.metadata.name.clone().unwrap_or_else(|| "view".into());
    let namespace = mv
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let revision = revision(&mv.spec);
    let identity = StoreIdentity {
        format: 0, // set by the store

        view: format!("{namespace}/{name}"),
        revision: revision.clone(),
        shard,
        shards,
    };
    let store = Store::open(
        &config.data_dir,
        &identity,
        view.groups.len(),
        view.aggregate.sums.len(),
        config.store_cache_bytes,
    )?;

    let mut kafka = ClientConfig::new();
    if let Some(b) =
        config
            .bootstrap_servers
            .as_ref()
            .or(mv.spec.source.kafka.bootstrap_servers.as_ref())
    {
        kafka.set("bootstrap.servers", b);
    }
    for (k, v) in &config.kafka_properties {
        kafka.set(k, v);
    }
    if kafka.get("bootstrap.servers").is_none() {
        return Err(ProjectorError::Config(
            "no Kafka bootstrap servers: set spec.source.kafka.bootstrapServers, --bootstrap-servers or --kafka-property bootstrap.servers=…".into(),
        ));
    }
    let topic = mv.spec.source.kafka.topic.clone();
    let dead_letter_topic = mv
        .spec
        .dead_letter
        .as_ref()
        .and_then(|d| d.topic.clone())
        .unwrap_or_else(|| format!("{topic}.{name}.dlq"));
    let shared = Shared {
        group_id: format!("matview.{namespace}.{name}.{revision}"),
        config,
        name,
        namespace,
        revision,
        topic,
        dead_letter_topic,
        start_from: mv.spec.source.start_from,
        shard,
        shards,
        view,
        store,
        metrics: Metrics::default(),
        feed: ChangeFeed::default(),
        progress: Mutex::new(Progress::default()),
    };
    Ok((Arc::new(shared), kafka))
}

/// Runs until SIGTERM or SIGINT: then finishes the batch, commits and returns.
pub fn run(config: ProjectorConfig) -> Result<(), ProjectorError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ProjectorError::Http(e.to_string()))?;
    let (shared, kafka) = prepare(config)?;
    info!(view = %shared.name, revision = %shared.revision, shard = shared.shard, shards = shared.shards, "projector starting");
    let stop = Arc::new(AtomicBool::new(false));

    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(shared.config.listen))
        .map_err(|e| {
            ProjectorError::Http(format!("cannot listen on {}: {e}", shared.config.listen))
        })?;
    let router = http::router(shared.clone());
    let server_stop = stop.clone();
    runtime.spawn(async move {
        let shutdown = async move {
            while !server_stop.load(Relaxed) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
    });
    let signal_stop = stop.clone();
    runtime.spawn(async move {
        crate::signals::terminated().await;
        info!("signal received: finishing the current batch");
        signal_stop.store(true, Relaxed);
    });

    let loop_shared = shared.clone();
    let loop_stop = stop.clone();
    let consumer = std::thread::Builder::new()
        .name("consume".into())
        .spawn(move || consume::run(loop_shared, kafka, loop_stop))
        .map_err(|e| ProjectorError::Kafka(e.to_string()))?;
    let result = consumer
        .join()
        .unwrap_or_else(|_| Err(ProjectorError::Kafka("the consume loop panicked".into())));
    stop.store(true, Relaxed);
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}
