//! The controller's frame around reconcile: the finalizer (apply and cleanup
//! branches), errors with a category, per-view exponential backoff, Events.
//! The apply branch is the pipeline in [`super::reconcile`].

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{self, Event as Finalize};
use kube::{Client, Resource, ResourceExt};
use tracing::warn;

use super::desired::PodSettings;
use super::kafka::{self, KafkaError};
use crate::api::ProjectorClient;
use crate::crd::{DeletionPolicy, MaterializedView};
use crate::engine::revision;
use crate::view::{consumer_group, dead_letter_topic};

pub use super::k8s::FIELD_MANAGER;
pub const FINALIZER: &str = "matview.dev/cleanup";

pub struct Context {
    pub client: Client,
    pub settings: PodSettings,
    pub recorder: Recorder,
    /// Replaces every view's bootstrap servers (for tests and single-cluster installs).
    pub kafka_override: Option<String>,
    /// Consecutive failures per view, for backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    pub metrics: super::metrics::OperatorMetrics,
    pub projectors: ProjectorClient,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("kubernetes API request failed")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(
        "no Kafka bootstrap servers: set spec.source.kafka.bootstrapServers or a bootstrap.servers key in configFrom"
    )]
    NoBootstrapServers,
    #[error("finalizer: {0}")]
    Finalizer(&'static str),
}

impl ReconcileError {
    /// Category for metrics labels and Event reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Kube(_) => "KubernetesError",
            ReconcileError::Kafka(_) => "KafkaError",
            ReconcileError::NoBootstrapServers => "ConfigError",
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

pub async fn reconcile(
    view: Arc<MaterializedView>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let _timer = ctx.metrics.reconcile_timer();
    let ns = view.namespace().unwrap_or_default();
    let api: Api<MaterializedView> = Api::namespaced(ctx.client.clone(), &ns);
    let action = finalizer::finalizer(&api, FINALIZER, view.clone(), |event| async {
        match event {
            Finalize::Apply(v) => super::reconcile::apply(v, ctx.clone()).await,
            Finalize::Cleanup(v) => cleanup(v, ctx.clone()).await,
        }
    })
    .await?;
    if let Ok(mut failures) = ctx.failures.lock() {
        failures.remove(&view_key(&view));
    }
    Ok(action)
}

/// Exponential backoff with jitter per view; nothing hot-loops.
pub fn error_policy(
    view: Arc<MaterializedView>,
    error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.error(error.reason());
    let attempts = ctx
        .failures
        .lock()
        .map(|mut f| {
            let n = f.entry(view_key(&view)).or_insert(0);
            *n += 1;
            *n
        })
        .unwrap_or(1);
    let delay = backoff(attempts);
    let message = crate::errors::chain(error);
    warn!(view = %view_key(&view), error = %message, retry_in = ?delay, "reconcile failed");
    let recorder = ctx.recorder.clone();
    let reference = view.object_ref(&());
    let reason = error.reason();
    tokio::spawn(async move {
        let _ = recorder
            .publish(&event(EventType::Warning, reason, message), &reference)
            .await;
    });
    Action::requeue(delay)
}

/// 4 s, 8 s, … up to 5 min, plus up to 1 s of jitter so views do not retry in step.
fn backoff(attempts: u32) -> Duration {
    let base = Duration::from_secs(2)
        .saturating_mul(1 << attempts.min(7))
        .min(Duration::from_secs(300));
    let jitter = u64::from(std::process::id().wrapping_mul(attempts)) % 1000;
    base + Duration::from_millis(jitter)
}

fn event(type_: EventType, reason: &str, note: String) -> Event {
    Event {
        type_,
        reason: reason.into(),
        // The API server refuses notes over 1 kB.
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    }
}

/// Publishes an Event about the view; a failure to publish is only logged.
pub async fn publish(
    ctx: &Context,
    view: &MaterializedView,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let reference = view.object_ref(&());
    if let Err(e) = ctx
        .recorder
        .publish(&event(type_, reason, note), &reference)
        .await
    {
        warn!(error = %e, "cannot publish event");
    }
}

/// The view's bootstrap servers: the operator's override, the spec, or the
/// `bootstrap.servers` key of the Secret or ConfigMap it names.
pub async fn bootstrap_servers(
    view: &MaterializedView,
    ctx: &Context,
) -> Result<String, ReconcileError> {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    let given = ctx.kafka_override.clone();
    if let Some(servers) = given.or_else(|| view.spec.source.kafka.bootstrap_servers.clone()) {
        return Ok(servers);
    }
    let ns = view.namespace().unwrap_or_default();
    let from = view.spec.source.kafka.config_from.as_ref();
    let found = if let Some(secret) = from.and_then(|f| f.secret_name.as_ref()) {
        let s = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
            .get(secret)
            .await?;
        s.data.and_then(|d| {
            d.get("bootstrap.servers")
                .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        })
    } else if let Some(map) = from.and_then(|f| f.config_map_name.as_ref()) {
        let c = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
            .get(map)
            .await?;
        c.data.and_then(|d| d.get("bootstrap.servers").cloned())
    } else {
        None
    };
    found.ok_or(ReconcileError::NoBootstrapServers)
}

/// On delete: remove what the view owns in Kafka, per its deletion policy.
/// Kubernetes objects go by owner references (garbage collection).
async fn cleanup(view: Arc<MaterializedView>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    ctx.metrics.forget(&view_key(&view));
    if view.spec.deletion_policy != DeletionPolicy::Delete {
        return Ok(Action::await_change());
    }
    let servers = bootstrap_servers(&view, &ctx).await?;
    let ns = view.namespace().unwrap_or_default();
    let name = view.name_any();
    let dlq = dead_letter_topic(&view);
    let revisions: BTreeSet<String> = view
        .status
        .iter()
        .flat_map(|s| [s.active_revision.clone(), s.target_revision.clone()])
        .flatten()
        .chain([revision(&view.spec)])
        .collect();
    let groups: Vec<String> = revisions
        .iter()
        .map(|r| consumer_group(&ns, &name, r))
        .collect();
    let group_refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    kafka::delete(&servers, &[&dlq], &group_refs).await?;
    publish(
        &ctx,
        &view,
        EventType::Normal,
        "KafkaResourcesDeleted",
        format!(
            "deleted topic {dlq} and consumer groups {}",
            groups.join(", ")
        ),
    )
    .await;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_finalizer_keeps_the_category_of_the_inner_error() {
        let inner = ReconcileError::Kafka(KafkaError::MissingTopic("orders".into()));
        let unwrapped = ReconcileError::from(finalizer::Error::ApplyFailed(inner));
        assert_eq!(unwrapped.reason(), "KafkaError");
        let cleanup = ReconcileError::from(finalizer::Error::CleanupFailed(
            ReconcileError::NoBootstrapServers,
        ));
        assert_eq!(cleanup.reason(), "ConfigError");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= Duration::from_secs(4));
        assert!(backoff(2) >= Duration::from_secs(8));
        assert!(backoff(30) <= Duration::from_secs(301));
    }
}
