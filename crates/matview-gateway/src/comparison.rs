//! `GET …/views/{name}/revisions/{rev}/comparison`: the serving revision
//! beside the one waiting for promotion, from both revisions' stores
//! (`matview_api::revision_rows`), each shard reached through the gateway's
//! replicas.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use super::GatewayState;
use super::routing::ViewRoute;
use matview_api::gateway::RevisionComparison;
use matview_api::problem::Problem;
use matview_api::records::RecordsPage;
use matview_api::revision_rows::{PAGE, RevisionRows, ShardPages, compare};
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
    let serving_rows = RevisionRows::new(
        &serving.revision,
        serving.shards.len(),
        Shards::of(&st, &serving),
    );
    let candidate_rows = RevisionRows::new(
        &candidate.revision,
        candidate.shards.len(),
        Shards::of(&st, &candidate),
    );
    Ok(Json(compare(serving_rows, candidate_rows).await?))
}

/// A revision's shards as the gateway reaches them (failover, hedging).
struct Shards {
    st: Arc<GatewayState>,
    route: Arc<ViewRoute>,
}

impl Shards {
    fn of(st: &Arc<GatewayState>, route: &Arc<ViewRoute>) -> Shards {
        Shards {
            st: st.clone(),
            route: route.clone(),
        }
    }
}

impl ShardPages for Shards {
    type Error = Problem;

    async fn page(&self, shard: usize, after: Option<String>) -> Result<RecordsPage, Problem> {
        let call = |_, url: String| {
            let (st, after) = (self.st.clone(), after.clone());
            async move { st.readers.records(&url, after.as_deref(), PAGE).await }
        };
        let deadline = Instant::now() + PAGE_DEADLINE;
        let mut answers = self
            .st
            .ask(&self.route, &[shard as u32], deadline, call)
            .await?;
        match answers.pop() {
            Some((_, answer)) => Ok(answer.body),
            None => Err(Problem::internal("a shard gave no answer")),
        }
    }
}
