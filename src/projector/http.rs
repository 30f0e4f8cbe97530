//! The projector's internal HTTP API, used by the gateway and the operator.
//!
//! - `GET /v1/rows/{key}`: one row
//! - `GET /v1/groups/{group}/rows?after=KEY&limit=N`: rows with records in a group, by key
//! - `GET /v1/keys?after=KEY&limit=N`: row keys in order
//! - `GET /v1/positions`: applied offset, high-water mark and lag per partition
//! - `GET /v1/watch`: row changes as server-sent events (`Last-Event-ID` resumes)
//! - `GET /v1/info`, `/healthz`, `/readyz`, `/metrics`

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use serde_json::json;

use super::Shared;
use super::changes::{Change, Resume};
use crate::engine::RowView;

const MAX_SCAN_LIMIT: usize = 1000;

/// An RFC 9457 problem response.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    title: &'static str,
    detail: String,
}

impl Problem {
    fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            title,
            detail: detail.into(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({"type": "about:blank", "title": self.title, "status": self.status.as_u16(), "detail": self.detail});
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    }
}

fn internal(e: impl std::fmt::Display) -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error",
        e.to_string(),
    )
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/rows/{key}", get(get_row))
        .route("/v1/groups/{group}/rows", get(scan_group))
        .route("/v1/keys", get(keys))
        .route("/v1/positions", get(positions))
        .route("/v1/watch", get(watch))
        .route("/v1/info", get(info))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not found", "no such endpoint") })
        .with_state(shared)
}

fn read_view(shared: &Shared, key: &str) -> Result<Option<RowView>, Problem> {
    Ok(shared
        .store
        .row(key)
        .map_err(internal)?
        .map(|row| shared.view.view(key, &row)))
}

async fn get_row(
    State(shared): State<Arc<Shared>>,
    Path(key): Path<String>,
) -> Result<Json<RowView>, Problem> {
    let lookup = key.clone();
    let found = tokio::task::spawn_blocking(move || read_view(&shared, &lookup))
        .await
        .map_err(internal)??;
    found.map(Json).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "no such row",
            format!("no record has key {key:?} (yet)"),
        )
    })
}

async fn scan_group(
    State(shared): State<Arc<Shared>>,
    Path(group): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let group_index = shared
        .view
        .groups
        .iter()
        .position(|g| *g == group)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::NOT_FOUND,
                "no such group",
                format!("groups are {:?}", shared.view.groups),
            )
        })?;
    let limit = match params.get("limit") {
        None => 100,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_SCAN_LIMIT).contains(n))
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad limit",
                    format!("limit must be 1..={MAX_SCAN_LIMIT}, got {l:?}"),
                )
            })?,
    };
    if let Some(unknown) = params.keys().find(|k| *k != "limit" && *k != "after") {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "unknown parameter",
            format!("{unknown:?}; use after and limit"),
        ));
    }
    let after = params.get("after").cloned();
    tokio::task::spawn_blocking(move || {
        let keys = shared
            .store
            .keys_in_group(group_index, after.as_deref(), limit)
            .map_err(internal)?;
        let mut rows = Vec::with_capacity(keys.len());
        for key in &keys {
            if let Some(view) = read_view(&shared, key)? {
                rows.push(view);
            }
        }
        let next = if keys.len() == limit {
            keys.last().cloned()
        } else {
            None
        };
        Ok(Json(json!({"rows": rows, "next": next})).into_response())
    })
    .await
    .map_err(internal)?
}

/// Row keys in order, for counting distinct rows across shards.
async fn keys(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let limit = match params.get("limit") {
        None => 10_000,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100_000).contains(n))
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad limit",
                    format!("limit must be 1..=100000, got {l:?}"),
                )
            })?,
    };
    let after = params.get("after").cloned();
    tokio::task::spawn_blocking(move || {
        let keys = shared
            .store
            .keys(None, after.as_deref(), limit)
            .map_err(internal)?;
        let next = if keys.len() == limit {
            keys.last().cloned()
        } else {
            None
        };
        Ok(Json(json!({"keys": keys, "next": next})).into_response())
    })
    .await
    .map_err(internal)?
}

async fn positions(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let (applied, high) = shared.positions();
    let partitions: Vec<_> = high
        .iter()
        .map(|(p, h)| {
            let a = applied.get(p).copied().unwrap_or(0);
            json!({"partition": p, "applied": a, "highWatermark": h, "lag": (h - a).max(0)})
        })
        .collect();
    Json(
        json!({"topic": shared.topic, "shard": shared.shard, "shards": shared.shards, "partitions": partitions}),
    )
}

async fn info(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(json!({
        "view": shared.name, "namespace": shared.namespace, "revision": shared.revision,
        "shard": shared.shard, "shards": shared.shards, "topic": shared.topic,
        "deadLetterTopic": shared.dead_letter_topic, "consumerGroup": shared.group_id,
        "groups": shared.view.groups,
    }))
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
                    .filter_map(|k| read_view(&shared, k).ok().flatten())
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
