//! Blue/green switching: the active revision serves until the one being
//! built is ready, caught up and — when the topic's retention deleted its
//! beginning — allowed to lack what it cannot read.

use kube::runtime::events::EventType;
use tracing::{info, warn};

use super::super::context::publish;
use super::super::history::{self, History};
use super::super::k8s;
use super::super::kafka;
use super::super::projectors::{diagnose_pods, revision_pods};
use super::{ReconcileError, Reconciling, Revisions, SourceTopic};
use matview_api::view::ValidatedView;
use matview_crd::ConditionType;

/// What a rebuild from the topic can see (`None`: it starts from the
/// latest event, or Kafka did not say). The first time retention is found
/// to have deleted events, a Warning Event names the topic and partitions.
async fn rebuild_history(
    run: &Reconciling<'_>,
    validated: &ValidatedView,
    source: &SourceTopic,
) -> Option<History> {
    if run.view.spec.source.start_from == matview_crd::StartFrom::Latest {
        return None;
    }
    let topic = &validated.topic;
    let found = kafka::topic_history(&source.kafka, topic, source.partitions).await;
    let history = match found {
        Ok(found) => history::verdict(&found, run.view.spec.source.accept_incomplete_history),
        Err(e) => {
            warn!(view = %validated.key(), error = %e, "cannot tell whether the topic still holds its beginning");
            return None;
        }
    };
    let (ok, reason, message) = history.condition(topic);
    let said_before = run.view.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == ConditionType::HistoryComplete && c.reason == reason)
    });
    if !ok && !said_before {
        publish(
            run.ctx,
            run.view,
            EventType::Warning,
            "HistoryIncomplete",
            message,
        );
    }
    Some(history)
}

/// Blue/green: the active revision serves until the current one is ready and
/// caught up with the topic; then it takes over and the old group goes.
pub(super) async fn switch_revision(
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
    let replicas = run.view.spec.replicas_per_shard;
    let ready = k8s::revision_readiness(
        &ctx.caches,
        &run.ns,
        &run.name,
        current,
        validated.shards,
        replicas,
    )
    .await;
    let history = rebuild_history(run, validated, source).await;
    let group = validated.consumer_group(current);
    // The group's lag matters only once every projector of the target is ready.
    let lag = if ready.all_ready() {
        kafka::group_lag(&source.kafka, &group, &validated.topic, source.partitions)
            .await
            .map_or(i64::MAX, |lag| lag.events)
    } else {
        i64::MAX
    };
    let held = history.as_ref().is_some_and(History::blocks_switch);
    if let Some(history) = history {
        run.observed.history = Some((validated.topic.clone(), history));
    }
    if !(ready.all_ready() && lag <= 0) || held {
        let pods = revision_pods(&ctx.caches, &ctx.projectors, &run.ns, &run.name, current).await;
        run.observed.target_pods = diagnose_pods(
            &pods,
            ready.desired_replicas,
            k8s_openapi::jiff::Timestamp::now(),
        );
        run.observed.target = Some(ready);
        return Ok(Revisions {
            active,
            target: Some(current.clone()),
            retiring: None,
        });
    }
    info!(view = %validated.key(), from = %active, to = %current, "switching revision");
    let note = format!("revision {current} caught up and now serves; {active} is removed");
    publish(ctx, run.view, EventType::Normal, "RevisionActivated", note);
    Ok(Revisions {
        active: current.clone(),
        target: None,
        retiring: Some(active),
    })
}
