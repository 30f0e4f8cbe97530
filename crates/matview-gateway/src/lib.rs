//! The query gateway: one stateless HTTP service for every view. Discovers
//! views and their projectors from the Kubernetes API, routes each read to
//! the ready pods of the serving revision, merges shard answers, fails over
//! between replicas, and checks who may read what.

pub mod auth;
pub mod auth_cache;
pub mod cached_scans;
pub mod coalesce;
pub mod comparison;
pub mod dead_letters;
pub mod discovery;
pub mod fanout;
pub mod figures;
pub mod http;
pub mod merge;
pub mod metrics;
pub mod params;
pub mod reads;
pub mod revisions;
pub mod routing;
pub mod row_cache;
pub mod scans;
pub mod target;
pub mod upstream;
pub mod watch;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tracing::{info, warn};

use auth::{AuthMode, Authorizer};
use discovery::Directory;
use fanout::Fanout;
use matview_api::ProjectorClient;
use metrics::GatewayMetrics;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// Watch one namespace only (default: all).
    pub namespace: Option<String>,
    pub auth: AuthMode,
    /// How long an authorization decision is reused.
    pub auth_cache: Duration,
    /// Longest a read may take (read-your-writes waits come on top).
    pub deadline: Duration,
    /// How long a call to a projector may go unanswered before the next
    /// replica is asked too (the first call keeps going; the first answer wins).
    pub projector_timeout: Duration,
    /// Live streams served at once.
    pub max_streams: usize,
    /// Bytes of hot rows kept, exact by the shards' change feeds (0: none).
    pub row_cache_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot reach the Kubernetes API")]
    Kube(#[from] kube::Error),
    #[error("cannot start the gateway's runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot listen on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Everything a request handler needs.
pub struct GatewayState {
    pub directory: Arc<Directory>,
    /// For calls outside a read (revision info, feed positions).
    pub projectors: ProjectorClient,
    /// For a read's calls to the shards.
    pub readers: ProjectorClient,
    pub fanout: Fanout,
    pub auth: Authorizer,
    pub metrics: Arc<GatewayMetrics>,
    pub deadline: Duration,
    /// Long-lived watches on projectors: a connect timeout, no total one.
    pub stream_http: reqwest::Client,
    /// Permits for live streams (the limit on concurrent streams).
    pub streams: Arc<tokio::sync::Semaphore>,
    /// Cancelled on SIGTERM: streams end with a retry hint.
    pub shutdown: tokio_util::sync::CancellationToken,
    pub row_cache: row_cache::RowCache,
}

pub fn run(config: GatewayConfig) -> Result<(), GatewayError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(GatewayError::Runtime)?;
    runtime.block_on(serve(config))
}

impl GatewayState {
    pub fn new(
        directory: Arc<Directory>,
        auth: Authorizer,
        config: &GatewayConfig,
    ) -> Arc<GatewayState> {
        let projectors = ProjectorClient::new(config.projector_timeout);
        Arc::new(GatewayState {
            directory,
            // A read's calls are bounded by its deadline (see `Fanout`), so
            // a slow replica's answer is not thrown away at the hedge delay.
            readers: projectors
                .with_timeout(config.deadline + Duration::from_millis(params::MAX_WAIT_MS)),
            projectors,
            fanout: Fanout::new(config.projector_timeout),
            auth,
            metrics: Arc::new(GatewayMetrics::default()),
            deadline: config.deadline,
            stream_http: reqwest::Client::builder()
                .connect_timeout(config.projector_timeout)
                .tcp_nodelay(true)
                .build()
                .unwrap_or_default(),
            streams: Arc::new(tokio::sync::Semaphore::new(config.max_streams)),
            shutdown: tokio_util::sync::CancellationToken::new(),
            row_cache: row_cache::RowCache::new(config.row_cache_bytes),
        })
    }
}

/// Serves on `listener` until `stop` completes; then streams end with a
/// retry hint and requests in flight finish.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    state: Arc<GatewayState>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = http::router(state.clone());
    serve_router_until(listener, router, &state, stop).await
}

/// Like [`serve_until`] with routes of the host's own merged in (dev mode).
pub async fn serve_router_until(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    state: &GatewayState,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    axum::serve(matview_api::listen::no_delay(listener), router)
        .with_graceful_shutdown(async move {
            stop.await;
            shutdown.cancel();
        })
        .await
}

async fn serve(config: GatewayConfig) -> Result<(), GatewayError> {
    let client = Client::try_default().await?;
    if config.auth == AuthMode::None {
        warn!(
            "--auth none: EVERY CALLER MAY READ EVERY VIEW. Use this for local development only."
        );
    }
    let directory = Directory::start(client.clone(), config.namespace.as_deref());
    let auth = Authorizer::new(config.auth, Some(client), config.auth_cache);
    let state = GatewayState::new(directory, auth, &config);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| GatewayError::Listen {
            address: config.listen,
            source,
        })?;
    info!(listen = %config.listen, namespace = ?config.namespace, auth = ?config.auth, "gateway starting");
    let stop = async {
        matview_api::signals::terminated().await;
        info!("signal received: finishing requests, ending streams");
    };
    serve_until(listener, state, stop)
        .await
        .map_err(|source| GatewayError::Listen {
            address: config.listen,
            source,
        })?;
    info!("gateway stopped");
    Ok(())
}
