//! Reading and writing the objects of a view: readiness of a revision,
//! server-side apply under one field manager, deleting other revisions.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::controller::{FIELD_MANAGER, ReconcileError};
use super::desired::{LABEL_REVISION, LABEL_VIEW};
use super::status::Readiness;
use crate::crd::MaterializedView;

pub async fn readiness(
    client: &Client,
    ns: &str,
    view: &str,
    revision: &str,
    shards: u32,
) -> Result<Readiness, ReconcileError> {
    let sets = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .list(
            &ListParams::default()
                .labels(&format!("{LABEL_VIEW}={view},{LABEL_REVISION}={revision}")),
        )
        .await?;
    let mut r = Readiness {
        shards,
        ..Default::default()
    };
    for set in &sets.items {
        let desired = set.spec.replicas.unwrap_or(1);
        let ready = set
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        r.shards_found += 1;
        r.desired_replicas += desired;
        r.ready_replicas += ready.min(desired);
        if ready > 0 {
            r.shards_serving += 1;
        }
    }
    // A revision from an older spec may have another shard count: trust what exists.
    if r.shards_found > 0 {
        r.shards = r.shards_found;
    }
    Ok(r)
}

pub async fn apply_object<K>(client: &Client, ns: &str, object: &K) -> Result<(), ReconcileError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned,
    K::DynamicType: Default,
{
    let name = object.meta().name.clone().unwrap_or_default();
    Api::<K>::namespaced(client.clone(), ns)
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await?;
    Ok(())
}

/// Deletes objects of the view whose revision is not kept.
pub async fn delete_revisions_except<K>(
    client: &Client,
    ns: &str,
    view: &str,
    keep: &BTreeSet<String>,
) -> Result<usize, ReconcileError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned,
    K::DynamicType: Default,
{
    let api = Api::<K>::namespaced(client.clone(), ns);
    let mut deleted = 0;
    for object in api
        .list(&ListParams::default().labels(&format!("{LABEL_VIEW}={view}")))
        .await?
        .items
    {
        let revision = object
            .meta()
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_REVISION))
            .cloned()
            .unwrap_or_default();
        if !keep.contains(&revision) {
            api.delete(
                &object.meta().name.clone().unwrap_or_default(),
                &DeleteParams::background(),
            )
            .await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

pub async fn patch_status(
    api: &Api<MaterializedView>,
    name: &str,
    status: &crate::crd::MaterializedViewStatus,
) -> Result<(), ReconcileError> {
    let body =
        json!({"apiVersion": "matview.dev/v1alpha1", "kind": "MaterializedView", "status": status});
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}
