//! `matview operator`: the controller, its HTTP endpoints, graceful shutdown.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client};
use tracing::{info, warn};

use super::caches::Caches;
use super::controller::{Context, error_policy, reconcile};
use super::desired::{LABEL_VIEW, PodSettings};
use matview_crd::{CRD_MISSING, MaterializedView};

#[derive(Debug, Clone)]
pub struct OperatorConfig {
    pub settings: PodSettings,
    pub kafka_override: Option<String>,
    /// Base URL of the query gateway, for each view's `status.url`.
    pub gateway_url: Option<String>,
    pub listen: SocketAddr,
    pub concurrency: u16,
    /// Watch one namespace only (default: all).
    pub namespace: Option<String>,
    /// `None`: no leader election (a single replica).
    pub leader: Option<super::leader::LeaderConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("cannot reach the Kubernetes API")]
    Kube(#[from] kube::Error),
    #[error("cannot start the operator's runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot listen on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

pub fn run(config: OperatorConfig) -> Result<(), OperatorError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(OperatorError::Runtime)?;
    runtime.block_on(serve(config))
}

async fn shutdown_signal() {
    matview_api::signals::terminated().await;
    info!("signal received: shutting down");
}

/// The APIs the operator watches (all namespaces, or one).
struct Apis {
    views: Api<MaterializedView>,
    sets: Api<StatefulSet>,
    pods: Api<Pod>,
}

impl Apis {
    fn new(client: &Client, namespace: Option<&str>) -> Apis {
        match namespace {
            Some(ns) => Apis {
                views: Api::namespaced(client.clone(), ns),
                sets: Api::namespaced(client.clone(), ns),
                pods: Api::namespaced(client.clone(), ns),
            },
            None => Apis {
                views: Api::all(client.clone()),
                sets: Api::all(client.clone()),
                pods: Api::all(client.clone()),
            },
        }
    }
}

/// How a term of leadership ended.
enum TermEnd {
    Shutdown,
    LeadershipLost,
}

async fn serve(config: OperatorConfig) -> Result<(), OperatorError> {
    let metrics = Arc::new(super::metrics::OperatorMetrics::default());
    let client = counted_client(metrics.api_requests.clone()).await?;
    let apis = Apis::new(&client, config.namespace.as_deref());
    let waiting = Arc::new(Mutex::new(Some(CRD_CHECKING.to_string())));
    serve_health(&config, metrics.clone(), waiting.clone()).await?;
    tokio::select! {
        found = wait_for_crd(&apis.views, &waiting) => found?,
        _ = shutdown_signal() => return Ok(()),
    }
    if let Ok(mut waiting) = waiting.lock() {
        *waiting = None;
    }
    info!(listen = %config.listen, namespace = ?config.namespace, "operator starting");
    // A replica that loses the lease (e.g. the API server was away longer
    // than the lease) stops reconciling and waits to lead again: no exit,
    // no restart loop.
    while let TermEnd::LeadershipLost = lead(&client, &config, &apis, metrics.clone()).await {
        warn!("leadership lost: reconciling stopped until this replica leads again");
    }
    info!("operator stopped");
    Ok(())
}

/// One term: take the lease (when elected), watch and reconcile until
/// SIGTERM or until the lease is lost, then give the lease back.
async fn lead(
    client: &Client,
    config: &OperatorConfig,
    apis: &Apis,
    metrics: Arc<super::metrics::OperatorMetrics>,
) -> TermEnd {
    let lost = Arc::new(tokio::sync::Notify::new());
    if let Some(leader) = &config.leader {
        tokio::select! {
            _ = super::leader::acquire(client, leader) => {}
            _ = shutdown_signal() => return TermEnd::Shutdown,
        }
        let (client, leader, lost) = (client.clone(), leader.clone(), lost.clone());
        tokio::spawn(async move {
            super::leader::hold(&client, &leader).await;
            lost.notify_one();
        });
    }
    // Fresh watches and memory each term: what changed meanwhile is seen.
    let (caches, sets, pods) = Caches::watch(apis.sets.clone(), apis.pods.clone(), MANAGED);
    let (view_store, view_changes) = Caches::view_changes(apis.views.clone());
    let projectors = matview_api::ProjectorClient::new(std::time::Duration::from_secs(3));
    let (troubles, trouble_changes) = super::trouble_watch::TroubleWatch::new(&projectors);
    let ctx = context(client, config, metrics, caches, projectors, troubles);
    let ended = Arc::new(Mutex::new(TermEnd::Shutdown));
    let stop = {
        let ended = ended.clone();
        async move {
            tokio::select! {
                _ = shutdown_signal() => {}
                _ = lost.notified() => {
                    if let Ok(mut ended) = ended.lock() {
                        *ended = TermEnd::LeadershipLost;
                    }
                }
            }
        }
    };
    let controller = Controller::for_stream(view_changes, view_store)
        .owns_stream(sets)
        // Pods are owned by StatefulSets, not views: their view label maps a
        // pod's change (scheduled, crashing, ready) to its view's reconcile.
        .watches_stream(pods, view_of_pod)
        // A projector's trouble starting or ending: status says so at once.
        .reconcile_on(trouble_changes)
        // No debounce: trailing-edge debouncing keeps postponing a view whose
        // pods keep changing, and status must follow them.
        .with_config(kube::runtime::controller::Config::default().concurrency(config.concurrency))
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "controller");
            }
        });
    // A graceful stop waits for reconciles in flight; one that does not
    // end (a shutdown while the controller was still starting was seen to
    // hang) must not keep the lease from the next leader.
    let overdue = async {
        shutdown_signal().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        _ = controller => {}
        _ = overdue => warn!(grace = ?SHUTDOWN_GRACE, "the controller did not stop in time; leaving it"),
    }
    if let Some(leader) = &config.leader {
        // Bounded too: an API server that does not answer lets it expire.
        let release = super::leader::release(client, leader);
        if tokio::time::timeout(SHUTDOWN_GRACE, release).await.is_err() {
            warn!("the lease was not released in time; it expires by itself");
        }
    }
    ended
        .lock()
        .map(|mut e| std::mem::replace(&mut *e, TermEnd::Shutdown))
        .unwrap_or(TermEnd::Shutdown)
}

/// How long a graceful stop may take before the operator leaves anyway.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

const CRD_CHECKING: &str = "checking that the MaterializedView CRD is installed";
/// How often a missing CRD is looked for again, and how often that is logged.
const CRD_RETRY: std::time::Duration = std::time::Duration::from_secs(2);
const CRD_LOG_EVERY: u32 = 15;

/// Returns once views can be listed. A missing CRD (installed after the
/// operator, or by the same `kubectl apply`) is waited for; anything else
/// (RBAC, an unreachable API server) fails at once with its cause.
async fn wait_for_crd(
    views: &Api<MaterializedView>,
    waiting: &Mutex<Option<String>>,
) -> Result<(), OperatorError> {
    let mut tries = 0u32;
    loop {
        match views.list(&kube::api::ListParams::default().limit(1)).await {
            Ok(_) => {
                if tries > 0 {
                    info!("the MaterializedView CRD is installed: starting");
                }
                return Ok(());
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {
                if let Ok(mut waiting) = waiting.lock() {
                    *waiting = Some(CRD_MISSING.to_string());
                }
                if tries.is_multiple_of(CRD_LOG_EVERY) {
                    warn!("{CRD_MISSING}; waiting for it");
                }
                tries += 1;
                tokio::time::sleep(CRD_RETRY).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Label selector of every object the operator manages.
const MANAGED: &str = "app.kubernetes.io/managed-by=matview-operator";

fn view_of_pod(pod: Pod) -> Option<ObjectRef<MaterializedView>> {
    let view = pod.metadata.labels.as_ref()?.get(LABEL_VIEW)?;
    let ns = pod.metadata.namespace.as_deref()?;
    Some(ObjectRef::new(view).within(ns))
}

/// The in-cluster or kubeconfig client, each request counted by verb.
async fn counted_client(requests: super::metrics::ApiRequests) -> Result<Client, OperatorError> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| OperatorError::Kube(kube::Error::InferConfig(e)))?;
    let counting =
        tower::util::MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
            requests.count(
                request.method(),
                request.uri().path(),
                request.uri().query(),
            );
            request
        });
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&counting)
        .build())
}

fn context(
    client: &Client,
    config: &OperatorConfig,
    metrics: Arc<super::metrics::OperatorMetrics>,
    caches: Caches,
    projectors: matview_api::ProjectorClient,
    troubles: super::trouble_watch::TroubleWatch,
) -> Arc<Context> {
    let reporter = Reporter {
        controller: "matview-operator".into(),
        instance: std::env::var("MATVIEW_POD_NAME").ok(),
    };
    Arc::new(Context {
        client: client.clone(),
        settings: config.settings.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        kafka_override: config.kafka_override.clone(),
        gateway_url: config.gateway_url.clone(),
        warned: Mutex::new(Default::default()),
        failures: Mutex::new(Default::default()),
        metrics,
        projectors,
        troubles,
        written: Mutex::new(Default::default()),
        kafka: Default::default(),
        memo: Default::default(),
        comparisons: Default::default(),
        caches,
    })
}

/// `/healthz`, `/readyz` and `/metrics`, until SIGTERM.
/// `/readyz` fails with `waiting` while it holds a reason.
async fn serve_health(
    config: &OperatorConfig,
    metrics: Arc<super::metrics::OperatorMetrics>,
    waiting: Arc<Mutex<Option<String>>>,
) -> Result<(), OperatorError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| OperatorError::Listen {
            address: config.listen,
            source,
        })?;
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let why = waiting.lock().ok().and_then(|w| w.clone());
                async move {
                    match why {
                        None => (StatusCode::OK, "ok".to_string()),
                        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { metrics.render() }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(matview_api::listen::no_delay(listener), router)
            .with_graceful_shutdown(shutdown_signal())
            .await;
    });
    Ok(())
}
