//! `GET …/views/{name}/revisions/{rev}/comparison`: the serving revision
//! beside the one waiting for promotion, from both revisions' stores. Each
//! revision's shards are read page by page in key order and merged (a row's
//! parts on several shards become one row); the two revisions are joined by
//! key and folded into a comparison. Memory stays at a page per shard.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use super::GatewayState;
use super::routing::ViewRoute;
use matview_api::gateway::{ComparedRevision, RevisionComparison};
use matview_api::problem::Problem;
use matview_engine::compare::{Comparison, RowSummary};
use matview_engine::keyed_merge::KeyedMerge;

/// Rows per shard page.
const PAGE: usize = 500;
/// Longest wait for one page.
const PAGE_DEADLINE: Duration = Duration::from_secs(30);

pub async fn compare_revisions(
    State(st): State<Arc<GatewayState>>,
    Path((ns, name, revision)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Json<RevisionComparison>, Problem> {
    let caller = st.auth.authenticate(&headers).await?;
    // Every row of two revisions is read: as much as listing the view.
    st.auth.require(&caller, &ns, &name, "list").await?;
    let serving = st.target(&ns, &name).await?.route;
    let candidate = match st.directory.pending_route(&ns, &name) {
        Some(route) if route.revision == revision => route,
        pending => {
            let waiting = pending.map_or("none".to_string(), |r| r.revision.clone());
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "no such pending revision",
                format!(
                    "revision {revision} of view {ns}/{name} is not waiting for promotion (pending: {waiting}; serving: {})",
                    serving.revision
                ),
            ));
        }
    };
    let mut a = RevisionRows::new(&serving);
    let mut b = RevisionRows::new(&candidate);
    let mut comparison = Comparison::default();
    let (mut x, mut y) = (a.next(&st).await?, b.next(&st).await?);
    loop {
        match (&x, &y) {
            (None, None) => break,
            (Some((ka, ra)), Some((kb, rb))) if ka == kb => {
                comparison.add(Some(ra), Some(rb));
                (x, y) = (a.next(&st).await?, b.next(&st).await?);
            }
            (Some((ka, ra)), Some((kb, _))) if ka < kb => {
                comparison.add(Some(ra), None);
                x = a.next(&st).await?;
            }
            (Some((_, ra)), None) => {
                comparison.add(Some(ra), None);
                x = a.next(&st).await?;
            }
            (_, Some((_, rb))) => {
                comparison.add(None, Some(rb));
                y = b.next(&st).await?;
            }
        }
    }
    let consistent = a.steady() && b.steady() && a.last == b.last;
    Ok(Json(RevisionComparison::of(
        comparison,
        a.side(),
        b.side(),
        consistent,
    )))
}

/// One revision's rows in key order, its shards' parts merged.
struct RevisionRows {
    route: Arc<ViewRoute>,
    merge: KeyedMerge<RowSummary>,
    /// Per shard, the key its next page starts after.
    after: Vec<Option<String>>,
    /// Positions of the first and the latest page (all shards together).
    first: BTreeMap<i32, i64>,
    last: BTreeMap<i32, i64>,
}

impl RevisionRows {
    fn new(route: &Arc<ViewRoute>) -> RevisionRows {
        RevisionRows {
            route: route.clone(),
            merge: KeyedMerge::new(route.shards.len()),
            after: vec![None; route.shards.len()],
            first: BTreeMap::new(),
            last: BTreeMap::new(),
        }
    }

    async fn next(
        &mut self,
        st: &Arc<GatewayState>,
    ) -> Result<Option<(String, RowSummary)>, Problem> {
        loop {
            if let Some((key, parts)) = self.merge.next_key() {
                let mut row = RowSummary::default();
                for part in parts.into_iter().flatten() {
                    row.merge(part);
                }
                return Ok(Some((key, row)));
            }
            let Some(shard) = self.merge.wants() else {
                return Ok(None);
            };
            self.fetch(st, shard).await?;
        }
    }

    async fn fetch(&mut self, st: &Arc<GatewayState>, shard: usize) -> Result<(), Problem> {
        let after = self.after[shard].clone();
        let call = |_, url: String| {
            let (st, after) = (st.clone(), after.clone());
            async move { st.readers.records(&url, after.as_deref(), PAGE).await }
        };
        let deadline = Instant::now() + PAGE_DEADLINE;
        let shards = [shard as u32];
        let mut answers = st.ask(&self.route, &shards, deadline, call).await?;
        let Some((_, answer)) = answers.pop() else {
            return Err(Problem::internal("a shard gave no answer"));
        };
        let page = answer.body;
        for (partition, offset) in &page.positions {
            self.first.entry(*partition).or_insert(*offset);
            self.last.insert(*partition, *offset);
        }
        let done = page.next.is_none();
        self.after[shard] = page.next.clone();
        let mut rows = Vec::with_capacity(page.rows.len());
        for row in page.rows {
            rows.push(
                row.summary()
                    .map_err(|e| Problem::internal(e.to_string()))?,
            );
        }
        self.merge
            .push(shard, rows, done)
            .map_err(|e| Problem::internal(e.to_string()))
    }

    /// Nothing moved between the first page and the last.
    fn steady(&self) -> bool {
        self.first == self.last
    }

    fn side(&self) -> ComparedRevision {
        ComparedRevision {
            revision: self.route.revision.clone(),
            positions: self.last.clone(),
        }
    }
}
