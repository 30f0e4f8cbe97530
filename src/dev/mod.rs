//! `matview dev`: the whole product in one process, without Kubernetes. The
//! same projector code (every shard of every view) and the same gateway code
//! (routes, merging, streams, read-your-writes) on one address, views read
//! from YAML files, data under one directory so a restart resumes.

mod demo;
mod demo_tables;
mod orders;
mod registry;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::broker::EmbeddedBroker;
use crate::crd::{MaterializedView, MaterializedViewStatus};
use crate::gateway::auth::{AuthMode, Authorizer};
use crate::gateway::discovery::Directory;
use crate::gateway::routing::{Endpoint, ViewRoute};
use crate::gateway::{GatewayConfig, GatewayState, serve_router_until};
use crate::projector::{ProjectorConfig, ProjectorError, RunningProjector};
use crate::view::{ValidatedView, ViewError};

/// The shop example, so that `matview dev` works with nothing but the binary.
const DEFAULT_VIEW: &str = include_str!("../../examples/items-by-price.yaml");
/// The embedded broker's data, beside the views' (`_` is in no namespace name).
const BROKER_DIR: &str = "_broker";
/// The built-in schema registry's schemas, beside them.
const REGISTRY_FILE: &str = "_schema-registry.json";

#[derive(Debug, Clone)]
pub struct DevConfig {
    /// View manifests (files or directories); empty: the shop example.
    pub views: Vec<PathBuf>,
    /// An existing Kafka; `None`: the embedded broker.
    pub bootstrap_servers: Option<String>,
    /// Where the embedded broker listens (port 0: any free port).
    pub broker_listen: SocketAddr,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Demo orders per second into the first view's topic (0: none).
    pub demo_rate: u64,
    /// A schema registry for Avro and Protobuf views; `None`: the built-in one.
    pub schema_registry: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a MaterializedView manifest")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("{path}: fix the view")]
    Invalid {
        path: PathBuf,
        #[source]
        source: ViewError,
    },
    #[error("no MaterializedView found in {0:?}")]
    NoViews(Vec<PathBuf>),
    #[error(
        "Kafka at {servers} does not answer; start it, point --bootstrap-servers at another, or leave the flag out to use the embedded broker"
    )]
    Broker {
        servers: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("Kafka at {servers} refused to create topic {topic}: {code}")]
    Topic {
        servers: String,
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("{0} is in use; pick another address with --listen")]
    PortInUse(SocketAddr),
    #[error("cannot listen on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Projector(#[from] ProjectorError),
    #[error(transparent)]
    EmbeddedBroker(#[from] crate::broker::BrokerError),
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
}

/// A view as dev mode runs it: where its manifest came from and what it is.
struct DevView {
    manifest: MaterializedView,
    validated: ValidatedView,
}

pub fn run(config: DevConfig) -> Result<(), DevError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(DevError::Runtime)?;
    let mut views = load_views(&config)?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(config.listen))
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AddrInUse => DevError::PortInUse(config.listen),
            _ => DevError::Listen {
                address: config.listen,
                source,
            },
        })?;
    let address = listener.local_addr().unwrap_or(config.listen);
    let (built_in_registry, registry_url) = schema_registry(&config, address, &views)?;
    if let Some(url) = &registry_url {
        use_registry(&mut views, url);
    }
    // The broker outlives the projectors, so their last commits reach it.
    let broker_stop = CancellationToken::new();
    let (broker, servers) = runtime.block_on(kafka(&config, &broker_stop))?;
    runtime.block_on(ensure_topics(&servers, &views))?;
    let cancel = CancellationToken::new();
    let mut projectors = Vec::new();
    let mut routed = Vec::new();
    for view in views {
        let (running, route) = start_view(&config, &servers, &view, runtime.handle(), &cancel)?;
        projectors.extend(running);
        let mut manifest = view.manifest;
        manifest.status = Some(MaterializedViewStatus {
            active_revision: Some(view.validated.revision.clone()),
            ..Default::default()
        });
        routed.push((manifest, route));
    }
    println!("matview dev: http://{address}/  (Ctrl-C stops)");
    match &broker {
        Some(b) => println!(
            "  embedded Kafka broker on {servers} (data in {}; --bootstrap-servers uses another Kafka)",
            b.data_dir.display()
        ),
        None => println!("  Kafka at {servers}"),
    }
    match (&built_in_registry, &registry_url) {
        (Some(_), Some(url)) => println!(
            "  built-in schema registry at {url} (for dev only; --schema-registry uses another)"
        ),
        (None, Some(url)) => println!("  schema registry at {url}"),
        _ => {}
    }
    for (manifest, route) in &routed {
        let (ns, name, shards) = (&route.namespace, &route.name, route.shards.len());
        let source = &manifest.spec.source;
        let (topic, format) = (&source.kafka.topic, source.format);
        println!("  view {ns}/{name} ({shards} shards, topic {topic}, {format:?})");
    }
    let first = routed.first().map(|(m, _)| {
        let source = &m.spec.source;
        demo::DemoSource {
            topic: source.kafka.topic.clone(),
            envelope: source.envelope,
            format: source.format,
            registry: registry_url.clone(),
        }
    });
    let state = gateway_state(routed, config.listen);
    let mut router = dev_router(&config, &servers, &state, first, runtime.handle(), &cancel)?;
    if let Some(registry) = built_in_registry {
        router = router.merge(registry.router());
    }
    let stop_all = cancel.clone();
    let served = runtime.block_on(serve_router_until(listener, router, &state, async move {
        crate::signals::terminated().await;
        info!("stopping: committing the last batches");
        stop_all.cancel();
    }));
    cancel.cancel();
    for projector in projectors {
        if let Err(e) = projector.join() {
            warn!(error = %crate::errors::chain(&e), "a projector stopped with an error");
        }
    }
    if let Some(broker) = broker {
        broker_stop.cancel();
        runtime.block_on(broker.stopped());
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    served.map_err(|source| DevError::Listen {
        address: config.listen,
        source,
    })
}

/// The Kafka to use: the given one, or the embedded broker started under
/// the data directory; with its bootstrap servers.
async fn kafka(
    config: &DevConfig,
    stop: &CancellationToken,
) -> Result<(Option<EmbeddedBroker>, String), DevError> {
    if let Some(servers) = &config.bootstrap_servers {
        return Ok((None, servers.clone()));
    }
    let data = config.data_dir.join(BROKER_DIR);
    let broker = EmbeddedBroker::start(&data, config.broker_listen, stop.clone()).await?;
    let servers = broker.bootstrap_servers();
    Ok((Some(broker), servers))
}

/// The gateway over the dev views, with authorization off.
fn gateway_state(
    routed: Vec<(MaterializedView, ViewRoute)>,
    listen: SocketAddr,
) -> std::sync::Arc<GatewayState> {
    let config = GatewayConfig {
        listen,
        namespace: None,
        auth: AuthMode::None,
        auth_cache: Duration::from_secs(10),
        deadline: Duration::from_secs(5),
        projector_timeout: Duration::from_secs(1),
        max_streams: 1000,
        row_cache_bytes: 64 << 20,
    };
    let auth = Authorizer::new(AuthMode::None, None, config.auth_cache);
    GatewayState::new(Directory::fixed(routed), auth, &config)
}

/// The registry for views that read Avro or Protobuf: the one given, or
/// the built-in one (kept beside the stores); none when every view is JSON.
fn schema_registry(
    config: &DevConfig,
    address: SocketAddr,
    views: &[DevView],
) -> Result<
    (
        Option<std::sync::Arc<registry::DevRegistry>>,
        Option<String>,
    ),
    DevError,
> {
    let binary = views.iter().any(|v| needs_registry(&v.manifest));
    match &config.schema_registry {
        Some(url) => Ok((None, Some(url.clone()))),
        None if binary => {
            let file = config.data_dir.join(REGISTRY_FILE);
            std::fs::create_dir_all(&config.data_dir).map_err(|source| DevError::Write {
                path: config.data_dir.clone(),
                source,
            })?;
            let built_in = registry::DevRegistry::open(&file)
                .map_err(|source| DevError::Read { path: file, source })?;
            let url = format!("http://{address}{}", registry::PREFIX);
            Ok((Some(std::sync::Arc::new(built_in)), Some(url)))
        }
        None => Ok((None, None)),
    }
}

fn needs_registry(view: &MaterializedView) -> bool {
    let source = &view.spec.source;
    source.format != crate::crd::EventFormat::Json
        || matches!(
            source.key_format,
            crate::crd::KeyFormat::Avro | crate::crd::KeyFormat::Protobuf
        )
}

/// Points every view that reads a registry at `url` (the manifests' URLs
/// name the cluster's registry, not this machine's).
fn use_registry(views: &mut [DevView], url: &str) {
    for view in views.iter_mut().filter(|v| needs_registry(&v.manifest)) {
        let registry = crate::crd::SchemaRegistry {
            url: url.to_string(),
            config_from: None,
        };
        view.manifest.spec.source.schema_registry = Some(registry.clone());
        view.validated.spec.source.schema_registry = Some(registry);
    }
}

/// The gateway's routes plus the order form's endpoint, and the demo orders.
fn dev_router(
    config: &DevConfig,
    servers: &str,
    state: &std::sync::Arc<GatewayState>,
    first: Option<demo::DemoSource>,
    runtime: &tokio::runtime::Handle,
    cancel: &CancellationToken,
) -> Result<axum::Router, DevError> {
    let router = crate::gateway::http::router(state.clone());
    let Some(first) = first else {
        return Ok(router);
    };
    let (topic, envelope, format) = (first.topic.clone(), first.envelope, first.format);
    if config.demo_rate > 0 {
        let demo = demo::DemoOrders::new(servers, first, config.demo_rate);
        runtime.spawn(demo.run(cancel.clone()));
    }
    if envelope != crate::crd::Envelope::Append || format != crate::crd::EventFormat::Json {
        // The order form writes JSON shop orders: no use to a table's
        // topic or an Avro or Protobuf one.
        return Ok(router);
    }
    let producer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("linger.ms", "0")
        .create()
        .map_err(|source| DevError::Broker {
            servers: servers.to_string(),
            source,
        })?;
    let orders = orders::Orders { producer, topic };
    Ok(router.merge(orders::router(std::sync::Arc::new(orders))))
}

/// The views of the given files and directories, or the shop example.
fn load_views(config: &DevConfig) -> Result<Vec<DevView>, DevError> {
    let mut documents: Vec<(PathBuf, String)> = Vec::new();
    if config.views.is_empty() {
        documents.push((
            PathBuf::from("(built-in shop example)"),
            DEFAULT_VIEW.to_string(),
        ));
    }
    let files = crate::view::manifest_files(&config.views)
        .map_err(|(path, source)| DevError::Read { path, source })?;
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| DevError::Read {
            path: path.clone(),
            source,
        })?;
        documents.push((path, text));
    }
    let mut views = Vec::new();
    for (path, text) in documents {
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let manifest: MaterializedView =
                serde::Deserialize::deserialize(document).map_err(|source| DevError::Parse {
                    path: path.clone(),
                    source,
                })?;
            let validated = ValidatedView::new(&manifest).map_err(|source| DevError::Invalid {
                path: path.clone(),
                source,
            })?;
            views.push(DevView {
                manifest,
                validated,
            });
        }
    }
    if views.is_empty() {
        return Err(DevError::NoViews(config.views.clone()));
    }
    Ok(views)
}

/// Creates each view's source topic (one partition per shard) and
/// dead-letter topic when missing: dev mode starts from nothing.
async fn ensure_topics(servers: &str, views: &[DevView]) -> Result<(), DevError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("socket.timeout.ms", "10000")
        .create()
        .map_err(|source| DevError::Broker {
            servers: servers.into(),
            source,
        })?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    // Views may share a topic (the examples do): each once, with the most
    // partitions any of its views asks for.
    let mut wanted: std::collections::BTreeMap<&str, i32> = std::collections::BTreeMap::new();
    for view in views {
        let partitions = view.validated.shards.max(1) as i32;
        let source = wanted.entry(view.validated.topic.as_str()).or_insert(1);
        *source = (*source).max(partitions);
        wanted
            .entry(view.validated.dead_letter_topic.as_str())
            .or_insert(1);
    }
    let topics: Vec<NewTopic<'_>> = wanted
        .iter()
        .map(|(topic, partitions)| NewTopic::new(topic, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(topics.iter(), &options)
        .await
        .map_err(|source| DevError::Broker {
            servers: servers.into(),
            source,
        })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(DevError::Topic {
                    servers: servers.into(),
                    topic,
                    code,
                });
            }
        }
    }
    Ok(())
}

/// Starts every shard of a view and returns its route. The manifest is
/// written under the data directory (with the chosen brokers), as the
/// operator's ConfigMap would hold it; each revision has its own stores.
fn start_view(
    config: &DevConfig,
    servers: &str,
    view: &DevView,
    runtime: &tokio::runtime::Handle,
    cancel: &CancellationToken,
) -> Result<(Vec<RunningProjector>, ViewRoute), DevError> {
    let v = &view.validated;
    let home = config
        .data_dir
        .join(&v.namespace)
        .join(&v.name)
        .join(&v.revision);
    std::fs::create_dir_all(&home).map_err(|source| DevError::Write {
        path: home.clone(),
        source,
    })?;
    let view_file = home.join("view.yaml");
    let text = serde_yaml_ng::to_string(&view.manifest).unwrap_or_default();
    write(&view_file, &text)?;
    let mut running = Vec::new();
    let mut shards = Vec::new();
    for shard in 0..v.shards {
        let projector = crate::projector::start(
            shard_config(servers, &view_file, &home, shard),
            runtime,
            cancel.clone(),
        )?;
        shards.push(vec![Endpoint {
            pod: format!("{}-s{shard}", v.name),
            url: format!("http://{}", projector.address),
        }]);
        running.push(projector);
    }
    let route = ViewRoute {
        namespace: v.namespace.clone(),
        name: v.name.clone(),
        revision: v.revision.clone(),
        topic: v.topic.clone(),
        keyed_by_row_key: v.keyed_by_row_key,
        shards,
    };
    Ok((running, route))
}

fn shard_config(servers: &str, view_file: &Path, home: &Path, shard: u32) -> ProjectorConfig {
    ProjectorConfig {
        view_file: view_file.to_path_buf(),
        shard: Some(shard),
        ordinal: None,
        data_dir: home.join(format!("s{shard}")),
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        bootstrap_servers: Some(servers.to_string()),
        kafka_properties: Vec::new(),
        batch_max_events: 20_000,
        batch_max_wait: Duration::from_millis(20),
        ready_max_lag: 0,
        // A laptop runs several stores: a small page cache each.
        store_cache_bytes: 64 << 20,
        fetch_queue_kib: 4096,
        memory_budget_mib: 256,
        damaged_store: crate::projector::DamagedStore::Rebuild,
        min_free_bytes: 16 << 20,
        schema_registry_config_dir: None,
    }
}

fn write(path: &Path, text: &str) -> Result<(), DevError> {
    std::fs::write(path, text).map_err(|source| DevError::Write {
        path: path.to_path_buf(),
        source,
    })
}
