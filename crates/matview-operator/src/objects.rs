//! A revision's objects in the API server: server-side apply or its dry run
//! (what is refused, in the view's terms), and deleting other revisions'.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::{Client, ResourceExt};
use tracing::info;

use super::context::Context;
use super::desired::desired_objects;
use super::k8s;
use super::kafka;
use super::refusal;
use matview_api::view::ValidatedView;
use matview_crd::MaterializedView;

/// Whether the API server stores what is applied or only checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Schema and admission checks only: nothing is stored.
    DryRun,
    Apply,
}

/// Server-side apply (or its dry run) of the current revision's objects, all
/// at once (one round trip, not one per object); `Ok(Err(..))` says, in
/// terms of the view, what the API server refused (the first refusal in
/// apply order).
pub(super) async fn apply_desired(
    ctx: &Context,
    view: &MaterializedView,
    validated: &ValidatedView,
    mode: Mode,
) -> Result<Result<(), String>, kube::Error> {
    let (client, ns) = (&ctx.client, validated.namespace.as_str());
    let objects = desired_objects(view, &validated.revision, &ctx.settings);
    let sets = objects
        .stateful_sets
        .iter()
        .map(|set| apply_one(client, ns, "StatefulSet", set, mode));
    let budgets = objects
        .disruption_budgets
        .iter()
        .map(|pdb| apply_one(client, ns, "PodDisruptionBudget", pdb, mode));
    let policy = objects
        .network_policy
        .iter()
        .map(|policy| apply_one(client, ns, "NetworkPolicy", policy, mode));
    let (config_map, service, sets, budgets, policy) = futures::join!(
        apply_one(client, ns, "ConfigMap", &objects.config_map, mode),
        apply_one(client, ns, "Service", &objects.service, mode),
        futures::future::join_all(sets),
        futures::future::join_all(budgets),
        futures::future::join_all(policy),
    );
    let outcomes = [config_map, service].into_iter().chain(sets).chain(budgets);
    for outcome in outcomes.chain(policy) {
        if let Some(refused) = outcome? {
            return Ok(Err(refused));
        }
    }
    Ok(Ok(()))
}

/// One object; `Some` describes a refusal.
async fn apply_one<K: k8s::Applicable>(
    client: &Client,
    ns: &str,
    kind: &str,
    object: &K,
    mode: Mode,
) -> Result<Option<String>, kube::Error> {
    let outcome = match mode {
        Mode::DryRun => k8s::dry_run_apply(client, ns, object).await,
        Mode::Apply => k8s::apply(client, ns, object).await,
    };
    match outcome {
        Ok(()) => Ok(None),
        Err(kube::Error::Api(status)) if refusal::is_refusal(&status) => {
            Ok(Some(refusal::describe(kind, &object.name_any(), &status)))
        }
        Err(e) => Err(e),
    }
}

/// Any other revision's objects: a replaced pending target, a switched-off
/// one; and the consumer groups of revisions whose workloads went.
pub(super) async fn delete_orphans(
    client: &Client,
    validated: &ValidatedView,
    kafka: &kafka::KafkaConnection,
    keep: &BTreeSet<String>,
    network_policies: bool,
) -> Result<(), kube::Error> {
    let (ns, view) = (validated.namespace.as_str(), validated.name.as_str());
    let gone = k8s::delete_revisions_except::<StatefulSet>(client, ns, view, keep).await?;
    k8s::delete_revisions_except::<PodDisruptionBudget>(client, ns, view, keep).await?;
    if network_policies {
        k8s::delete_revisions_except::<NetworkPolicy>(client, ns, view, keep).await?;
    }
    k8s::delete_revisions_except::<Service>(client, ns, view, keep).await?;
    k8s::delete_revisions_except::<ConfigMap>(client, ns, view, keep).await?;
    if !gone.is_empty() {
        info!(view = %validated.key(), revisions = ?gone, "deleted workloads of other revisions");
        let groups: Vec<String> = gone.iter().map(|r| validated.consumer_group(r)).collect();
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        // Only bookkeeping for lag tools: a failure here must not stop reconcile.
        let _ = kafka::delete(kafka, &[], &groups).await;
    }
    Ok(())
}
