//! The controller's frame around reconcile: the finalizer (apply and cleanup
//! branches), errors with a category, per-view exponential backoff, Events.
//! The apply branch is the pipeline in [`super::reconcile`].

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, Event as Finalize};
use tracing::warn;

pub use super::context::{Context, ReconcileError, kafka_connection, publish, view_key};
use super::kafka;
use matview_api::view::{consumer_group, dead_letter_topic};
use matview_crd::{DeletionPolicy, MaterializedView};
use matview_engine::revision;

pub use super::k8s::FIELD_MANAGER;
pub const FINALIZER: &str = "matview.dev/cleanup";

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
    let uid = view.metadata.uid.clone().unwrap_or_else(|| view_key(&view));
    let delay = super::pacing::error_backoff(attempts, &uid);
    let message = matview_api::errors::chain(error);
    warn!(view = %view_key(&view), error = %message, retry_in = ?delay, "reconcile failed");
    publish(&ctx, &view, EventType::Warning, error.reason(), message);
    Action::requeue(delay)
}

/// On delete: remove what the view owns in Kafka, per its deletion policy.
/// Kubernetes objects go by owner references (garbage collection).
async fn cleanup(view: Arc<MaterializedView>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    ctx.metrics.forget(&view_key(&view));
    ctx.wrote_status(&view, None);
    ctx.troubles.forget(&view);
    if let Some(uid) = view.metadata.uid.as_ref() {
        ctx.memo.forget(uid);
    }
    if let (Some(uid), Ok(mut warned)) = (view.metadata.uid.as_ref(), ctx.warned.lock()) {
        warned.remove(uid);
    }
    if view.spec.deletion_policy != DeletionPolicy::Delete {
        return Ok(Action::await_change());
    }
    let kafka = match kafka_connection(&view, &ctx).await {
        Ok(kafka) => kafka,
        // The Secret went first (a namespace being deleted): nothing can
        // reach the cluster any more, and holding the view would hold the
        // namespace. Say what was left behind.
        Err(ReconcileError::Kafka(why)) if why.needs_a_fix() => {
            let note = format!(
                "cannot delete topic {} or the view's consumer groups: {why}",
                dead_letter_topic(&view)
            );
            publish(&ctx, &view, EventType::Warning, "KafkaResourcesLeft", note);
            return Ok(Action::await_change());
        }
        Err(e) => return Err(e),
    };
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
    kafka::delete(&kafka, &[&dlq], &group_refs).await?;
    ctx.kafka.forget_topic(&kafka, &dlq);
    publish(
        &ctx,
        &view,
        EventType::Normal,
        "KafkaResourcesDeleted",
        format!(
            "deleted topic {dlq} and consumer groups {}",
            groups.join(", ")
        ),
    );
    Ok(Action::await_change())
}
