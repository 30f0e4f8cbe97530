//! `GET …/views/{name}/revisions`: the serving revision, the one being built
//! beside it with its progress (asked of every pod of it, ready or not: a
//! revision still catching up is not ready), and what its spec changes.
//! Each spec is the one its projectors run (the directory's revision info,
//! cached per revision), not the view's current spec, which may have moved on.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use super::GatewayState;
use super::routing::ViewRoute;
use matview_api::figures::ProjectorFigures;
use matview_api::problem::Problem;
use matview_api::projector::Positions;
use matview_api::revisions::{
    BuildingReplica, BuildingRevision, ViewRevisions, build_progress, spec_changes,
};

pub async fn view_revisions(
    State(st): State<Arc<GatewayState>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<ViewRevisions>, Problem> {
    let caller = st.auth.authenticate(&headers).await?;
    // What the view runs and how far a new revision is: as much as its summary.
    st.auth.require(&caller, &ns, &name, "get").await?;
    let (serving, _) = st.route_at(&ns, &name, None)?;
    let serving_spec = spec_of(&st, &serving).await.ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "view unavailable",
            format!("no projector of revision {} answered", serving.revision),
        )
    })?;
    let Some(route) = st
        .directory
        .building_route(&ns, &name)
        .filter(|b| b.revision != serving.revision)
    else {
        return Ok(Json(ViewRevisions {
            serving: serving.revision.clone(),
            building: None,
            changes: Vec::new(),
        }));
    };
    let building = building_revision(&st, &ns, &name, &route).await;
    let changes = match spec_of(&st, &route).await {
        Some(building_spec) => spec_changes(&serving_spec, &building_spec),
        None => Vec::new(),
    };
    Ok(Json(ViewRevisions {
        serving: serving.revision.clone(),
        building: Some(building),
        changes,
    }))
}

/// The spec a revision's projectors run, as JSON; `None` if none answered.
async fn spec_of(st: &GatewayState, route: &ViewRoute) -> Option<serde_json::Value> {
    let info = st
        .directory
        .revision_info(&st.projectors, route)
        .await
        .ok()?;
    serde_json::to_value(&info.spec).ok()
}

/// How far the revision being built is, from every pod of it.
async fn building_revision(
    st: &Arc<GatewayState>,
    ns: &str,
    name: &str,
    route: &ViewRoute,
) -> BuildingRevision {
    let waits_for_promotion = st
        .directory
        .view(ns, name)
        .and_then(|v| v.status.as_ref()?.rollout.as_ref()?.pending.clone())
        .is_some_and(|p| p.revision == route.revision);
    let (answered, unanswered) = ask_every_pod(st, route).await;
    let replicas: Vec<BuildingReplica<'_>> = answered
        .iter()
        .map(|(shard, positions, figures)| BuildingReplica {
            shard: *shard,
            positions,
            figures,
        })
        .collect();
    let rows_add_up = route.keyed_by_row_key || route.shards.len() <= 1;
    let progress = build_progress(route.shards.len() as u32, rows_add_up, &replicas);
    BuildingRevision {
        revision: route.revision.clone(),
        waits_for_promotion,
        caught_up: progress.caught_up,
        percent_applied: progress.percent_applied,
        lag: progress.lag,
        events_per_second: progress.events_per_second,
        eta_seconds: progress.eta_seconds,
        rows: progress.rows,
        unanswered,
    }
}

type Answered = Vec<(u32, Positions, ProjectorFigures)>;

/// Every pod's positions and figures, in parallel; those that did not
/// answer, with why.
async fn ask_every_pod(st: &Arc<GatewayState>, route: &ViewRoute) -> (Answered, Vec<String>) {
    let asks = route.endpoints().map(|(shard, endpoint)| {
        let st = st.clone();
        async move {
            let asked = async {
                let positions = st.projectors.positions(&endpoint.url).await?;
                let figures = st.projectors.figures(&endpoint.url).await?;
                Ok::<_, matview_api::ClientError>((positions, figures))
            };
            (shard, endpoint.pod.clone(), asked.await)
        }
    });
    let mut answered = Vec::new();
    let mut unanswered = Vec::new();
    for (shard, pod, answer) in futures::future::join_all(asks).await {
        match answer {
            Ok((positions, figures)) => answered.push((shard, positions, figures)),
            Err(e) => unanswered.push(format!("{pod}: {}", matview_api::errors::chain(&e))),
        }
    }
    (answered, unanswered)
}
