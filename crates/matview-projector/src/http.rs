//! The projector's internal HTTP API, used by the gateway and the operator.
//!
//! - `GET /v1/rows/{key}`: one row
//! - `GET /v1/groups/{group}/rows?after=KEY&limit=N`: rows with records in a group, by key
//! - `GET /v1/groups/{group}/keys?after=KEY&limit=N`: the keys of that page only
//! - `GET /v1/keys?after=KEY&limit=N`: row keys in order
//! - `GET /v1/positions`: applied offset, high-water mark and lag per partition
//! - `GET /v1/watch`: row changes as server-sent events (`Last-Event-ID` resumes)
//! - `GET /v1/dead-letters?limit=N`: the latest letters of the dead-letter topic
//! - `GET /v1/troubles?after=V`: waits until the troubles' version is not V
//! - `GET /v1/info`, `GET /v1/stats`, `GET /v1/figures`, `/healthz`, `/readyz`, `/metrics`
//!
//! Bodies are the typed contracts of [`matview_api::projector`].

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use serde_json::json;

use super::changes::{Change, From, Resume};
use super::{Shared, reads};
use matview_api::dead_letters::{DeadLetterQuery, DeadLetters};
use matview_api::figures::{GroupSize, ProjectorFigures};
pub use matview_api::problem::Problem;
use matview_api::problem::TypedQuery;
use matview_api::projector::{
    PartitionPosition, Positions, ProjectorInfo, ProjectorStats, TroublesQuery, TroublesVersion,
    WatchEvent, format_positions, parse_positions,
};

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/rows/{key}", get(reads::get_row))
        .route("/v1/lookup", post(reads::lookup))
        .route("/v1/groups/{group}/rows", get(reads::scan_group))
        .route("/v1/groups/{group}/keys", get(reads::scan_group_keys))
        .route("/v1/keys", get(reads::keys))
        .route("/v1/records", get(reads::records))
        .route("/v1/positions", get(positions))
        .route("/v1/watch", get(watch))
        .route("/v1/info", get(info))
        .route("/v1/stats", get(stats))
        .route("/v1/troubles", get(troubles))
        .route("/v1/figures", get(figures))
        .route("/v1/dead-letters", get(dead_letters))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not found", "no such endpoint") })
        .with_state(shared)
}

async fn positions(State(shared): State<Arc<Shared>>) -> Json<Positions> {
    let (applied, high) = shared.positions();
    let low = shared.low_watermarks();
    let partitions = high
        .iter()
        .map(|(&partition, &high_watermark)| {
            let applied = applied.get(&partition).copied().unwrap_or(0);
            PartitionPosition {
                partition,
                applied,
                high_watermark,
                lag: (high_watermark - applied).max(0),
                low_watermark: low.get(&partition).copied().unwrap_or(0),
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
        rows: m.rows(),
        records_applied: m.records_applied(),
        events_consumed: m.events(),
        dead_lettered: m.dead_lettered_total(),
        lag: m.total_lag(),
        ready: shared.readiness().is_ok(),
        source_error: shared.source_error(),
        store_error: shared.store_error(),
        schema_registry_error: shared.registry_error(),
        schema_registry_refused: shared.registry_refused(),
        under_replicated: shared.under_replicated(),
        troubles_version: shared.troubles_version(),
    })
}

/// How long `GET /v1/troubles?after=` waits for a change.
const TROUBLES_WAIT: Duration = Duration::from_secs(25);

async fn troubles(
    State(shared): State<Arc<Shared>>,
    TypedQuery(query): TypedQuery<TroublesQuery>,
) -> Json<TroublesVersion> {
    let version = match query.after {
        Some(after) => shared.troubles_after(after, TROUBLES_WAIT).await,
        None => shared.troubles_version(),
    };
    Json(TroublesVersion { version })
}

async fn dead_letters(
    State(shared): State<Arc<Shared>>,
    TypedQuery(query): TypedQuery<DeadLetterQuery>,
) -> Result<Json<DeadLetters>, Problem> {
    let limit = query.letters()?;
    shared
        .dead_letter_tail
        .latest(limit)
        .await
        .map(Json)
        .map_err(|e| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "dead letters unavailable",
                matview_api::errors::chain(&e),
            )
        })
}

async fn figures(State(shared): State<Arc<Shared>>) -> Json<ProjectorFigures> {
    let m = &shared.metrics;
    let (records, sizes) = shared.store.sizes().unwrap_or_default();
    Json(ProjectorFigures {
        revision: shared.view.revision.clone(),
        shard: shared.shard,
        rows: m.rows(),
        records,
        groups: shared
            .view
            .compiled
            .groups
            .iter()
            .zip(sizes.rows.iter().zip(&sizes.records))
            .map(|(group, (&rows, &records))| GroupSize {
                group: group.clone(),
                rows,
                records,
            })
            .collect(),
        events_total: m.events(),
        records_total: m.records_applied(),
        dead_lettered_total: m.dead_lettered_total(),
        lag_by_partition: m.lag_by_partition(),
        interval_ms: crate::figures::INTERVAL_MS as u64,
        samples: m.figures(),
    })
}

/// Ready means "serves reads": a broker outage or a full disk does not stop
/// that (the store answers), so they are reported here but leave the
/// replica routable.
async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.readiness() {
        Ok(()) => {
            let mut body = json!({"status": "ready"});
            if let Some(error) = shared.source_error() {
                body["source"] = json!({"reachable": false, "error": error});
            }
            if let Some(error) = shared.store_error() {
                body["store"] = json!({"writable": false, "error": error});
            }
            if let Some(error) = shared.registry_error() {
                body["schemaRegistry"] = json!({"reachable": false, "refused": shared.registry_refused(), "error": error});
            }
            Json(body).into_response()
        }
        Err(why) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not ready", why).into_response(),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.render(),
    )
        .into_response()
}

/// Where a watch resumes: `from=p:o,…` (positions, any replica) or the
/// `Last-Event-ID` of this process's events.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchQuery {
    from: Option<String>,
}

fn watch_from(headers: &HeaderMap, query: &WatchQuery) -> Result<From, Problem> {
    if let Some(text) = &query.from {
        let pairs = parse_positions(text).ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "bad from",
                "from must be partition:offset pairs, comma-separated",
            )
        })?;
        return Ok(From::Positions(pairs.into_iter().collect()));
    }
    match headers.get("last-event-id") {
        None => Ok(From::Now),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .map(From::Seq)
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad Last-Event-ID",
                    "must be a sequence number",
                )
            }),
    }
}

/// One change as an SSE event: the changed rows, and the positions after it.
async fn change_event(shared: Arc<Shared>, change: Change) -> Event {
    let changed = change.rows.clone();
    let reader = shared.clone();
    let read = tokio::task::spawn_blocking(move || {
        let mut rows = Vec::new();
        let mut removed = Vec::new();
        for row in changed.iter() {
            match reads::read_view(&reader, &row.key) {
                Ok(Some(view)) => rows.push(view),
                Ok(None) => removed.push(row.key.clone()),
                // Unreadable now: the watcher's next read of it says why.
                Err(_) => {}
            }
        }
        (rows, removed)
    })
    .await;
    let (rows, removed) = read.unwrap_or_default();
    let groups = &shared.view.compiled.groups;
    let mut left: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in change.rows.iter() {
        for g in &row.left_groups {
            if let Some(name) = groups.get(usize::from(*g)) {
                left.entry(name.clone()).or_default().push(row.key.clone());
            }
        }
    }
    let body = WatchEvent {
        seq: change.seq,
        rows,
        removed,
        left,
        positions: format_positions(change.positions.iter()),
    };
    Event::default()
        .event("rows")
        .id(change.seq.to_string())
        .data(serde_json::to_string(&body).unwrap_or_default())
}

fn reset_event(shared: &Shared, seq: u64) -> Event {
    let (applied, _) = shared.positions();
    let body = WatchEvent {
        seq,
        rows: Vec::new(),
        removed: Vec::new(),
        left: BTreeMap::new(),
        positions: format_positions(&applied),
    };
    Event::default()
        .event("reset")
        .id(seq.to_string())
        .data(serde_json::to_string(&body).unwrap_or_default())
}

async fn watch(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    TypedQuery(query): TypedQuery<WatchQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let from = watch_from(&headers, &query)?;
    let (rx, resume, current) = shared.feed.subscribe(&from);
    let (first, reset) = match resume {
        Resume::Replay(changes) => (changes, false),
        Resume::TooOld => (Vec::new(), true),
    };
    let replayed_up_to = first.last().map(|c| c.seq).unwrap_or(current);
    let live = changes_from(rx)
        .filter(move |c| std::future::ready(c.as_ref().is_none_or(|c| c.seq > replayed_up_to)));
    let changes = futures::stream::iter(first.into_iter().map(Some)).chain(live);
    let start = reset.then(|| reset_event(&shared, current));
    let events = futures::stream::iter(start).chain(changes.then(move |change| {
        let shared = shared.clone();
        async move {
            match change {
                Some(change) => change_event(shared, change).await,
                // The watcher fell behind the broadcast: say so, never skip silently.
                None => reset_event(&shared, current),
            }
        }
    }));
    Ok(Sse::new(events.map(Ok)).keep_alive(KeepAlive::default()))
}

/// Broadcast receiver as a stream; `None` marks changes a lagging watcher missed.
fn changes_from(
    rx: tokio::sync::broadcast::Receiver<Change>,
) -> impl Stream<Item = Option<Change>> {
    futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(change) => Some((Some(change), rx)),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Some((None, rx)),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
        }
    })
}
