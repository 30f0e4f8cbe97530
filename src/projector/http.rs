//! The projector's internal HTTP API, used by the gateway and the operator.
//!
//! - `GET /v1/rows/{key}`: one row
//! - `GET /v1/groups/{group}/rows?after=KEY&limit=N`: rows with records in a group, by key
//! - `GET /v1/keys?after=KEY&limit=N`: row keys in order
//! - `GET /v1/positions`: applied offset, high-water mark and lag per partition
//! - `GET /v1/watch`: row changes as server-sent events (`Last-Event-ID` resumes)
//! - `GET /v1/info`, `GET /v1/stats`, `/healthz`, `/readyz`, `/metrics`
//!
//! Bodies are the typed contracts of [`crate::api::projector`].

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use serde_json::json;

use super::changes::{Change, Resume};
use super::{Shared, reads};
pub use crate::api::problem::Problem;
use crate::api::projector::{PartitionPosition, Positions, ProjectorInfo, ProjectorStats};

pub(super) fn internal(e: impl std::fmt::Display) -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error",
        e.to_string(),
    )
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/rows/{key}", get(reads::get_row))
        .route("/v1/lookup", post(reads::lookup))
        .route("/v1/groups/{group}/rows", get(reads::scan_group))
        .route("/v1/keys", get(reads::keys))
        .route("/v1/positions", get(positions))
        .route("/v1/watch", get(watch))
        .route("/v1/info", get(info))
        .route("/v1/stats", get(stats))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not found", "no such endpoint") })
        .with_state(shared)
}

async fn positions(State(shared): State<Arc<Shared>>) -> Json<Positions> {
    let (applied, high) = shared.positions();
    let partitions = high
        .iter()
        .map(|(&partition, &high_watermark)| {
            let applied = applied.get(&partition).copied().unwrap_or(0);
            PartitionPosition {
                partition,
                applied,
                high_watermark,
                lag: (high_watermark - applied).max(0),
            }
        })
        .collect();
    Json(Positions {
        topic: shared.view.topic.clone(),
        shard: shared.shard,
        shards: shared.view.shards,
        partitions,
    })
}

async fn info(State(shared): State<Arc<Shared>>) -> Json<ProjectorInfo> {
    let view = &shared.view;
    Json(ProjectorInfo {
        view: view.name.clone(),
        namespace: view.namespace.clone(),
        revision: view.revision.clone(),
        shard: shared.shard,
        shards: view.shards,
        topic: view.topic.clone(),
        dead_letter_topic: view.dead_letter_topic.clone(),
        consumer_group: shared.group_id.clone(),
        groups: view.compiled.groups.clone(),
        partitions: shared.partition_count(),
        spec: view.spec.clone(),
    })
}

async fn stats(State(shared): State<Arc<Shared>>) -> Json<ProjectorStats> {
    let m = &shared.metrics;
    Json(ProjectorStats {
        revision: shared.view.revision.clone(),
        shard: shared.shard,
        rows: m.rows.load(Relaxed),
        records_applied: m.records_applied.load(Relaxed),
        events_consumed: m.events.load(Relaxed),
        dead_lettered: m.dead_lettered_total(),
        lag: m.total_lag(),
        ready: shared.readiness().is_ok(),
    })
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.readiness() {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(why) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not ready", why).into_response(),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
        .into_response()
}

async fn watch(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let after = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "bad Last-Event-ID",
                        "must be a sequence number",
                    )
                })?,
        ),
    };
    let (rx, resume, current) = shared.feed.subscribe(after);
    let first: Vec<Change> = match resume {
        Resume::Replay(changes) => changes,
        Resume::TooOld => Vec::new(),
    };
    let reset = after.is_some() && first.is_empty() && after < Some(current);
    let replayed_up_to = first.last().map(|c| c.seq).unwrap_or(current);
    let live = tokio_stream_from(rx).filter(move |c| std::future::ready(c.seq > replayed_up_to));
    let changes = futures::stream::iter(first).chain(live);
    let reset_event = reset.then(|| {
        Ok(Event::default()
            .event("reset")
            .id(current.to_string())
            .data("{}"))
    });
    let events = futures::stream::iter(reset_event).chain(changes.then(move |change| {
        let shared = shared.clone();
        async move {
            let rows = change.rows.clone();
            let views = tokio::task::spawn_blocking(move || {
                rows.iter()
                    .filter_map(|k| reads::read_view(&shared, k).ok().flatten())
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            let data = json!({"seq": change.seq, "rows": views}).to_string();
            Ok(Event::default()
                .event("rows")
                .id(change.seq.to_string())
                .data(data))
        }
    }));
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Broadcast receiver as a stream; a lagging watcher skips to the newest changes.
fn tokio_stream_from(rx: tokio::sync::broadcast::Receiver<Change>) -> impl Stream<Item = Change> {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(change) => return Some((change, rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
