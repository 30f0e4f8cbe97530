//! The projector: one process per pod. Consumes its shard's partitions,
//! keeps the view's rows in a durable store with exactly-once effect, sends
//! bad events to the dead-letter topic, and serves rows over HTTP.

mod batch;
pub mod budget;
pub mod changes;
pub mod consume;
mod dead_letter_tail;
mod dead_letters;
mod decoding;
pub mod figures;
pub use decoding::value_projection;
pub mod http;
pub mod metrics;
mod reads;
mod replicas;
mod setup;
pub mod store;
pub mod store_codec;
mod troubles;
mod watermarks;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use changes::ChangeFeed;
use matview_api::view::{ValidatedView, ViewError};
use metrics::Metrics;
use store::{RowShape, Store, StoreError, StoreIdentity};

/// Everything a projector process needs, from its command line.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// The MaterializedView manifest (as mounted from the operator's ConfigMap).
    pub view_file: PathBuf,
    pub shard: Option<u32>,
    pub ordinal: Option<u32>,
    /// Which replica of its shard this is (its StatefulSet's pod index);
    /// `None` for a process that is its shard's only one.
    pub replica: Option<u32>,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub bootstrap_servers: Option<String>,
    pub kafka_properties: Vec<(String, String)>,
    pub batch_max_events: usize,
    pub batch_max_wait: Duration,
    pub ready_max_lag: i64,
    pub store_cache_bytes: usize,
    /// librdkafka's fetch queue per partition (`queued.max.messages.kbytes`).
    pub fetch_queue_kib: usize,
    /// What the three above were shared out of.
    pub memory_budget_mib: usize,
    pub damaged_store: DamagedStore,
    /// Batches wait while the data directory's file system has less free.
    pub min_free_bytes: u64,
    /// Where the settings of a secured schema registry are mounted
    /// (`username`, `password`, `ca.crt`).
    pub schema_registry_config_dir: Option<PathBuf>,
}

/// What a projector does with a store that fails its integrity check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DamagedStore {
    /// Delete it and rebuild from the topic (the topic is the source of
    /// truth; the replica is not ready, so not read, until caught up).
    #[default]
    Rebuild,
    /// Exit with the damage named, leaving the file for inspection.
    Refuse,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error("cannot read the view file {path}")]
    ReadView {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse the view file {path}")]
    ParseView {
        path: PathBuf,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("the view is invalid")]
    Invalid(#[from] ViewError),
    /// A usage mistake, said in full (no underlying cause).
    #[error("{0}")]
    Config(String),
    #[error("kafka: {context}")]
    Kafka {
        context: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("source topic {0} does not exist")]
    MissingTopic(String),
    #[error(
        "could not read the dead-letter topic {0} to its end within a minute \
         (needed to send each dead letter once after a crash)"
    )]
    DeadLetterScan(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    RegistryAccess(#[from] matview_registry::AccessError),
    #[error("cannot start the projector's threads")]
    Runtime(#[source] std::io::Error),
    #[error("the consume loop panicked")]
    Panicked,
    #[error("cannot delete the store {path} to rebuild it")]
    RemoveStore {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ProjectorError {
    pub(crate) fn kafka(
        context: impl Into<String>,
    ) -> impl FnOnce(rdkafka::error::KafkaError) -> ProjectorError {
        let context = context.into();
        move |source| ProjectorError::Kafka { context, source }
    }
}

/// State shared by the consume loop and the HTTP server.
pub struct Shared {
    pub config: ProjectorConfig,
    pub view: ValidatedView,
    pub shard: u32,
    /// The consumer group of this revision (informational commits).
    pub group_id: String,
    pub store: Store,
    pub metrics: Metrics,
    pub feed: ChangeFeed,
    dead_letter_tail: dead_letter_tail::DeadLetterTail,
    progress: Mutex<Progress>,
    /// Applied offsets (next to apply) per partition, for readers that wait.
    applied: tokio::sync::watch::Sender<BTreeMap<i32, i64>>,
    /// Bumped whenever a trouble starts, ends or changes (`GET /v1/troubles`).
    troubles: tokio::sync::watch::Sender<u64>,
}

#[derive(Debug, Default, Clone)]
struct Progress {
    /// High-water marks seen at start: ready once applied up to them.
    targets: Option<BTreeMap<i32, i64>>,
    caught_up: bool,
    applied: BTreeMap<i32, i64>,
    high_water: BTreeMap<i32, i64>,
    low_water: BTreeMap<i32, i64>,
    dead_letter_error: Option<String>,
    /// Why the broker does not answer, while it does not.
    source_error: Option<String>,
    /// Why batches are held instead of written to the store, while they are.
    store_error: Option<String>,
    /// Why the schema registry cannot answer, while it cannot (batches wait).
    registry_error: Option<String>,
    /// The registry answered 401 or 403: the credentials need a fix.
    registry_refused: bool,
    /// Partitions with replicas out of sync, while some have.
    under_replicated: Option<String>,
    /// Partitions of the source topic, once read.
    partition_count: i32,
}

impl Shared {
    fn set_targets(&self, targets: &BTreeMap<i32, i64>, partition_count: i32) {
        if let Ok(mut p) = self.progress.lock() {
            p.targets = Some(targets.clone());
            p.partition_count = partition_count;
        }
    }

    pub fn partition_count(&self) -> i32 {
        self.progress.lock().map(|p| p.partition_count).unwrap_or(0)
    }

    /// Waits until every `(partition, offset)` is applied (the next offset to
    /// apply is past it); gives the applied offsets then, or `Err` with the
    /// latest ones after `timeout`.
    pub async fn wait_applied(
        &self,
        at_least: &[(i32, i64)],
        timeout: Duration,
    ) -> Result<BTreeMap<i32, i64>, BTreeMap<i32, i64>> {
        let mut rx = self.applied.subscribe();
        let reached = |applied: &BTreeMap<i32, i64>| {
            at_least
                .iter()
                .all(|(p, o)| applied.get(p).is_some_and(|a| a > o))
        };
        match tokio::time::timeout(timeout, rx.wait_for(reached)).await {
            Ok(Ok(applied)) => Ok(applied.clone()),
            _ => Err(self.applied.borrow().clone()),
        }
    }

    /// A batch is in the store: read-your-writes waiters see its positions,
    /// watchers its changes (in batch order: one batch commits at a time).
    fn committed(&self, applied: &BTreeMap<i32, i64>, changed: Vec<store::ChangedRow>) {
        if let Ok(mut p) = self.progress.lock() {
            p.applied = applied.clone();
        }
        self.applied.send_replace(applied.clone());
        if !changed.is_empty() {
            self.feed.publish(changed, applied.clone());
        }
    }

    fn update_lag(&self, applied: &BTreeMap<i32, i64>, high_water: &BTreeMap<i32, i64>) {
        let lag: BTreeMap<i32, i64> = high_water
            .iter()
            .map(|(p, h)| (*p, (h - applied.get(p).copied().unwrap_or(0)).max(0)))
            .collect();
        self.metrics.set_lag(lag);
        self.applied.send_replace(applied.clone());
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
            self.metrics.set_rows(rows);
        }
        if let Some(bytes) = self.store.file_bytes() {
            self.metrics.set_store_bytes(bytes);
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
            // What keeps it from catching up, if anything does.
            let held = match (&p.store_error, &p.source_error, &p.registry_error) {
                (Some(store), _, _) => format!("; batches held: {store}"),
                (None, Some(source), _) => format!("; the broker does not answer: {source}"),
                (None, None, Some(registry)) => format!("; batches held: {registry}"),
                (None, None, None) => String::new(),
            };
            return Err(format!("catching up with the topic{held}"));
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

    /// The first offset each partition still holds, as last read.
    pub fn low_watermarks(&self) -> BTreeMap<i32, i64> {
        self.progress
            .lock()
            .map(|p| p.low_water.clone())
            .unwrap_or_default()
    }

    fn note_low_watermark(&self, partition: i32, low: i64) {
        if let Ok(mut p) = self.progress.lock() {
            p.low_water.insert(partition, low);
        }
    }
}

/// Parses the view file, opens the store and builds the shared state.
pub fn prepare(config: ProjectorConfig) -> Result<(Arc<Shared>, ClientConfig), ProjectorError> {
    let manifest = setup::read_manifest(&config.view_file)?;
    let view = ValidatedView::new(&manifest)?;
    let shard = setup::shard_of(&config, view.shards)?;
    info!(
        budget_mib = config.memory_budget_mib,
        store_cache_mib = config.store_cache_bytes >> 20,
        fetch_queue_kib = config.fetch_queue_kib,
        batch_max_events = config.batch_max_events,
        "memory plan"
    );
    let kafka = setup::kafka_config(
        &config,
        manifest.spec.source.kafka.bootstrap_servers.as_ref(),
    )?;
    let identity = StoreIdentity {
        format: 0, // set by the store
        view: view.key(),
        revision: view.revision.clone(),
        shard,
        shards: view.shards,
    };
    let open = || {
        Store::open(
            &config.data_dir,
            &identity,
            RowShape::of(&view.compiled),
            config.store_cache_bytes,
        )
    };
    // The topic is the source of truth: a store that cannot be used as it
    // is goes, and is built again from the topic.
    let rebuild = |path: &std::path::Path| {
        std::fs::remove_file(path).map_err(|source| ProjectorError::RemoveStore {
            path: path.to_path_buf(),
            source,
        })?;
        Ok::<_, ProjectorError>(open()?)
    };
    let (store, rebuilt) = match open() {
        Err(StoreError::Damaged { path, detail })
            if config.damaged_store == DamagedStore::Rebuild =>
        {
            error!(path = %path.display(), %detail, "the store is damaged; deleting it and rebuilding from the topic (--damaged-store refuse keeps it)");
            (rebuild(&path)?, true)
        }
        Err(StoreError::Outdated {
            path,
            found,
            expected,
        }) => {
            warn!(path = %path.display(), found, expected, "the store has an older layout; deleting it and rebuilding from the topic");
            (rebuild(&path)?, false)
        }
        opened => (opened?, false),
    };
    let metrics = Metrics::default();
    metrics.set_store_writable(true);
    if rebuilt {
        metrics.store_rebuilt_from_damage();
    }
    let shared = Shared {
        group_id: view.consumer_group(&view.revision),
        dead_letter_tail: dead_letter_tail::DeadLetterTail::new(
            kafka.clone(),
            view.dead_letter_topic.clone(),
        ),
        config,
        view,
        shard,
        store,
        metrics,
        feed: ChangeFeed::default(),
        progress: Mutex::new(Progress::default()),
        applied: tokio::sync::watch::channel(BTreeMap::new()).0,
        troubles: tokio::sync::watch::channel(0).0,
    };
    Ok((Arc::new(shared), kafka))
}

/// A projector started on a runtime: its HTTP API listens on `address`,
/// its consume loop runs on its own thread until `cancel`.
pub struct RunningProjector {
    pub shared: Arc<Shared>,
    pub address: SocketAddr,
    consumer: std::thread::JoinHandle<Result<(), ProjectorError>>,
}

impl RunningProjector {
    /// Waits for the consume loop (after `cancel`: the last batch committed).
    pub fn join(self) -> Result<(), ProjectorError> {
        self.consumer
            .join()
            .unwrap_or(Err(ProjectorError::Panicked))
    }
}

/// Opens the store, binds the API (port 0 picks a free one) and starts the
/// consume loop. Call from outside the runtime's own threads.
pub fn start(
    config: ProjectorConfig,
    runtime: &tokio::runtime::Handle,
    cancel: CancellationToken,
) -> Result<RunningProjector, ProjectorError> {
    let (shared, kafka) = prepare(config)?;
    let view = &shared.view;
    info!(view = %view.key(), revision = %view.revision, shard = shared.shard, shards = view.shards, "projector starting");
    let wanted = shared.config.listen;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(wanted))
        .map_err(|source| ProjectorError::Listen {
            address: wanted,
            source,
        })?;
    let address = listener
        .local_addr()
        .map_err(|source| ProjectorError::Listen {
            address: wanted,
            source,
        })?;
    let router = http::router(shared.clone());
    let server_stop = cancel.clone();
    runtime.spawn(async move {
        let _ = axum::serve(matview_api::listen::no_delay(listener), router)
            .with_graceful_shutdown(server_stop.cancelled_owned())
            .await;
    });
    let (loop_shared, handle) = (shared.clone(), runtime.clone());
    let consumer = std::thread::Builder::new()
        .name("consume".into())
        .spawn(move || consume::run(loop_shared, kafka, cancel, handle))
        .map_err(ProjectorError::Runtime)?;
    Ok(RunningProjector {
        shared,
        address,
        consumer,
    })
}

/// Runs until SIGTERM or SIGINT: then finishes the batch, commits and returns.
pub fn run(config: ProjectorConfig) -> Result<(), ProjectorError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ProjectorError::Runtime)?;
    let cancel = CancellationToken::new();
    let projector = start(config, runtime.handle(), cancel.clone())?;
    let signal_stop = cancel.clone();
    runtime.spawn(async move {
        matview_api::signals::terminated().await;
        info!("signal received: finishing the current batch");
        signal_stop.cancel();
    });
    let result = projector.join();
    cancel.cancel();
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
}
