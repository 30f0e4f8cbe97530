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

/// Figures a view's projectors report about themselves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProjectorStats {
    pub rows: i64,
    pub records_applied: i64,
    pub dead_lettered: i64,
}

/// Sum over shards of the best-informed replica's metrics. When the topic is
/// not keyed by the row key, a row can have parts in several shards, so rows
/// are counted as distinct keys over all shards — unless `known` (the last
/// figures of the same revision) shows no record was applied since.
pub async fn projector_stats(
    client: &Client,
    ns: &str,
    view: &str,
    revision: &str,
    keyed_by_row_key: bool,
    known: Option<ProjectorStats>,
) -> Option<ProjectorStats> {
    use k8s_openapi::api::core::v1::Pod;
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(
            &ListParams::default()
                .labels(&format!("{LABEL_VIEW}={view},{LABEL_REVISION}={revision}")),
        )
        .await
        .ok()?;
    let mut per_shard: std::collections::BTreeMap<String, (ProjectorStats, String)> =
        Default::default();
    for pod in pods.items {
        let shard = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(super::desired::LABEL_SHARD))
            .cloned()
            .unwrap_or_default();
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
            continue;
        };
        let url = format!("http://{ip}:{}/metrics", super::desired::HTTP_PORT);
        let Some(text) = crate::http_client::get(&url).await else {
            continue;
        };
        let stats = parse_metrics(&text);
        let best = per_shard
            .entry(shard)
            .or_insert((ProjectorStats::default(), ip.clone()));
        if stats.records_applied >= best.0.records_applied {
            *best = (stats, ip);
        }
    }
    if per_shard.is_empty() {
        return None;
    }
    let mut total = per_shard
        .values()
        .fold(ProjectorStats::default(), |a, (s, _)| ProjectorStats {
            rows: a.rows + s.rows,
            records_applied: a.records_applied + s.records_applied,
            dead_lettered: a.dead_lettered + s.dead_lettered,
        });
    // Reading every shard's keys is the expensive part: only when records moved.
    let unchanged = known.filter(|k| k.records_applied == total.records_applied);
    if let Some(known) = unchanged {
        total.rows = known.rows;
    } else if !keyed_by_row_key && per_shard.len() > 1 {
        let addresses: Vec<String> = per_shard.values().map(|(_, ip)| ip.clone()).collect();
        if let Some(distinct) = distinct_keys(&addresses).await {
            total.rows = distinct;
        }
    }
    Some(total)
}

/// Counts distinct row keys over shards by reading each shard's keys in
/// order. Bounded: above a million keys it gives up (rows stay summed).
async fn distinct_keys(addresses: &[String]) -> Option<i64> {
    const MAX_KEYS: usize = 1_000_000;
    let mut keys = std::collections::BTreeSet::new();
    let mut read = 0;
    for ip in addresses {
        let mut after: Option<String> = None;
        loop {
            let base = format!(
                "http://{ip}:{}/v1/keys?limit=10000",
                super::desired::HTTP_PORT
            );
            let url = match &after {
                Some(a) => format!("{base}&after={}", percent_encode(a)),
                None => base,
            };
            let page: serde_json::Value =
                serde_json::from_str(&crate::http_client::get(&url).await?).ok()?;
            for k in page["keys"].as_array()? {
                keys.insert(k.as_str()?.to_string());
                read += 1;
            }
            if read > MAX_KEYS {
                return None;
            }
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_string()),
                None => break,
            }
        }
    }
    Some(keys.len() as i64)
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Reads the figures from a projector's Prometheus text.
pub fn parse_metrics(text: &str) -> ProjectorStats {
    let mut stats = ProjectorStats::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value = value.trim().parse::<f64>().unwrap_or(0.0) as i64;
        match name {
            "matview_rows" => stats.rows = value,
            "matview_records_applied_total" => stats.records_applied = value,
            n if n.starts_with("matview_dead_lettered_total{") => stats.dead_lettered += value,
            _ => {}
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_records_and_dead_letters() {
        let text = "# HELP x\nmatview_rows 12\nmatview_records_applied_total 40\nmatview_dead_lettered_total{reason=\"not-json\"} 2\nmatview_dead_lettered_total{reason=\"wrong-type\"} 1\n";
        assert_eq!(
            parse_metrics(text),
            ProjectorStats {
                rows: 12,
                records_applied: 40,
                dead_lettered: 3
            }
        );
    }
}
