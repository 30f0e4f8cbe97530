//! Kubernetes helpers of the operator: the one field manager, server-side
//! apply, deleting other revisions' objects, the status patch, and reading a
//! revision's readiness. Each returns `kube::Error`; reconcile adds context.

use std::collections::BTreeSet;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::desired::{LABEL_REVISION, LABEL_VIEW};
use super::status::Readiness;
use matview_crd::{MaterializedView, MaterializedViewStatus};

/// Every object and status the operator writes is applied under this manager.
pub const FIELD_MANAGER: &str = "matview-operator";

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// A namespaced object the operator applies.
pub trait Applicable:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + std::fmt::Debug
    + Serialize
    + DeserializeOwned
{
}

impl<K> Applicable for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned
{
}

/// Server-side apply of a namespaced object, forced: the operator owns its fields.
pub async fn apply<K: Applicable>(
    client: &Client,
    ns: &str,
    object: &K,
) -> Result<(), kube::Error> {
    apply_with(client, ns, object, &apply_params()).await
}

/// The same apply as a dry run: the API server checks the object (schema,
/// admission) and stores nothing.
pub async fn dry_run_apply<K: Applicable>(
    client: &Client,
    ns: &str,
    object: &K,
) -> Result<(), kube::Error> {
    apply_with(client, ns, object, &apply_params().dry_run()).await
}

async fn apply_with<K: Applicable>(
    client: &Client,
    ns: &str,
    object: &K,
    params: &PatchParams,
) -> Result<(), kube::Error> {
    let name = object.meta().name.clone().unwrap_or_default();
    Api::<K>::namespaced(client.clone(), ns)
        .patch(&name, params, &Patch::Apply(object))
        .await?;
    Ok(())
}

/// Deletes the view's objects of kind `K` whose revision is not in `keep`;
/// returns the revisions whose objects it deleted.
pub async fn delete_revisions_except<K>(
    client: &Client,
    ns: &str,
    view: &str,
    keep: &BTreeSet<String>,
) -> Result<BTreeSet<String>, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + std::fmt::Debug + DeserializeOwned,
    K::DynamicType: Default,
{
    let api = Api::<K>::namespaced(client.clone(), ns);
    let mut deleted = BTreeSet::new();
    let listed = api
        .list(&ListParams::default().labels(&format!("{LABEL_VIEW}={view}")))
        .await?;
    for object in listed.items {
        let labels = object.meta().labels.as_ref();
        let revision = labels.and_then(|l| l.get(LABEL_REVISION));
        if revision.is_none_or(|r| !keep.contains(r)) {
            let name = object.meta().name.clone().unwrap_or_default();
            api.delete(&name, &DeleteParams::background()).await?;
            deleted.insert(revision.cloned().unwrap_or_default());
        }
    }
    Ok(deleted)
}

/// Applies the status subresource under the field manager.
pub async fn patch_status(
    api: &Api<MaterializedView>,
    name: &str,
    status: &MaterializedViewStatus,
) -> Result<(), kube::Error> {
    let body = json!({
        "apiVersion": MaterializedView::api_version(&()),
        "kind": MaterializedView::kind(&()),
        "status": status,
    });
    api.patch_status(name, &apply_params(), &Patch::Apply(&body))
        .await?;
    Ok(())
}

/// Readiness of one revision, from its StatefulSets (in the watch cache).
pub async fn revision_readiness(
    caches: &super::caches::Caches,
    ns: &str,
    view: &str,
    revision: &str,
    shards: u32,
    replicas_per_shard: i32,
) -> Readiness {
    let sets: Vec<StatefulSet> = caches
        .stateful_sets(ns, view, revision)
        .await
        .into_iter()
        .map(|s| (*s).clone())
        .collect();
    Readiness::of_stateful_sets(shards, replicas_per_shard, &sets)
}

/// The label selector of a revision's objects and pods.
pub fn revision_selector(view: &str, revision: &str) -> String {
    format!("{LABEL_VIEW}={view},{LABEL_REVISION}={revision}")
}
