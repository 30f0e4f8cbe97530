//! `GET …/views/{name}/figures`: every ready replica's recent figures
//! (events/s, records/s, lag, freshness), asked in parallel, for the
//! console's charts. A replica that does not answer is listed with why.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;

use super::GatewayState;
use matview_api::figures::{ReplicaFigures, ViewFigures};
use matview_api::problem::{Problem, TypedQuery};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiguresParams {
    /// The serving revision (default) or the one waiting for promotion.
    revision: Option<String>,
}

pub async fn view_figures(
    State(st): State<Arc<GatewayState>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    TypedQuery(params): TypedQuery<FiguresParams>,
) -> Result<Json<ViewFigures>, Problem> {
    let caller = st.auth.authenticate(&headers).await?;
    // Figures say how the view is doing, not what it holds: as much as its summary.
    st.auth.require(&caller, &ns, &name, "get").await?;
    let (route, _) = st.route_at(&ns, &name, params.revision.as_deref())?;
    let asks = route.endpoints().map(|(shard, endpoint)| {
        let st = st.clone();
        async move {
            let (figures, error) = match st.projectors.figures(&endpoint.url).await {
                Ok(f) => (Some(f), None),
                Err(e) => (None, Some(matview_api::errors::chain(&e))),
            };
            ReplicaFigures {
                shard,
                pod: endpoint.pod.clone(),
                figures,
                error,
            }
        }
    });
    let replicas = futures::future::join_all(asks).await;
    Ok(Json(ViewFigures::gather(
        route.revision.clone(),
        route.shards.len() as u32,
        route.keyed_by_row_key,
        replicas,
    )))
}
