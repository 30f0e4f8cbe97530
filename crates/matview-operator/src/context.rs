//! What every step of reconcile shares: the context (client, settings,
//! recorder, metrics), the error type with its category, Events, and how
//! to reach the view's Kafka.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use kube::api::Api;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer;
use kube::{Client, Resource, ResourceExt};
use tracing::warn;

use super::desired::PodSettings;
use super::kafka::{KafkaConnection, KafkaError};
use matview_api::ProjectorClient;
use matview_crd::{MaterializedView, MaterializedViewStatus};

pub struct Context {
    pub client: Client,
    pub settings: PodSettings,
    pub recorder: Recorder,
    /// Replaces every view's bootstrap servers (for tests and single-cluster installs).
    pub kafka_override: Option<String>,
    /// Base URL of the query gateway, for each view's `status.url`.
    pub gateway_url: Option<String>,
    /// The pod problem last announced as a Warning, per view UID: one Event
    /// per new problem, not one per reconcile.
    pub warned: Mutex<HashMap<String, String>>,
    /// Consecutive failures per view, for backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    /// Shared by every term of leadership and the health server.
    pub metrics: std::sync::Arc<super::metrics::OperatorMetrics>,
    pub projectors: ProjectorClient,
    /// What this process last applied and cleaned up, per view UID.
    pub memo: super::pacing::ReconcileMemo,
    /// Watch caches of the operator's StatefulSets and projector pods.
    pub caches: super::caches::Caches,
    /// Kafka clients kept across reconciles.
    pub kafka: super::kafka::KafkaClients,
    /// The status this process last wrote, per view UID. The watch cache
    /// may lag behind it (a reconcile triggered by our own write, or by a
    /// pod, can come before the write's watch event): a stale read must not
    /// write the same status again, announce the same phase change twice or
    /// switch a view back to a revision it left. Only the leader writes status.
    pub written: Mutex<HashMap<String, MaterializedViewStatus>>,
    /// Comparisons of pending revisions with serving ones, per view UID.
    pub comparisons: std::sync::Arc<super::comparisons::Comparisons>,
    /// Long polls of serving projectors' troubles, which trigger reconciles.
    pub troubles: super::trouble_watch::TroubleWatch,
}

impl Context {
    /// The view's last status: what this process wrote, else the cached one.
    pub fn last_status(&self, view: &MaterializedView) -> Option<MaterializedViewStatus> {
        let uid = view.metadata.uid.as_ref();
        let written = uid.and_then(|uid| self.written.lock().ok()?.get(uid).cloned());
        written.or_else(|| view.status.clone())
    }

    /// Remembers the status written (or confirmed unchanged); `None` forgets.
    pub fn wrote_status(&self, view: &MaterializedView, status: Option<&MaterializedViewStatus>) {
        let (Some(uid), Ok(mut written)) = (view.metadata.uid.as_ref(), self.written.lock()) else {
            return;
        };
        match status {
            Some(s) => written.insert(uid.clone(), s.clone()),
            None => written.remove(uid),
        };
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("kubernetes API request failed")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("finalizer: {0}")]
    Finalizer(&'static str),
}

impl ReconcileError {
    /// Category for metrics labels and Event reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Kube(_) => "KubernetesError",
            ReconcileError::Kafka(_) => "KafkaError",
            ReconcileError::Finalizer(_) => "FinalizerError",
        }
    }
}

/// The finalizer wraps our errors; unwrap them so their category survives.
impl From<finalizer::Error<ReconcileError>> for ReconcileError {
    fn from(error: finalizer::Error<ReconcileError>) -> Self {
        match error {
            finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
            finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => {
                ReconcileError::Kube(e)
            }
            finalizer::Error::UnnamedObject => ReconcileError::Finalizer("the object has no name"),
            finalizer::Error::InvalidFinalizer => {
                ReconcileError::Finalizer("invalid finalizer name")
            }
        }
    }
}

pub fn view_key(view: &MaterializedView) -> String {
    format!(
        "{}/{}",
        view.namespace().unwrap_or_default(),
        view.name_any()
    )
}

pub(super) fn event(type_: EventType, reason: &str, note: String) -> Event {
    Event {
        type_,
        reason: reason.into(),
        // The API server refuses notes over 1 kB.
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    }
}

/// Publishes an Event about the view in the background: a reconcile does
/// not wait for it, and a failure to publish is only logged.
pub fn publish(
    ctx: &Context,
    view: &MaterializedView,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let reference = view.object_ref(&());
    let recorder = ctx.recorder.clone();
    let event = event(type_, reason, note);
    tokio::spawn(async move {
        if let Err(e) = recorder.publish(&event, &reference).await {
            warn!(error = %e, "cannot publish event");
        }
    });
}

/// How the operator reaches the view's Kafka: bootstrap servers (the
/// operator's override, the spec, or the `bootstrap.servers` key of
/// `configFrom`) and the connection properties of the Secret or ConfigMap.
pub async fn kafka_connection(
    view: &MaterializedView,
    ctx: &Context,
) -> Result<KafkaConnection, ReconcileError> {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    let ns = view.namespace().unwrap_or_default();
    let from = view.spec.source.kafka.config_from.as_ref();
    let properties: BTreeMap<String, String> =
        if let Some(name) = from.and_then(|f| f.secret_name.as_ref()) {
            let secret = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
                .get(name)
                .await
                .map_err(|e| missing_or(e, "Secret", name))?;
            let data = secret.data.unwrap_or_default().into_iter();
            data.map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .chain(secret.string_data.unwrap_or_default())
                .collect()
        } else if let Some(name) = from.and_then(|f| f.config_map_name.as_ref()) {
            let map = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
                .get(name)
                .await
                .map_err(|e| missing_or(e, "ConfigMap", name))?;
            map.data.unwrap_or_default().into_iter().collect()
        } else {
            BTreeMap::new()
        };
    let servers = ctx
        .kafka_override
        .clone()
        .or_else(|| view.spec.source.kafka.bootstrap_servers.clone())
        .or_else(|| {
            properties
                .get("bootstrap.servers")
                .map(|s| s.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .ok_or(KafkaError::NoBootstrapServers)?;
    Ok(KafkaConnection::new(servers, &properties))
}

/// A 404 for the object `configFrom` names is a fix for the user to make.
fn missing_or(error: kube::Error, kind: &'static str, name: &str) -> ReconcileError {
    match error {
        kube::Error::Api(ref status) if status.code == 404 => {
            ReconcileError::Kafka(KafkaError::MissingClientConfig {
                kind,
                name: name.to_string(),
            })
        }
        other => ReconcileError::Kube(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_finalizer_keeps_the_category_of_the_inner_error() {
        let inner = ReconcileError::Kafka(KafkaError::MissingTopic("orders".into()));
        let unwrapped = ReconcileError::from(finalizer::Error::ApplyFailed(inner));
        assert_eq!(unwrapped.reason(), "KafkaError");
        let cleanup = ReconcileError::from(finalizer::Error::CleanupFailed(ReconcileError::Kafka(
            KafkaError::NoBootstrapServers,
        )));
        assert_eq!(cleanup.reason(), "KafkaError");
    }
}
