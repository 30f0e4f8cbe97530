//! The comparison of a revision waiting for promotion with the serving one,
//! summarized in status. Computed in the background from both revisions'
//! stores (every row, `matview_api::revision_rows`), so a big view never
//! holds up a reconcile; recomputed while the revision waits, since events
//! keep arriving.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tracing::{debug, warn};

use super::desired::LABEL_SHARD;
use super::projectors::pod_url;
use matview_api::ProjectorClient;
use matview_api::gateway::RevisionComparison;
use matview_api::records::RecordsPage;
use matview_api::revision_rows::{PAGE, PageError, RevisionRows, ShardPages, compare};
use matview_crd::{ComparisonSummary, GroupDelta, MovedSummary};

/// A finished comparison is computed again after this long.
pub const RECOMPUTE: Duration = Duration::from_secs(60);
/// Moves listed in status; the gateway's comparison has them all.
const MOVES_LISTED: usize = 10;

/// Per view UID, the comparison of one pair of revisions.
#[derive(Default)]
pub struct Comparisons {
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Clone)]
struct Entry {
    serving: String,
    pending: String,
    running: bool,
    started: Instant,
    latest: Option<ComparisonSummary>,
}

/// Pure: start a comparison of `serving` and `pending` now?
fn should_start(entry: Option<&Entry>, serving: &str, pending: &str, now: Instant) -> bool {
    match entry {
        None => true,
        Some(e) if e.serving != serving || e.pending != pending => true,
        Some(e) => !e.running && now.duration_since(e.started) >= RECOMPUTE,
    }
}

/// One revision's projectors: per shard, the URLs of its pods.
pub type ShardUrls = Vec<Vec<String>>;

/// Pure: the pods' URLs by their shard label; `None` unless every shard of
/// `shards` has at least one pod with an address.
pub fn shard_urls(pods: &[Arc<Pod>], shards: u32) -> Option<ShardUrls> {
    let mut out: ShardUrls = vec![Vec::new(); shards as usize];
    for pod in pods {
        let labels = pod.metadata.labels.as_ref();
        let shard = labels.and_then(|l| l.get(LABEL_SHARD)?.parse::<usize>().ok());
        if let (Some(shard), Some(url)) = (shard, pod_url(pod))
            && let Some(urls) = out.get_mut(shard)
        {
            urls.push(url);
        }
    }
    out.iter().all(|urls| !urls.is_empty()).then_some(out)
}

/// What to compare: both revisions and where their shards answer.
pub struct Pair {
    pub serving: (String, ShardUrls),
    pub pending: (String, ShardUrls),
}

impl Comparisons {
    /// The latest summary of `serving` beside `pending`; starts computing
    /// one when there is none or it is older than [`RECOMPUTE`] (`pair`
    /// is asked only then).
    pub fn latest(
        self: &Arc<Self>,
        uid: &str,
        serving: &str,
        pending: &str,
        projectors: &ProjectorClient,
        pair: impl FnOnce() -> Option<Pair>,
    ) -> Option<ComparisonSummary> {
        let Ok(mut entries) = self.entries.lock() else {
            return None;
        };
        let now = Instant::now();
        let entry = entries.get(uid);
        let same = entry.filter(|e| e.serving == serving && e.pending == pending);
        let latest = same.and_then(|e| e.latest.clone());
        if should_start(entry, serving, pending, now)
            && let Some(pair) = pair()
        {
            entries.insert(
                uid.to_string(),
                Entry {
                    serving: serving.to_string(),
                    pending: pending.to_string(),
                    running: true,
                    started: now,
                    latest: latest.clone(),
                },
            );
            let (this, uid, client) = (self.clone(), uid.to_string(), projectors.clone());
            tokio::spawn(async move {
                let result = run(&client, pair).await;
                this.finish(&uid, result);
            });
        }
        latest
    }

    /// A comparison of the view is being computed (its reconcile comes
    /// back soon to show it).
    pub fn running(&self, uid: &str) -> bool {
        let entries = self.entries.lock();
        entries.is_ok_and(|e| e.get(uid).is_some_and(|e| e.running))
    }

    /// The view has no pending revision (any more).
    pub fn forget(&self, uid: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(uid);
        }
    }

    fn finish(&self, uid: &str, result: Result<(String, RevisionComparison), String>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let Some(entry) = entries.get_mut(uid) else {
            return;
        };
        entry.running = false;
        match result {
            Ok((serving, c))
                if serving == entry.serving && c.candidate.revision == entry.pending =>
            {
                debug!(uid, pending = %entry.pending, "comparison finished");
                entry.latest = Some(summarize(&c, Timestamp::now()));
            }
            Ok(_) => {}
            Err(error) => {
                warn!(uid, pending = %entry.pending, %error, "comparison failed; tried again later")
            }
        }
    }
}

async fn run(client: &ProjectorClient, pair: Pair) -> Result<(String, RevisionComparison), String> {
    let side = |(revision, urls): (String, ShardUrls)| {
        let shards = urls.len();
        let pages = PodPages {
            client: client.clone(),
            urls,
        };
        RevisionRows::new(&revision, shards, pages)
    };
    let serving = pair.serving.0.clone();
    let c = compare(side(pair.serving), side(pair.pending))
        .await
        .map_err(|e: CompareError| e.to_string())?;
    Ok((serving, c))
}

#[derive(Debug, thiserror::Error)]
enum CompareError {
    #[error("no projector of shard {shard} answered: {last}")]
    Unreachable { shard: usize, last: String },
    #[error(transparent)]
    Page(#[from] PageError),
}

/// A revision's shards reached at their pods, one after another on failure.
struct PodPages {
    client: ProjectorClient,
    urls: ShardUrls,
}

impl ShardPages for PodPages {
    type Error = CompareError;

    async fn page(&self, shard: usize, after: Option<String>) -> Result<RecordsPage, CompareError> {
        let mut last = "no pod".to_string();
        for url in self.urls.get(shard).into_iter().flatten() {
            match self.client.records(url, after.as_deref(), PAGE).await {
                Ok(answer) => return Ok(answer.body),
                Err(e) => last = matview_api::errors::chain(&e),
            }
        }
        Err(CompareError::Unreachable { shard, last })
    }
}

/// Pure: the comparison as status shows it.
pub fn summarize(c: &RevisionComparison, compared_at: Timestamp) -> ComparisonSummary {
    let mut moved: Vec<MovedSummary> = c
        .moved
        .iter()
        .map(|m| MovedSummary {
            from: m.from.clone(),
            to: m.to.clone(),
            records: m.records,
        })
        .collect();
    moved.sort_by_key(|m| std::cmp::Reverse(m.records));
    moved.truncate(MOVES_LISTED);
    let nonzero = |d: &String| {
        !d.trim_start_matches('-')
            .chars()
            .all(|c| c == '0' || c == '.')
    };
    let groups = c
        .groups
        .iter()
        .filter(|g| g.count_delta != 0 || g.sum_deltas.values().any(nonzero))
        .map(|g| GroupDelta {
            group: g.group.clone(),
            count_delta: g.count_delta,
            sum_deltas: g
                .sum_deltas
                .iter()
                .filter(|(_, d)| nonzero(d))
                .map(|(f, d)| (f.clone(), d.clone()))
                .collect::<BTreeMap<_, _>>(),
        })
        .collect();
    ComparisonSummary {
        compared_at: Time(compared_at),
        serving: c.serving.revision.clone(),
        consistent: c.consistent,
        rows_changed: c.rows.changed,
        rows_same: c.rows.same,
        rows_only_serving: c.rows.only_serving,
        rows_only_pending: c.rows.only_candidate,
        moved,
        groups,
    }
}

#[cfg(test)]
#[path = "comparisons_tests.rs"]
mod tests;
