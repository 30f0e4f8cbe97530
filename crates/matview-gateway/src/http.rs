//! The gateway's router: the views a caller may read, one view's summary,
//! row reads ([`super::reads`]), health, readiness and metrics.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router, middleware};
use serde_json::json;

use super::GatewayState;
use super::routing::{ViewRoute, serving_revision};
use super::{reads, scans};
use matview_api::gateway::{ViewList, ViewSummary};
use matview_api::problem::Problem;
use matview_api::view::ValidatedView;
use matview_crd::MaterializedView;

pub fn router(state: Arc<GatewayState>) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .route("/v1/views", get(list_views))
        .route("/v1/namespaces/{ns}/views/{name}", get(get_view))
        .route(
            "/v1/namespaces/{ns}/views/{name}/rows/{key}",
            get(reads::get_row),
        )
        .route(
            "/v1/namespaces/{ns}/views/{name}/groups/{group}/rows",
            get(scans::scan_group),
        )
        .route(
            "/v1/namespaces/{ns}/views/{name}/watch",
            get(super::watch::watch),
        )
        .route(
            "/v1/namespaces/{ns}/views/{name}/revisions/{revision}/comparison",
            get(super::comparison::compare_revisions),
        )
        .route(
            "/v1/namespaces/{ns}/views/{name}/figures",
            get(super::figures::view_figures),
        )
        .route(
            "/v1/namespaces/{ns}/views/{name}/revisions",
            get(super::revisions::view_revisions),
        )
        .route(
            "/v1/namespaces/{ns}/views/{name}/dead-letters",
            get(super::dead_letters::view_dead_letters),
        )
        .route("/", get(crate::web::index))
        .route("/console/{file}", get(crate::web::asset))
        .route(
            "/openapi.json",
            get(|| async { Json(matview_api::openapi::gateway_document()) }),
        )
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not found", "no such endpoint") })
        .layer(middleware::from_fn_with_state(
            metrics,
            super::metrics::observe,
        ))
        .with_state(state)
}

/// Pure: what a caller sees of a view.
pub fn summary(view: &MaterializedView, route: Option<&ViewRoute>) -> ViewSummary {
    let namespace = view.metadata.namespace.clone().unwrap_or_default();
    let name = view.metadata.name.clone().unwrap_or_default();
    let compiled = ValidatedView::new(view).ok().map(|v| v.compiled);
    let status = view.status.as_ref();
    ViewSummary {
        path: format!("/v1/namespaces/{namespace}/views/{name}"),
        topic: view.spec.source.kafka.topic.clone(),
        revision: serving_revision(view),
        phase: status.and_then(|s| s.phase).map(|p| p.to_string()),
        serving: route.is_some_and(|r| r.dark_shards().is_empty()),
        groups: compiled
            .as_ref()
            .map(|c| c.groups.clone())
            .unwrap_or_default(),
        fields: compiled
            .map(|c| c.fields.iter().map(|f| f.name.clone()).collect())
            .unwrap_or_default(),
        shards: matview_api::view::shard_count(view.spec.shards),
        keyed_by_row_key: view.spec.source.keyed_by_row_key,
        rows: status.and_then(|s| s.rows),
        lag: status.and_then(|s| s.lag),
        pending: status
            .and_then(|s| s.rollout.as_ref())
            .and_then(|r| r.pending.clone()),
        namespace,
        name,
    }
}

async fn list_views(
    State(st): State<Arc<GatewayState>>,
    headers: HeaderMap,
) -> Result<Json<ViewList>, Problem> {
    let caller = st.auth.authenticate(&headers).await?;
    let mut views = Vec::new();
    for view in st.directory.views() {
        let ns = view.metadata.namespace.clone().unwrap_or_default();
        let name = view.metadata.name.clone().unwrap_or_default();
        if st.auth.may(&caller, &ns, &name, "list").await? {
            views.push(summary(&view, st.directory.route(&ns, &name).as_deref()));
        }
    }
    Ok(Json(ViewList { views }))
}

async fn get_view(
    State(st): State<Arc<GatewayState>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<ViewSummary>, Problem> {
    let caller = st.auth.authenticate(&headers).await?;
    st.auth.require(&caller, &ns, &name, "get").await?;
    let view = st.directory.view(&ns, &name).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "no such view",
            format!("no MaterializedView {ns}/{name}"),
        )
    })?;
    Ok(Json(summary(
        &view,
        st.directory.route(&ns, &name).as_deref(),
    )))
}

async fn readyz(State(st): State<Arc<GatewayState>>) -> Response {
    if st.directory.synced() {
        Json(json!({"status": "ready"})).into_response()
    } else if st.directory.crd_missing() {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready",
            matview_crd::CRD_MISSING,
        )
        .into_response()
    } else {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready",
            "still listing views and projector pods",
        )
        .into_response()
    }
}

async fn render_metrics(State(st): State<Arc<GatewayState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.render(),
    )
        .into_response()
}
