//! A revision's objects in the API server: dry run (what would be refused,
//! in the view's terms), server-side apply, and deleting other revisions'.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::{Client, ResourceExt};
use tracing::info;

use super::context::Context;
use super::desired::desired_objects;
use super::k8s;
use super::kafka;
use super::refusal;
use crate::crd::MaterializedView;
use crate::view::ValidatedView;

/// Dry-run apply of the current revision's objects; `Err` says, in terms
/// of the view, what the API server refused.
pub(super) async fn dry_run_desired(
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
pub(super) async fn apply_desired(
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

/// Any other revision's objects: a replaced pending target, a switched-off
/// one; and the consumer groups of revisions whose workloads went.
pub(super) async fn delete_orphans(
    client: &Client,
    validated: &ValidatedView,
    servers: &str,
    keep: &BTreeSet<String>,
) -> Result<(), kube::Error> {
    let (ns, view) = (validated.namespace.as_str(), validated.name.as_str());
    let gone = k8s::delete_revisions_except::<StatefulSet>(client, ns, view, keep).await?;
    k8s::delete_revisions_except::<PodDisruptionBudget>(client, ns, view, keep).await?;
    k8s::delete_revisions_except::<Service>(client, ns, view, keep).await?;
    k8s::delete_revisions_except::<ConfigMap>(client, ns, view, keep).await?;
    if !gone.is_empty() {
        info!(view = %validated.key(), revisions = ?gone, "deleted workloads of other revisions");
        let groups: Vec<String> = gone.iter().map(|r| validated.consumer_group(r)).collect();
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        // Only bookkeeping for lag tools: a failure here must not stop reconcile.
        let _ = kafka::delete(servers, &[], &groups).await;
    }
    Ok(())
}
