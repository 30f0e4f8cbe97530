//! `matview operator`: the controller, its HTTP endpoints, graceful shutdown.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client};
use tracing::{info, warn};

use super::controller::{Context, error_policy, reconcile};
use super::desired::PodSettings;
use crate::crd::MaterializedView;

#[derive(Debug, Clone)]
pub struct OperatorConfig {
    pub settings: PodSettings,
    pub kafka_override: Option<String>,
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
    crate::signals::terminated().await;
    info!("signal received: shutting down");
}

async fn serve(config: OperatorConfig) -> Result<(), OperatorError> {
    let client = Client::try_default().await?;
    let ctx = context(&client, &config);
    let (views, sets): (Api<MaterializedView>, Api<StatefulSet>) = match &config.namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    // Fail fast with a clear message when the CRD is missing or RBAC forbids.
    views
        .list(&kube::api::ListParams::default().limit(1))
        .await?;
    serve_health(&config, ctx.clone()).await?;
    info!(listen = %config.listen, namespace = ?config.namespace, "operator starting");
    // Only the leader reconciles; losing the lease stops this replica.
    let lost = Arc::new(tokio::sync::Notify::new());
    if let Some(leader) = &config.leader {
        tokio::select! {
            _ = super::leader::acquire(&client, leader) => {}
            _ = shutdown_signal() => return Ok(()),
        }
        let (client, leader, lost) = (client.clone(), leader.clone(), lost.clone());
        tokio::spawn(async move {
            super::leader::hold(&client, &leader).await;
            lost.notify_one();
        });
    }
    let stop = async move {
        tokio::select! {
            _ = shutdown_signal() => {}
            _ = lost.notified() => warn!("leadership lost: stopping"),
        }
    };
    Controller::new(views, watcher::Config::default())
        .owns(
            sets,
            watcher::Config::default().labels("app.kubernetes.io/managed-by=matview-operator"),
        )
        .with_config(kube::runtime::controller::Config::default().concurrency(config.concurrency))
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "controller");
            }
        })
        .await;
    if let Some(leader) = &config.leader {
        super::leader::release(&client, leader).await;
    }
    info!("operator stopped");
    Ok(())
}

fn context(client: &Client, config: &OperatorConfig) -> Arc<Context> {
    let reporter = Reporter {
        controller: "matview-operator".into(),
        instance: std::env::var("MATVIEW_POD_NAME").ok(),
    };
    Arc::new(Context {
        client: client.clone(),
        settings: config.settings.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        kafka_override: config.kafka_override.clone(),
        failures: Mutex::new(Default::default()),
        metrics: Default::default(),
        projectors: crate::api::ProjectorClient::new(std::time::Duration::from_secs(3)),
        written_active: Mutex::new(Default::default()),
    })
}

/// `/healthz`, `/readyz` and `/metrics`, until SIGTERM.
async fn serve_health(config: &OperatorConfig, ctx: Arc<Context>) -> Result<(), OperatorError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| OperatorError::Listen {
            address: config.listen,
            source,
        })?;
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let ctx = ctx.clone();
                async move { ctx.metrics.render() }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown_signal())
            .await;
    });
    Ok(())
}
