//! `matview dev`: the whole product in one process, without Kubernetes. The
//! same projector code (every shard of every view) and the same gateway code
//! (routes, merging, streams, read-your-writes) on one address, views read
//! from YAML files, data under one directory so a restart resumes.

mod config;
mod demo;
mod demo_tables;
mod launch;
mod orders;
mod registry;
mod rollouts;
mod totals;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::broker::EmbeddedBroker;
use crate::crd::MaterializedView;
use crate::gateway::auth::{AuthMode, Authorizer};
use crate::gateway::discovery::Directory;
use crate::gateway::{GatewayConfig, GatewayState, serve_router_until};
use crate::view::ValidatedView;

/// The shop example, so that `matview dev` works with nothing but the binary.
const DEFAULT_VIEW: &str = include_str!("../../examples/items-by-price.yaml");
/// The embedded broker's data, beside the views' (`_` is in no namespace name).
const BROKER_DIR: &str = "_broker";
/// The built-in schema registry's schemas, beside them.
const REGISTRY_FILE: &str = "_schema-registry.json";

pub use config::{DevConfig, DevError};
use launch::{Launcher, needs_registry, start_view};
use rollouts::{DevRollouts, DevView, Started};

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
    let mut started = Vec::new();
    let mut routed = Vec::new();
    for view in views {
        let own = cancel.child_token();
        let (projectors, route) = start_view(&config, &servers, &view, runtime.handle(), &own)?;
        routed.push((view.manifest.clone(), route.clone()));
        started.push((view, Started { projectors, route }, own));
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
    let state = gateway_state(config.listen);
    let launcher = Launcher {
        config: config.clone(),
        servers: servers.clone(),
        registry: registry_url.clone(),
        runtime: runtime.handle().clone(),
    };
    let rollouts = DevRollouts::new(
        started,
        state.directory.clone(),
        Box::new(launcher),
        cancel.clone(),
    );
    runtime.spawn(rollouts.clone().run());
    let mut router = dev_router(&config, &servers, &state, first, runtime.handle(), &cancel)?
        .merge(rollouts::router(rollouts.clone()));
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
    for projector in rollouts.take_projectors() {
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

/// The gateway over the dev views (published by the rollouts), with
/// authorization off.
fn gateway_state(listen: SocketAddr) -> std::sync::Arc<GatewayState> {
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
    GatewayState::new(Directory::fixed(Vec::new()), auth, &config)
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
                // The built-in example has no file to follow.
                path: path.is_file().then(|| path.clone()),
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
