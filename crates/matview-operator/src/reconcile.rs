//! The apply branch of reconcile, as named steps:
//! validate → check the source → apply the desired objects → switch revision
//! when the new one caught up → delete orphans → publish status (one tail).

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::context::{Context, ReconcileError, kafka_connection, publish, view_key};
use super::k8s;
use super::kafka::{self, KafkaError};
use super::objects::{Mode, apply_desired, delete_orphans};
use super::pacing::{
    CACHE_LAG, REAPPLY_EVERY, RETIRE_GRACE, SCHEMA_RECHECK, refused_source_requeue, requeue_after,
    source_failing_for,
};
use super::projectors::{
    ObservedPod, diagnose_pods, projector_troubles, revision_pods, trouble_versions, view_totals,
};
use super::rollout::until_release;
use super::schema_admission::{self, SchemaAdmission};
use super::status::{self, Observed, SourceUnavailable, ViewTotals};
use matview_api::view::{ValidatedView, ViewError, shard_count};
use matview_crd::{MaterializedView, MaterializedViewStatus, Phase};

#[path = "switch.rs"]
mod switch;
use switch::{Revisions, SourceTopic, SwitchContext, switch_revision};

/// How soon a view comes back while its comparison is computed.
const COMPARISON_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a reconcile waits for the consumer group's lag.
const LAG_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

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
    if let SchemaAdmission::Refused(message) =
        schema_admission::admit(&ctx, &view, &validated).await
    {
        run.finish_refused(message).await?;
        // A newer schema version may make the paths fit: look again.
        return Ok(Action::requeue(SCHEMA_RECHECK));
    }
    // A changed spec of a view that serves is first tried as a dry run: what
    // the API server would refuse becomes InvalidSpec before any workload is
    // touched. A view that serves nothing yet is refused by the apply itself.
    if spec_changed(&view)
        && has_active_revision(&view)
        && let Err(refused) = apply_desired(&ctx, &view, &validated, Mode::DryRun).await?
    {
        run.finish_refused(refused).await?;
        return Ok(Action::await_change());
    }
    let source = match check_source(&ctx, &view, &validated).await? {
        Ok(source) => source,
        Err(missing) => {
            run.finish_without_source(&missing).await?;
            if missing.needs_a_fix() {
                let status = ctx.last_status(&view);
                let failing_for =
                    source_failing_for(status.as_ref(), k8s_openapi::jiff::Timestamp::now());
                return Ok(Action::requeue(refused_source_requeue(failing_for)));
            }
            let uid = view.metadata.uid.clone().unwrap_or_default();
            let count = ctx.metrics.view_count();
            return Ok(Action::requeue(requeue_after(false, count, &uid)));
        }
    };
    run.observed.source = Ok(source.partitions);
    let uid = view.metadata.uid.clone().unwrap_or_default();
    // Server-side apply is idempotent; skipping an unchanged one saves a
    // request per object on every periodic reconcile.
    let applied = (view.metadata.generation, validated.revision.clone());
    if ctx.memo.needs_apply(&uid, &applied, REAPPLY_EVERY) {
        if let Err(refused) = apply_desired(&ctx, &view, &validated, Mode::Apply).await? {
            run.finish_refused(refused).await?;
            return Ok(Action::await_change());
        }
        ctx.memo.applied(&uid, applied);
    }
    let mut revisions = run.switch(&validated, &source).await?;
    revisions.retiring = ctx
        .memo
        .retiring(&uid, revisions.retiring.take(), RETIRE_GRACE)
        .filter(|r| *r != revisions.active);
    let keep = revisions.keep();
    if ctx.memo.needs_cleanup(&uid, &keep) {
        // A view that never had a status never had another revision (what
        // a former view of the same name left is garbage-collected).
        if view.status.is_some() {
            delete_orphans(
                &ctx.client,
                &validated,
                &source.kafka,
                &keep,
                ctx.settings.network_access.is_some(),
            )
            .await?;
        }
        ctx.memo.cleaned(&uid, keep);
    }
    run.observe_serving(&validated, &source, &revisions).await?;
    if run.observed.active_revision.as_deref() == Some(validated.revision.as_str())
        && run.observed.active.shards_found < run.observed.active.shards
        && ctx.memo.applied_before(&uid, CACHE_LAG)
    {
        // An object went missing (deleted by hand): apply again next time.
        ctx.memo.forget_applied(&uid);
    }
    let status = run.finish(Announce::PhaseChange).await?;
    let settled = revisions.retiring.is_none() && status.phase == Some(Phase::Ready);
    let periodic = requeue_after(settled, ctx.metrics.view_count(), &uid);
    // A kept revision is removed by the first reconcile after its window.
    let kept = status.rollout.as_ref().and_then(|r| r.previous.as_ref());
    let release = until_release(kept, k8s_openapi::jiff::Timestamp::now())
        .map(|left| left + std::time::Duration::from_secs(1));
    // A comparison being computed shows in status at the next reconcile.
    let comparing = ctx.comparisons.running(&uid).then_some(COMPARISON_CHECK);
    let soonest = [release, comparing].into_iter().flatten().min();
    Ok(Action::requeue(
        soonest.map_or(periodic, |r| r.min(periodic)),
    ))
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
            let (shards, replicas) = (
                shard_count(self.view.spec.shards),
                self.view.spec.replicas_per_shard,
            );
            let caches = &self.ctx.caches;
            self.observed.active =
                k8s::revision_readiness(caches, &self.ns, &self.name, active, shards, replicas)
                    .await;
            self.active_pods =
                revision_pods(caches, &self.ctx.projectors, &self.ns, &self.name, active).await;
            self.observed.active_pods = diagnose_pods(
                &self.active_pods,
                self.observed.active.desired_replicas,
                k8s_openapi::jiff::Timestamp::now(),
            );
            self.observed.troubles = projector_troubles(&self.active_pods);
            self.ctx
                .troubles
                .follow(self.view, &trouble_versions(&self.active_pods));
        }
        Ok(())
    }

    /// The rollout step: which revisions serve, build and stay; what it
    /// observed of them goes to status.
    async fn switch(
        &mut self,
        validated: &ValidatedView,
        source: &SourceTopic,
    ) -> Result<Revisions, ReconcileError> {
        let context = SwitchContext {
            ctx: self.ctx,
            view: self.view,
            ns: &self.ns,
            name: &self.name,
            previous: self.previous.as_ref(),
            active: self.observed.active_revision.clone(),
        };
        let switched = switch_revision(&context, validated, source).await?;
        let o = &mut self.observed;
        (o.target_pods, o.target) = (switched.target_pods, switched.target);
        (o.history, o.rollout, o.promote) = (switched.history, switched.rollout, switched.promote);
        Ok(switched.revisions)
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

    async fn finish_without_source(mut self, why: &KafkaError) -> Result<(), ReconcileError> {
        let message = why.message();
        self.observed.source = Err(SourceUnavailable {
            reason: why.reason(),
            message: message.clone(),
        });
        self.observe_active().await?;
        self.finish(Announce::SourceUnavailable(message)).await?;
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
        // Unknown (absent) until the active revision has committed; with no
        // projector answering, nothing can have been committed lately: no
        // Kafka request for a view whose pods do not run.
        let running = self.active_pods.iter().any(|p| p.stats.is_some());
        self.observed.lag = if running {
            // A partition whose leader is away holds its watermarks for the
            // client's whole timeout: status must not wait for it (it is
            // what says so). The last lag measured stands meanwhile.
            let measuring =
                kafka::group_lag(&source.kafka, &group, &validated.topic, source.partitions);
            match tokio::time::timeout(LAG_DEADLINE, measuring).await {
                Ok(measured) => measured
                    .ok()
                    .filter(|lag| lag.measured)
                    .map(|lag| lag.events),
                Err(_) => self.previous.as_ref().and_then(|p| p.lag),
            }
        } else {
            None
        };
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
            publish(self.ctx, self.view, type_, reason, note);
        }
        if self.observed.source.is_ok()
            && let Some((type_, reason, note)) = status::source_event(self.previous.as_ref(), &new)
        {
            publish(self.ctx, self.view, type_, &reason, note);
        }
        self.announce_pod_problem().await;
        // An unchanged status is not written again: periodic reconciles of
        // quiet views cost no write.
        if self.previous.as_ref() != Some(&new) {
            tracing::debug!(view = %view_key(self.view), previous = ?self.previous, new = ?new, "status changed");
            k8s::patch_status(&self.api, &self.name, &new).await?;
        }
        self.ctx.wrote_status(self.view, Some(&new));
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
            publish(self.ctx, self.view, EventType::Warning, why.reason, note);
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
    let kafka = match kafka_connection(view, ctx).await {
        Ok(kafka) => kafka,
        Err(ReconcileError::Kafka(e)) => return Ok(Err(e)),
        Err(e) => return Err(e),
    };
    let partitions = match ctx.kafka.partitions(&kafka, &validated.topic).await {
        Ok(n) => n,
        // A missing topic, brokers that do not answer or refuse us: said in
        // status (the running revision keeps serving from its stores).
        Err(unavailable @ (KafkaError::MissingTopic(_) | KafkaError::Client { .. })) => {
            return Ok(Err(unavailable));
        }
        Err(e) => return Err(e.into()),
    };
    let dlq = &validated.dead_letter_topic;
    if ctx.kafka.ensure_topic(&kafka, dlq, 1).await? {
        let note = format!("created topic {dlq}");
        publish(ctx, view, EventType::Normal, "DeadLetterTopicCreated", note);
    }
    Ok(Ok(SourceTopic { kafka, partitions }))
}

/// Whether the spec changed since status last described it.
/// Whether status names an active revision (serving, or built first).
fn has_active_revision(view: &MaterializedView) -> bool {
    view.status
        .as_ref()
        .is_some_and(|s| s.active_revision.is_some())
}

fn spec_changed(view: &MaterializedView) -> bool {
    let observed = view.status.as_ref().and_then(|s| s.observed_generation);
    observed.is_none() || observed != view.metadata.generation
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
