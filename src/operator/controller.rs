//! Reconcile: validate → check the source → build desired objects → apply
//! them (server-side, one field manager) → switch revisions when the new one
//! is ready → delete orphans → publish status and Events.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::finalizer::{Event as Finalize, finalizer};
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

use super::desired::PodSettings;
use super::kafka::{self, KafkaError};
use super::objects::{apply_object, delete_revisions_except, patch_status, readiness};
use super::status::{self, Observed};
use crate::crd::{DeletionPolicy, MaterializedView, Phase};
use crate::engine::{compile, revision};

pub const FIELD_MANAGER: &str = "matview-operator";
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
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("{0}")]
    Config(String),
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl ReconcileError {
    /// Category for metrics labels and Event reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Kube(_) => "KubernetesError",
            ReconcileError::Kafka(_) => "KafkaError",
            ReconcileError::Config(_) => "ConfigError",
            ReconcileError::Finalizer(_) => "FinalizerError",
        }
    }
}

fn key(view: &MaterializedView) -> String {
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
    let outcome = finalizer(&api, FINALIZER, view.clone(), |event| async {
        match event {
            Finalize::Apply(v) => apply(v, ctx.clone()).await,
            Finalize::Cleanup(v) => cleanup(v, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| ReconcileError::Finalizer(e.to_string()));
    if outcome.is_ok()
        && let Ok(mut failures) = ctx.failures.lock()
    {
        failures.remove(&key(&view));
    }
    outcome
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
            let n = f.entry(key(&view)).or_insert(0);
            *n += 1;
            *n
        })
        .unwrap_or(1);
    let base = Duration::from_secs(2)
        .saturating_mul(1 << attempts.min(7))
        .min(Duration::from_secs(300));
    let jitter = Duration::from_millis(u64::from(std::process::id().wrapping_mul(attempts)) % 1000);
    warn!(view = %key(&view), error = %error, retry_in = ?(base + jitter), "reconcile failed");
    let recorder = ctx.recorder.clone();
    let reference = view.object_ref(&());
    let note = error.to_string();
    let reason = error.reason();
    tokio::spawn(async move {
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(truncate(&note)),
            action: "Reconcile".into(),
            secondary: None,
        };
        let _ = recorder.publish(&event, &reference).await;
    });
    Action::requeue(base + jitter)
}

fn truncate(s: &str) -> String {
    s.chars().take(1000).collect()
}

async fn bootstrap_servers(
    view: &MaterializedView,
    ctx: &Context,
) -> Result<String, ReconcileError> {
    if let Some(servers) = ctx
        .kafka_override
        .clone()
        .or_else(|| view.spec.source.kafka.bootstrap_servers.clone())
    {
        return Ok(servers);
    }
    let ns = view.namespace().unwrap_or_default();
    let from = view.spec.source.kafka.config_from.as_ref();
    let missing = || {
        ReconcileError::Config("no bootstrap servers: set spec.source.kafka.bootstrapServers or a bootstrap.servers key in configFrom".into())
    };
    if let Some(secret) = from.and_then(|f| f.secret_name.as_ref()) {
        let s = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
            .get(secret)
            .await?;
        let value = s.data.and_then(|d| {
            d.get("bootstrap.servers")
                .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        });
        return value.ok_or_else(missing);
    }
    if let Some(map) = from.and_then(|f| f.config_map_name.as_ref()) {
        let c = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
            .get(map)
            .await?;
        return c
            .data
            .and_then(|d| d.get("bootstrap.servers").cloned())
            .ok_or_else(missing);
    }
    Err(missing())
}

fn dead_letter_topic(view: &MaterializedView) -> String {
    view.spec
        .dead_letter
        .as_ref()
        .and_then(|d| d.topic.clone())
        .unwrap_or_else(|| format!("{}.{}.dlq", view.spec.source.kafka.topic, view.name_any()))
}

fn consumer_group(view: &MaterializedView, revision: &str) -> String {
    format!(
        "matview.{}.{}.{revision}",
        view.namespace().unwrap_or_default(),
        view.name_any()
    )
}

async fn publish(
    ctx: &Context,
    view: &MaterializedView,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(truncate(&note)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &view.object_ref(&())).await {
        warn!(error = %e, "cannot publish event");
    }
}

async fn apply(view: Arc<MaterializedView>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let ns = view.namespace().unwrap_or_default();
    let name = view.name_any();
    let api: Api<MaterializedView> = Api::namespaced(ctx.client.clone(), &ns);
    let previous = view.status.clone();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let mut observed = Observed {
        generation: view.metadata.generation,
        path: format!("/v1/namespaces/{ns}/views/{name}"),
        active_revision: previous.as_ref().and_then(|s| s.active_revision.clone()),
        ..Default::default()
    };
    let shards = u32::try_from(view.spec.shards).unwrap_or(1).max(1);
    let finish = |ctx: &Context, new: &crate::crd::MaterializedViewStatus| {
        ctx.metrics.phase(&key(&view), new.phase);
    };

    // 1. Validate: an invalid spec changes no workload.
    if let Err(e) = compile(&view.spec) {
        if let Some(active) = &observed.active_revision {
            observed.active = readiness(&ctx.client, &ns, &name, active, shards).await?;
        }
        observed.spec = Err(e.to_string());
        let new = status::compute(previous.as_ref(), &observed, now);
        if previous.as_ref().and_then(|p| p.phase) != Some(Phase::Failed)
            || previous.as_ref().and_then(|p| p.observed_generation) != view.metadata.generation
        {
            publish(
                &ctx,
                &view,
                EventType::Warning,
                "InvalidSpec",
                e.to_string(),
            )
            .await;
        }
        patch_status(&api, &name, &new).await?;
        finish(&ctx, &new);
        return Ok(Action::await_change());
    }

    // 2. The source topic.
    let servers = bootstrap_servers(&view, &ctx).await?;
    let topic = &view.spec.source.kafka.topic;
    let partitions = match kafka::partitions(&servers, topic).await {
        Ok(n) => n,
        Err(e @ KafkaError::MissingTopic(_)) => {
            observed.source = Err(e.to_string());
            if let Some(active) = &observed.active_revision {
                observed.active = readiness(&ctx.client, &ns, &name, active, shards).await?;
            }
            let new = status::compute(previous.as_ref(), &observed, now);
            if previous.as_ref().and_then(|p| p.phase) != new.phase {
                publish(
                    &ctx,
                    &view,
                    EventType::Warning,
                    "SourceUnavailable",
                    e.to_string(),
                )
                .await;
            }
            patch_status(&api, &name, &new).await?;
            finish(&ctx, &new);
            return Ok(Action::requeue(Duration::from_secs(5)));
        }
        Err(e) => return Err(e.into()),
    };
    observed.source = Ok(partitions);
    let dlq = dead_letter_topic(&view);
    if kafka::ensure_topic(&servers, &dlq, 1).await? {
        publish(
            &ctx,
            &view,
            EventType::Normal,
            "DeadLetterTopicCreated",
            format!("created topic {dlq}"),
        )
        .await;
    }

    // 3. Revisions: the active one serves; a changed spec builds beside it.
    let current = revision(&view.spec);
    let active = observed
        .active_revision
        .clone()
        .unwrap_or_else(|| current.clone());
    let mut target = (current != active).then(|| current.clone());
    let (_, objects) =
        super::plan(&view, &ctx.settings).map_err(|e| ReconcileError::Config(e.to_string()))?;
    apply_object(&ctx.client, &ns, &objects.config_map).await?;
    apply_object(&ctx.client, &ns, &objects.service).await?;
    for set in &objects.stateful_sets {
        apply_object(&ctx.client, &ns, set).await?;
    }
    for pdb in &objects.disruption_budgets {
        apply_object(&ctx.client, &ns, pdb).await?;
    }

    let mut active_now = active.clone();
    if let Some(t) = &target {
        let ready = readiness(&ctx.client, &ns, &name, t, shards).await?;
        let lag = kafka::group_lag(&servers, &consumer_group(&view, t), topic, partitions)
            .await
            .unwrap_or(i64::MAX);
        if ready.all_ready() && lag <= 0 {
            info!(view = %key(&view), from = %active, to = %t, "switching revision");
            publish(
                &ctx,
                &view,
                EventType::Normal,
                "RevisionActivated",
                format!("revision {t} caught up and now serves; {active} is removed"),
            )
            .await;
            let _ = kafka::delete(&servers, &[], &[&consumer_group(&view, &active)]).await;
            active_now = t.clone();
            target = None;
        } else {
            observed.target = Some(ready);
        }
    }
    observed.active_revision = Some(active_now.clone());
    observed.target_revision = target.clone();

    // 4. Orphans: any other revision (a replaced pending target, a switched-off one).
    let keep: BTreeSet<String> = [Some(active_now.clone()), target.clone()]
        .into_iter()
        .flatten()
        .collect();
    let mut removed = 0;
    removed += delete_revisions_except::<StatefulSet>(&ctx.client, &ns, &name, &keep).await?;
    removed +=
        delete_revisions_except::<PodDisruptionBudget>(&ctx.client, &ns, &name, &keep).await?;
    removed += delete_revisions_except::<Service>(&ctx.client, &ns, &name, &keep).await?;
    removed += delete_revisions_except::<ConfigMap>(&ctx.client, &ns, &name, &keep).await?;
    if removed > 0 {
        info!(view = %key(&view), removed, "deleted objects of other revisions");
    }

    // 5. Status.
    observed.active = readiness(&ctx.client, &ns, &name, &active_now, shards).await?;
    let known = previous
        .as_ref()
        .filter(|p| p.active_revision.as_deref() == Some(active_now.as_str()))
        .and_then(|p| {
            Some(super::objects::ProjectorStats {
                rows: p.rows?,
                records_applied: p.records_applied?,
                dead_lettered: p.dead_lettered.unwrap_or(0),
            })
        });
    observed.stats = super::objects::projector_stats(
        &ctx.client,
        &ns,
        &name,
        &active_now,
        view.spec.source.keyed_by_row_key,
        known,
    )
    .await;
    observed.lag = kafka::group_lag(
        &servers,
        &consumer_group(&view, &active_now),
        topic,
        partitions,
    )
    .await
    .ok();
    let new = status::compute(previous.as_ref(), &observed, now);
    let old_phase = previous.as_ref().and_then(|p| p.phase);
    if old_phase != new.phase {
        publish(
            &ctx,
            &view,
            EventType::Normal,
            "PhaseChanged",
            format!("{:?} → {:?}", old_phase, new.phase),
        )
        .await;
    }
    patch_status(&api, &name, &new).await?;
    finish(&ctx, &new);
    Ok(Action::requeue(if new.phase == Some(Phase::Ready) {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(5)
    }))
}

/// On delete: remove what the view owns in Kafka, per its deletion policy.
/// Kubernetes objects go by owner references (garbage collection).
async fn cleanup(view: Arc<MaterializedView>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    if view.spec.deletion_policy == DeletionPolicy::Delete {
        let servers = bootstrap_servers(&view, &ctx).await?;
        let dlq = dead_letter_topic(&view);
        let revisions: BTreeSet<String> = view
            .status
            .iter()
            .flat_map(|s| [s.active_revision.clone(), s.target_revision.clone()])
            .flatten()
            .chain([revision(&view.spec)])
            .collect();
        let groups: Vec<String> = revisions.iter().map(|r| consumer_group(&view, r)).collect();
        let group_refs: Vec<&str> = groups.iter().map(String::as_str).collect();
        kafka::delete(&servers, &[&dlq], &group_refs).await?;
        publish(
            &ctx,
            &view,
            EventType::Normal,
            "KafkaResourcesDeleted",
            format!("deleted topic {dlq} and consumer groups {groups:?}"),
        )
        .await;
    }
    Ok(Action::await_change())
}
