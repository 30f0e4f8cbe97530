//! `GET …/views/{name}/revisions`: the serving revision, the one being built
//! beside it with its progress (asked of every pod of it, ready or not: a
//! revision still catching up is not ready), and what its spec changes.
//! Each spec is the one its projectors run (`/v1/info`), not the view's
//! current spec, which may have moved on.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use super::GatewayState;
use super::routing::ViewRoute;
use matview_api::problem::Problem;
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
    let serving_spec = first_spec(&st, &serving).await.ok_or_else(|| {
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
    let view = st.directory.view(&ns, &name);
    let waits_for_promotion = view
        .as_ref()
        .and_then(|v| {
            v.status
                .as_ref()?
                .rollout
                .as_ref()?
                .pending
                .as_ref()
                .cloned()
        })
        .is_some_and(|p| p.revision == route.revision);

    let asks = route
        .shards
        .iter()
        .enumerate()
        .flat_map(|(shard, replicas)| {
            replicas
                .iter()
                .map(move |endpoint| (shard as u32, endpoint))
        });
    let answers = futures::future::join_all(asks.map(|(shard, endpoint)| {
        let st = st.clone();
        async move {
            let asked = async {
                let positions = st.projectors.positions(&endpoint.url).await?;
                let figures = st.projectors.figures(&endpoint.url).await?;
                Ok::<_, matview_api::ClientError>((positions, figures))
            };
            (shard, endpoint.pod.clone(), asked.await)
        }
    }))
    .await;
    let mut unanswered = Vec::new();
    let mut answered = Vec::new();
    for (shard, pod, answer) in answers {
        match answer {
            Ok((positions, figures)) => answered.push((shard, positions, figures)),
            Err(e) => unanswered.push(format!("{pod}: {}", matview_api::errors::chain(&e))),
        }
    }
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
    let building_spec = first_spec(&st, &route).await;
    let changes = match (&building_spec, serde_json::to_value(&serving_spec)) {
        (Some(building), Ok(serving)) => serde_json::to_value(building)
            .map(|building| spec_changes(&serving, &building))
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    Ok(Json(ViewRevisions {
        serving: serving.revision.clone(),
        building: Some(BuildingRevision {
            revision: route.revision.clone(),
            waits_for_promotion,
            caught_up: progress.caught_up,
            percent_applied: progress.percent_applied,
            lag: progress.lag,
            events_per_second: progress.events_per_second,
            eta_seconds: progress.eta_seconds,
            rows: progress.rows,
            unanswered,
        }),
        changes,
    }))
}

/// The spec a revision's projectors run: the first that answers.
async fn first_spec(
    st: &GatewayState,
    route: &ViewRoute,
) -> Option<matview_crd::MaterializedViewSpec> {
    for endpoint in route.shards.iter().flatten() {
        if let Ok(info) = st.projectors.info(&endpoint.url).await {
            return Some(info.spec);
        }
    }
    None
}
