//! The apply branch of reconcile, as named steps:
//! validate → check the source → apply the desired objects → switch revision
//! when the new one caught up → delete orphans → publish status (one tail).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Client, ResourceExt};
use tracing::info;

use super::context::{Context, ReconcileError, bootstrap_servers, publish, view_key};
use super::desired::desired_objects;
use super::k8s;
use super::kafka::{self, KafkaError};
use super::projectors::{ObservedPod, diagnose_pods, revision_pods, view_totals};
use super::refusal;
use super::status::{self, Observed, ViewTotals};
use crate::crd::{MaterializedView, MaterializedViewStatus, Phase};
use crate::view::{ValidatedView, ViewError, shard_count};

/// Requeue of a view that is not Ready yet, and of one that is.
const REQUEUE_PROGRESSING: Duration = Duration::from_secs(5);
const REQUEUE_READY: Duration = Duration::from_secs(30);

pub(super) async fn apply(
    view: Arc<MaterializedView>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let mut run = Reconciling::new(&view, &ctx);
    let validated = match ValidatedView::new(&view) {
        Ok(validated) => validated,
        Err(e) => {
            run.finish_invalid(&e).await?;
            return Ok(Action::await_change());
        }
    };
    // A changed spec is first tried as a dry run: what the API server would
    // refuse becomes InvalidSpec before any workload is touched.
    if spec_changed(&view)
        && let Err(refused) = dry_run_desired(&ctx, &view, &validated).await?
    {
        run.finish_refused(refused).await?;
        return Ok(Action::await_change());
    }
    let source = match check_source(&ctx, &view, &validated).await? {
        Ok(source) => source,
        Err(missing) => {
            run.finish_without_source(&missing).await?;
            return Ok(Action::requeue(REQUEUE_PROGRESSING));
        }
    };
    run.observed.source = Ok(source.partitions);
    apply_desired(&ctx.client, &ctx, &view, &validated).await?;
    let revisions = switch_revision(&mut run, &validated, &source).await?;
    delete_orphans(&ctx.client, &validated, &source, &revisions).await?;
    run.observe_serving(&validated, &source, &revisions).await?;
    let status = run.finish(Announce::PhaseChange).await?;
    let settled = revisions.retiring.is_none() && status.phase == Some(Phase::Ready);
    Ok(Action::requeue(if settled {
        REQUEUE_READY
    } else {
        REQUEUE_PROGRESSING
    }))
}

/// The source topic as found.
struct SourceTopic {
    servers: String,
    partitions: i32,
}

/// The revision serving reads, the one being built beside it, and one that
/// just stopped serving.
struct Revisions {
    active: String,
    target: Option<String>,
    /// Switched off in this reconcile: kept until the next one, so readers
    /// (the gateway) see the new active revision in status before its pods go.
    retiring: Option<String>,
}

/// What Event a status change announces.
enum Announce {
    InvalidSpec(String),
    SourceUnavailable(String),
    PhaseChange,
}

/// One reconcile of one view: what was there before and what is observed now.
struct Reconciling<'a> {
    ctx: &'a Context,
    view: &'a MaterializedView,
    api: Api<MaterializedView>,
    ns: String,
    name: String,
    previous: Option<MaterializedViewStatus>,
    observed: Observed,
    /// The active revision's pods, with their projectors' stats.
    active_pods: Vec<ObservedPod>,
}

impl<'a> Reconciling<'a> {
    fn new(view: &'a MaterializedView, ctx: &'a Context) -> Reconciling<'a> {
        let ns = view.namespace().unwrap_or_default();
        let name = view.name_any();
        let previous = ctx.last_status(view);
        let observed = Observed {
            generation: view.metadata.generation,
            url: ctx.gateway_url.as_ref().map(|base| {
                format!(
                    "{}/v1/namespaces/{ns}/views/{name}",
                    base.trim_end_matches('/')
                )
            }),
            active_revision: previous.as_ref().and_then(|s| s.active_revision.clone()),
            ..Default::default()
        };
        Reconciling {
            ctx,
            view,
            api: Api::namespaced(ctx.client.clone(), &ns),
            ns,
            name,
            previous,
            observed,
            active_pods: Vec::new(),
        }
    }

    /// Readiness of the revision that serves now (if any), its pods, and
    /// why they are not all ready.
    async fn observe_active(&mut self) -> Result<(), kube::Error> {
        if let Some(active) = &self.observed.active_revision {
            let shards = shard_count(self.view.spec.shards);
            let client = &self.ctx.client;
            self.observed.active =
                k8s::revision_readiness(client, &self.ns, &self.name, active, shards).await?;
            self.active_pods =
                revision_pods(client, &self.ctx.projectors, &self.ns, &self.name, active).await?;
            self.observed.active_pods =
                diagnose_pods(&self.active_pods, self.observed.active.desired_replicas);
        }
        Ok(())
    }

    /// An invalid spec changes no workload; the running revision keeps serving.
    async fn finish_invalid(self, error: &ViewError) -> Result<(), ReconcileError> {
        let message = match error {
            ViewError::Invalid { source, .. } => source.to_string(),
            ViewError::Unnamed => error.to_string(),
        };
        self.finish_refused(message).await
    }

    /// A spec refused (by compilation or by the API server's dry run).
    async fn finish_refused(mut self, message: String) -> Result<(), ReconcileError> {
        self.observed.spec = Err(message.clone());
        self.observe_active().await?;
        self.finish(Announce::InvalidSpec(message)).await?;
        Ok(())
    }

    async fn finish_without_source(mut self, missing: &KafkaError) -> Result<(), ReconcileError> {
        self.observed.source = Err(missing.to_string());
        self.observe_active().await?;
        self.finish(Announce::SourceUnavailable(missing.to_string()))
            .await?;
        Ok(())
    }

    /// Readiness, projector figures and lag of the active revision.
    async fn observe_serving(
        &mut self,
        validated: &ValidatedView,
        source: &SourceTopic,
        revisions: &Revisions,
    ) -> Result<(), ReconcileError> {
        self.observed.active_revision = Some(revisions.active.clone());
        self.observed.target_revision = revisions.target.clone();
        self.observe_active().await?;
        let known = self
            .previous
            .as_ref()
            .filter(|p| p.active_revision.as_deref() == Some(revisions.active.as_str()))
            .and_then(|p| {
                Some(ViewTotals {
                    rows: p.rows?,
                    records_applied: p.records_applied?,
                    dead_lettered: p.dead_lettered.unwrap_or(0),
                })
            });
        self.observed.stats = view_totals(
            &self.ctx.projectors,
            &self.active_pods,
            validated.keyed_by_row_key,
            known,
        )
        .await;
        let group = validated.consumer_group(&revisions.active);
        // Unknown (absent) until the active revision has committed.
        self.observed.lag =
            kafka::group_lag(&source.servers, &group, &validated.topic, source.partitions)
                .await
                .ok()
                .filter(|lag| lag.measured)
                .map(|lag| lag.events);
        Ok(())
    }

    /// The one status tail: compute, announce what changed, patch, count.
    async fn finish(&self, announce: Announce) -> Result<MaterializedViewStatus, ReconcileError> {
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let new = status::compute(self.previous.as_ref(), &self.observed, now);
        let old_phase = self.previous.as_ref().and_then(|p| p.phase);
        let old_generation = self.previous.as_ref().and_then(|p| p.observed_generation);
        let phase_changed = old_phase != new.phase;
        let event = match announce {
            Announce::InvalidSpec(message)
                if old_phase != Some(Phase::Failed)
                    || old_generation != self.view.metadata.generation =>
            {
                Some((EventType::Warning, "InvalidSpec", message))
            }
            Announce::SourceUnavailable(message) if phase_changed => {
                Some((EventType::Warning, "SourceUnavailable", message))
            }
            Announce::PhaseChange if phase_changed => Some((
                EventType::Normal,
                "PhaseChanged",
                phase_change(old_phase, new.phase),
            )),
            _ => None,
        };
        if let Some((type_, reason, note)) = event {
            publish(self.ctx, self.view, type_, reason, note).await;
        }
        self.announce_pod_problem().await;
        k8s::patch_status(&self.api, &self.name, &new).await?;
        self.ctx
            .wrote_active(self.view, new.active_revision.as_ref());
        self.ctx.wrote_phase(self.view, new.phase);
        self.ctx.metrics.phase(&view_key(self.view), new.phase);
        Ok(new)
    }
}

impl Reconciling<'_> {
    /// A Warning Event when a revision's pods have a new problem a person
    /// must fix (unschedulable, image, crash loop, …); once per problem.
    async fn announce_pod_problem(&self) {
        let Some(uid) = self.view.metadata.uid.clone() else {
            return;
        };
        let o = &self.observed;
        let problem = [
            (&o.active_revision, &o.active_pods),
            (&o.target_revision, &o.target_pods),
        ]
        .into_iter()
        .find_map(|(revision, why)| {
            let why = why.as_ref().filter(|d| d.needs_attention)?;
            Some((revision.clone().unwrap_or_default(), why.clone()))
        });
        let key = problem
            .as_ref()
            .map(|(revision, why)| format!("{revision}/{}", why.reason));
        let fresh = match (self.ctx.warned.lock(), key) {
            (Ok(mut warned), Some(key)) => warned.insert(uid, key.clone()) != Some(key),
            (Ok(mut warned), None) => {
                warned.remove(&uid);
                false
            }
            (Err(_), _) => false,
        };
        if fresh && let Some((revision, why)) = problem {
            let note = format!("revision {revision}: {}", why.message);
            publish(self.ctx, self.view, EventType::Warning, why.reason, note).await;
        }
    }
}

/// `phase Building → Ready`, in the words status uses.
fn phase_change(old: Option<Phase>, new: Option<Phase>) -> String {
    match (old, new) {
        (Some(old), Some(new)) => format!("phase {old} → {new}"),
        (None, Some(new)) => format!("phase {new}"),
        (_, None) => "phase cleared".into(),
    }
}

/// The source topic's partitions, and the dead-letter topic created if
/// missing. `Ok(Err(_))`: the source topic does not exist (yet).
async fn check_source(
    ctx: &Context,
    view: &MaterializedView,
    validated: &ValidatedView,
) -> Result<Result<SourceTopic, KafkaError>, ReconcileError> {
    let servers = bootstrap_servers(view, ctx).await?;
    let partitions = match kafka::partitions(&servers, &validated.topic).await {
        Ok(n) => n,
        Err(missing @ KafkaError::MissingTopic(_)) => return Ok(Err(missing)),
        Err(e) => return Err(e.into()),
    };
    let dlq = &validated.dead_letter_topic;
    if kafka::ensure_topic(&servers, dlq, 1).await? {
        let note = format!("created topic {dlq}");
        publish(ctx, view, EventType::Normal, "DeadLetterTopicCreated", note).await;
    }
    Ok(Ok(SourceTopic {
        servers,
        partitions,
    }))
}

/// Whether the spec changed since status last described it.
fn spec_changed(view: &MaterializedView) -> bool {
    let observed = view.status.as_ref().and_then(|s| s.observed_generation);
    observed.is_none() || observed != view.metadata.generation
}

/// Dry-run apply of the current revision's objects; `Err` says, in terms
/// of the view, what the API server refused.
async fn dry_run_desired(
    ctx: &Context,
    view: &MaterializedView,
    validated: &ValidatedView,
) -> Result<Result<(), String>, kube::Error> {
    let ns = &validated.namespace;
    let client = &ctx.client;
    let objects = desired_objects(view, &validated.revision, &ctx.settings);
    let mut tried = vec![
        (
            "ConfigMap",
            objects.config_map.name_any(),
            k8s::dry_run_apply(client, ns, &objects.config_map).await,
        ),
        (
            "Service",
            objects.service.name_any(),
            k8s::dry_run_apply(client, ns, &objects.service).await,
        ),
    ];
    for set in &objects.stateful_sets {
        tried.push((
            "StatefulSet",
            set.name_any(),
            k8s::dry_run_apply(client, ns, set).await,
        ));
    }
    for pdb in &objects.disruption_budgets {
        tried.push((
            "PodDisruptionBudget",
            pdb.name_any(),
            k8s::dry_run_apply(client, ns, pdb).await,
        ));
    }
    for (kind, name, outcome) in tried {
        match outcome {
            Ok(()) => {}
            Err(kube::Error::Api(status)) if refusal::is_refusal(&status) => {
                return Ok(Err(refusal::describe(kind, &name, &status)));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Ok(()))
}

/// Server-side apply of the current revision's objects.
async fn apply_desired(
    client: &Client,
    ctx: &Context,
    view: &MaterializedView,
    validated: &ValidatedView,
) -> Result<(), kube::Error> {
    let ns = &validated.namespace;
    let objects = desired_objects(view, &validated.revision, &ctx.settings);
    k8s::apply(client, ns, &objects.config_map).await?;
    k8s::apply(client, ns, &objects.service).await?;
    for set in &objects.stateful_sets {
        k8s::apply(client, ns, set).await?;
    }
    for pdb in &objects.disruption_budgets {
        k8s::apply(client, ns, pdb).await?;
    }
    Ok(())
}

/// Blue/green: the active revision serves until the current one is ready and
/// caught up with the topic; then it takes over and the old group goes.
async fn switch_revision(
    run: &mut Reconciling<'_>,
    validated: &ValidatedView,
    source: &SourceTopic,
) -> Result<Revisions, ReconcileError> {
    let current = &validated.revision;
    let active = run
        .observed
        .active_revision
        .clone()
        .unwrap_or_else(|| current.clone());
    if *current == active {
        return Ok(Revisions {
            active,
            target: None,
            retiring: None,
        });
    }
    let ctx = run.ctx;
    let ready =
        k8s::revision_readiness(&ctx.client, &run.ns, &run.name, current, validated.shards).await?;
    let group = validated.consumer_group(current);
    let lag = kafka::group_lag(&source.servers, &group, &validated.topic, source.partitions)
        .await
        .map_or(i64::MAX, |lag| lag.events);
    if !(ready.all_ready() && lag <= 0) {
        let pods = revision_pods(&ctx.client, &ctx.projectors, &run.ns, &run.name, current).await?;
        run.observed.target_pods = diagnose_pods(&pods, ready.desired_replicas);
        run.observed.target = Some(ready);
        return Ok(Revisions {
            active,
            target: Some(current.clone()),
            retiring: None,
        });
    }
    info!(view = %validated.key(), from = %active, to = %current, "switching revision");
    let note = format!("revision {current} caught up and now serves; {active} is removed");
    publish(ctx, run.view, EventType::Normal, "RevisionActivated", note).await;
    Ok(Revisions {
        active: current.clone(),
        target: None,
        retiring: Some(active),
    })
}

/// Any other revision's objects: a replaced pending target, a switched-off
/// one; and the consumer groups of revisions whose workloads went.
async fn delete_orphans(
    client: &Client,
    validated: &ValidatedView,
    source: &SourceTopic,
    revisions: &Revisions,
) -> Result<(), kube::Error> {
    let (ns, view) = (validated.namespace.as_str(), validated.name.as_str());
    let keep: BTreeSet<String> = [
        Some(revisions.active.clone()),
        revisions.target.clone(),
        revisions.retiring.clone(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let gone = k8s::delete_revisions_except::<StatefulSet>(client, ns, view, &keep).await?;
    k8s::delete_revisions_except::<PodDisruptionBudget>(client, ns, view, &keep).await?;
    k8s::delete_revisions_except::<Service>(client, ns, view, &keep).await?;
    k8s::delete_revisions_except::<ConfigMap>(client, ns, view, &keep).await?;
    if !gone.is_empty() {
        info!(view = %validated.key(), revisions = ?gone, "deleted workloads of other revisions");
        let groups: Vec<String> = gone.iter().map(|r| validated.consumer_group(r)).collect();
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        // Only bookkeeping for lag tools: a failure here must not stop reconcile.
        let _ = kafka::delete(&source.servers, &[], &groups).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_changes_read_as_words() {
        assert_eq!(
            phase_change(Some(Phase::Building), Some(Phase::Ready)),
            "phase Building → Ready"
        );
        assert_eq!(phase_change(None, Some(Phase::Pending)), "phase Pending");
    }
}
