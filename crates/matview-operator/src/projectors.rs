//! Talking to a view's projectors: their pods and typed stats, why they are
//! not ready, and distinct row keys across shards. Pods are found by label; each is asked at its pod IP.

use k8s_openapi::jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;

use super::caches::Caches;
use super::desired::{HTTP_PORT, LABEL_SHARD};
use super::diagnosis::{Diagnosis, PodState, diagnose, pod_state};
use super::status::{ProjectorTroubles, ViewTotals};
use matview_api::ProjectorClient;
use matview_api::projector::ProjectorStats;

/// Above this many keys, distinct rows are not counted (rows stay summed).
const MAX_DISTINCT_KEYS: usize = 1_000_000;
const KEYS_PAGE: usize = 10_000;

/// The base URL of a pod's projector API, when it has an IP.
pub fn pod_url(pod: &Pod) -> Option<String> {
    let ip = pod.status.as_ref()?.pod_ip.as_ref()?;
    Some(format!("http://{ip}:{HTTP_PORT}"))
}

/// One pod of a revision and what its projector said, if it answered.
pub struct ObservedPod {
    pub pod: Pod,
    pub stats: Option<ProjectorStats>,
}

/// The pods of one revision (from the watch cache), each asked for its
/// stats (all at once).
pub async fn revision_pods(
    caches: &Caches,
    projectors: &ProjectorClient,
    ns: &str,
    view: &str,
    revision: &str,
) -> Vec<ObservedPod> {
    let pods = caches.pods(ns, view, revision).await;
    let asked = pods.into_iter().map(|pod| async move {
        let pod = (*pod).clone();
        let stats = match pod_url(&pod) {
            Some(url) => projectors.stats(&url).await.ok(),
            None => None,
        };
        ObservedPod { pod, stats }
    });
    futures::future::join_all(asked).await
}

/// Pure: the first pod's report of each kind, naming it, and how many more.
pub fn projector_troubles(pods: &[ObservedPod]) -> ProjectorTroubles {
    let first = |pick: fn(&ProjectorStats) -> Option<&String>| {
        let mut reports = pods.iter().filter_map(|p| {
            let error = pick(p.stats.as_ref()?)?;
            let name = p.pod.metadata.name.as_deref().unwrap_or("?");
            Some(format!("{name}: {error}"))
        });
        let first = reports.next()?;
        let more = reports.count();
        Some(match more {
            0 => first,
            n => format!("{first} (and {n} more)"),
        })
    };
    ProjectorTroubles {
        store: first(|s| s.store_error.as_ref()),
        source: first(|s| s.source_error.as_ref()),
        schema_registry: first(|s| s.schema_registry_error.as_ref()),
        schema_registry_refused: pods
            .iter()
            .any(|p| p.stats.as_ref().is_some_and(|s| s.schema_registry_refused)),
        // The cluster's own metadata: every projector says the same.
        under_replicated: pods
            .iter()
            .find_map(|p| p.stats.as_ref()?.under_replicated.clone()),
    }
}

/// Pure: each answering projector's URL and the troubles' version it gave,
/// for the trouble watch to wait on.
pub fn trouble_versions(pods: &[ObservedPod]) -> BTreeMap<String, u64> {
    pods.iter()
        .filter_map(|p| Some((pod_url(&p.pod)?, p.stats.as_ref()?.troubles_version)))
        .collect()
}

/// Why the revision's pods are not all ready, if they are not.
pub fn diagnose_pods(pods: &[ObservedPod], desired: i32, now: Timestamp) -> Option<Diagnosis> {
    let states: Vec<PodState> = pods
        .iter()
        .map(|p| pod_state(&p.pod, p.stats.as_ref().map(|s| s.lag), now))
        .collect();
    diagnose(&states, desired)
}

/// Sum over shards of the best-informed replica's stats. When the topic is
/// not keyed by the row key, a row can have parts in several shards, so rows
/// are counted as distinct keys over all shards — unless `known` (the last
/// figures of the same revision) shows no record was applied since.
pub async fn view_totals(
    projectors: &ProjectorClient,
    pods: &[ObservedPod],
    keyed_by_row_key: bool,
    known: Option<ViewTotals>,
) -> Option<ViewTotals> {
    let mut best: BTreeMap<String, (&ProjectorStats, String)> = BTreeMap::new();
    for observed in pods {
        let shard = observed
            .pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_SHARD))
            .cloned()
            .unwrap_or_default();
        let (Some(url), Some(stats)) = (pod_url(&observed.pod), observed.stats.as_ref()) else {
            continue;
        };
        let better = best
            .get(&shard)
            .is_none_or(|(b, _)| stats.records_applied >= b.records_applied);
        if better {
            best.insert(shard, (stats, url));
        }
    }
    if best.is_empty() {
        return None;
    }
    let mut totals = sum_stats(best.values().map(|(s, _)| *s));
    // Reading every shard's keys is the expensive part: only when records moved.
    match known.filter(|k| k.records_applied == totals.records_applied) {
        Some(known) => totals.rows = known.rows,
        None if !keyed_by_row_key && best.len() > 1 => {
            let urls: Vec<&str> = best.values().map(|(_, u)| u.as_str()).collect();
            if let Some(distinct) = distinct_keys(projectors, &urls).await {
                totals.rows = distinct;
            }
        }
        None => {}
    }
    Some(totals)
}

/// Pure: the totals of one best replica per shard.
pub fn sum_stats<'a>(per_shard: impl Iterator<Item = &'a ProjectorStats>) -> ViewTotals {
    per_shard.fold(ViewTotals::default(), |t, s| ViewTotals {
        rows: t.rows + s.rows as i64,
        records_applied: t.records_applied + s.records_applied as i64,
        dead_lettered: t.dead_lettered + s.dead_lettered as i64,
    })
}

/// Counts distinct row keys over shards by reading each shard's keys in order.
async fn distinct_keys(projectors: &ProjectorClient, urls: &[&str]) -> Option<i64> {
    let mut keys = BTreeSet::new();
    let mut read = 0;
    for url in urls {
        let mut after: Option<String> = None;
        loop {
            let page = projectors
                .keys(url, after.as_deref(), KEYS_PAGE)
                .await
                .ok()?;
            read += page.keys.len();
            keys.extend(page.keys);
            if read > MAX_DISTINCT_KEYS {
                return None;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    Some(keys.len() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(rows: u64, records: u64, dead: u64) -> ProjectorStats {
        ProjectorStats {
            revision: "r".into(),
            shard: 0,
            rows,
            records_applied: records,
            events_consumed: records,
            dead_lettered: dead,
            lag: 0,
            ready: true,
            source_error: None,
            store_error: None,
            schema_registry_error: None,
            schema_registry_refused: false,
            under_replicated: None,
            troubles_version: 0,
        }
    }

    #[test]
    fn totals_add_up_over_shards() {
        let shards = [stats(12, 40, 2), stats(3, 5, 1)];
        assert_eq!(
            sum_stats(shards.iter()),
            ViewTotals {
                rows: 15,
                records_applied: 45,
                dead_lettered: 3
            }
        );
    }

    #[test]
    fn troubles_name_the_first_pod_and_count_the_others() {
        let pod = |name: &str, store: Option<&str>| ObservedPod {
            pod: serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))
                .expect("pod"),
            stats: Some(ProjectorStats {
                store_error: store.map(str::to_string),
                ..stats(1, 1, 0)
            }),
        };
        let pods = [
            pod("a-0", None),
            pod("a-1", Some("full")),
            pod("b-0", Some("full")),
        ];
        let troubles = projector_troubles(&pods);
        assert_eq!(troubles.store.as_deref(), Some("a-1: full (and 1 more)"));
        assert_eq!(troubles.source, None);
        assert_eq!(projector_troubles(&pods[..1]), ProjectorTroubles::default());
    }
}
