//! Live streams (server-sent events) of a view's row changes, for the whole
//! view, one key or one group, merged across shards. The event id is a resume
//! token made of Kafka positions: a client that reconnects with
//! `Last-Event-ID` continues from there on any gateway and any replica; when
//! that cannot be done (too old, or the serving revision changed) it gets an
//! explicit `reset` event and reloads — never a silent gap.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::GatewayState;
use super::coalesce::coalesce;
use super::params::ReadParams;
use super::routing::{ViewRoute, partition_owner};
use super::target::Target;
use super::upstream::{ShardChange, follow_shards};
use matview_api::gateway::StreamEvent;
use matview_api::problem::{Problem, TypedQuery};
use matview_api::projector::{WatchEvent, format_positions, parse_positions};
use matview_engine::RowView;

/// How often a stream checks whether the serving revision changed.
const REVISION_CHECK: Duration = Duration::from_millis(500);
/// What a client is told to wait before reconnecting when the gateway stops.
const RETRY_HINT: Duration = Duration::from_secs(1);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchParams {
    /// Only this row.
    key: Option<String>,
    /// Only rows with records in this group.
    group: Option<String>,
}

#[derive(Debug, Clone)]
enum Filter {
    All,
    Key(String),
    Group(String),
}

impl Filter {
    fn keeps(&self, row: &RowView) -> bool {
        match self {
            Filter::All => true,
            Filter::Key(key) => row.key == *key,
            Filter::Group(group) => row.groups.get(group).is_some_and(|g| {
                g.count.unwrap_or(0) > 0 || g.items.as_ref().is_some_and(|i| !i.is_empty())
            }),
        }
    }
}

pub async fn watch(
    State(st): State<Arc<GatewayState>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    TypedQuery(params): TypedQuery<WatchParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let caller = st.auth.authenticate(&headers).await?;
    st.auth.require(&caller, &ns, &name, "watch").await?;
    let target = st.target(&ns, &name).await?;
    let filter = match (params.key, params.group) {
        (Some(_), Some(_)) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "bad watch",
                "give key or group, not both",
            ));
        }
        (Some(key), None) => Filter::Key(key),
        (None, Some(group)) if target.info.compiled.groups.contains(&group) => Filter::Group(group),
        (None, Some(group)) => {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "no such group",
                format!("{group:?}; groups are {:?}", target.info.compiled.groups),
            ));
        }
        (None, None) => Filter::All,
    };
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(parse_positions)
                .map(|p| p.into_iter().collect::<BTreeMap<_, _>>())
                .ok_or_else(|| {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "bad Last-Event-ID",
                        "send back the id of the last event received, unchanged",
                    )
                })?,
        ),
    };
    let permit = st.streams.clone().try_acquire_owned().map_err(|_| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many streams",
            "this gateway serves its limit of live streams; retry later or on another replica",
        )
    })?;
    // Where the stream starts is fixed before the answer goes out: whatever
    // the client does after seeing the stream open comes later, so it is sent.
    let start = match resume {
        Some(positions) => Start::Resume(positions),
        None => Start::Now(st.current_positions(&target).await?),
    };
    let (tx, rx) = mpsc::channel::<Event>(64);
    tokio::spawn(drive(st, ns, name, filter, start, tx, permit));
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

fn event(kind: &str, positions: &BTreeMap<i32, i64>, data: &StreamEvent) -> Event {
    Event::default()
        .event(kind)
        .id(format_positions(positions))
        .data(serde_json::to_string(data).unwrap_or_default())
}

/// Runs one client's stream until it goes away or the gateway stops.
/// Where a stream starts: after a client's resume token, or now (then a key
/// stream sends the row's current state first).
enum Start {
    Resume(BTreeMap<i32, i64>),
    Now(BTreeMap<i32, i64>),
}

async fn drive(
    st: Arc<GatewayState>,
    ns: String,
    name: String,
    filter: Filter,
    start: Start,
    tx: mpsc::Sender<Event>,
    _permit: OwnedSemaphorePermit,
) {
    let _open = st.metrics.stream_opened();
    let (mut positions, mut snapshot) = match start {
        Start::Resume(positions) => (positions, false),
        Start::Now(positions) => (positions, true),
    };
    loop {
        let target = match st.target(&ns, &name).await {
            Ok(target) => target,
            Err(_) => {
                tokio::select! {
                    _ = tokio::time::sleep(REVISION_CHECK) => continue,
                    _ = tx.closed() => return,
                }
            }
        };
        if std::mem::take(&mut snapshot)
            && let Filter::Key(key) = &filter
            && !send_snapshot(&st, &target, key, &mut positions, &tx).await
        {
            return;
        }
        match follow(&st, &target, &filter, &mut positions, &tx).await {
            Followed::Gone => return,
            Followed::RevisionChanged => snapshot = matches!(filter, Filter::Key(_)),
        }
    }
}

/// The key's current row first, so a page can show it before any change.
async fn send_snapshot(
    st: &Arc<GatewayState>,
    target: &Target,
    key: &str,
    positions: &mut BTreeMap<i32, i64>,
    tx: &mpsc::Sender<Event>,
) -> bool {
    let Ok((row, answers)) = st.read_row(target, key, &ReadParams::default()).await else {
        return true;
    };
    let Ok(row) = row.map(|r| r.into_view()).transpose() else {
        return true;
    };
    for (_, answer) in &answers {
        positions.extend(answer.positions.iter().copied());
    }
    let data = StreamEvent {
        revision: target.route.revision.clone(),
        rows: row.into_iter().collect(),
        removed: Vec::new(),
        reason: None,
    };
    tx.send(event("rows", positions, &data)).await.is_ok()
}

enum Followed {
    Gone,
    RevisionChanged,
}

/// Follows every shard of the target's revision until it stops serving.
async fn follow(
    st: &Arc<GatewayState>,
    target: &Target,
    filter: &Filter,
    positions: &mut BTreeMap<i32, i64>,
    tx: &mpsc::Sender<Event>,
) -> Followed {
    let route = &target.route;
    let shards = route.shards.len() as u32;
    let (shard_tx, mut changes) = mpsc::channel(256);
    let from = |shard: u32| {
        positions
            .iter()
            .filter(|(p, _)| partition_owner(**p, shards) == shard)
            .map(|(p, o)| (*p, *o))
            .collect()
    };
    let followers = follow_shards(st, route, from, &shard_tx);
    drop(shard_tx);
    let switched = || {
        st.directory
            .route(&route.namespace, &route.name)
            .is_some_and(|now| now.revision != route.revision)
    };
    // A ticker, not a sleep per wait: changes that keep coming must not
    // put the check off.
    let mut check =
        tokio::time::interval_at(tokio::time::Instant::now() + REVISION_CHECK, REVISION_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let outcome = loop {
        tokio::select! {
            change = changes.recv() => {
                let Some(first) = change else { break Followed::Gone };
                // The old revision's changes are not what readers get now.
                if switched() {
                    announce_switch(route, positions, tx).await;
                    break Followed::RevisionChanged;
                }
                // Whatever else already arrived goes with it, folded per shard.
                let mut batch = vec![first];
                while batch.len() < MAX_FOLDED {
                    match changes.try_recv() {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                let mut gone = false;
                for (shard, change) in fold(batch) {
                    if !forward(st, target, filter, shard, change, positions, tx).await {
                        gone = true;
                        break;
                    }
                }
                if gone {
                    break Followed::Gone;
                }
            }
            _ = check.tick() => {
                if switched() {
                    announce_switch(route, positions, tx).await;
                    break Followed::RevisionChanged;
                }
            }
            _ = tx.closed() => break Followed::Gone,
            _ = st.shutdown.cancelled() => {
                let _ = tx.send(Event::default().event("shutdown").retry(RETRY_HINT).data("{}")).await;
                break Followed::Gone;
            }
        }
    };
    for follower in followers {
        follower.abort();
    }
    outcome
}

/// Tells the client the revision it followed stopped serving: it reloads.
async fn announce_switch(
    route: &ViewRoute,
    positions: &BTreeMap<i32, i64>,
    tx: &mpsc::Sender<Event>,
) {
    let data = StreamEvent {
        revision: route.revision.clone(),
        rows: Vec::new(),
        removed: Vec::new(),
        reason: Some("revision".into()),
    };
    let _ = tx.send(event("reset", positions, &data)).await;
}

/// Shard changes handled at once by a stream that fell behind.
const MAX_FOLDED: usize = 256;

/// Changes in arrival order, with each shard's consecutive row changes folded
/// into one; a reset ends what is folded before it.
fn fold(changes: Vec<(u32, ShardChange)>) -> Vec<(u32, ShardChange)> {
    let mut out = Vec::new();
    let mut pending: BTreeMap<u32, Vec<WatchEvent>> = BTreeMap::new();
    let flush = |pending: &mut BTreeMap<u32, Vec<WatchEvent>>, out: &mut Vec<_>| {
        for (shard, events) in std::mem::take(pending) {
            if let Some(event) = coalesce(events) {
                let positions = parse_positions(&event.positions)
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                out.push((shard, ShardChange::Rows { event, positions }));
            }
        }
    };
    for (shard, change) in changes {
        match change {
            ShardChange::Rows { event, .. } => pending.entry(shard).or_default().push(event),
            reset @ ShardChange::Reset { .. } => {
                flush(&mut pending, &mut out);
                out.push((shard, reset));
            }
            // A replica change: what it sends next resumes where the last stopped.
            ShardChange::Connected { .. } | ShardChange::Broke => {}
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Sends one shard change to the client (merged and filtered); false when
/// the client is gone.
async fn forward(
    st: &Arc<GatewayState>,
    target: &Target,
    filter: &Filter,
    shard: u32,
    change: ShardChange,
    positions: &mut BTreeMap<i32, i64>,
    tx: &mpsc::Sender<Event>,
) -> bool {
    let revision = target.route.revision.clone();
    let (kind, (rows, removed), reason, moved) = match change {
        ShardChange::Rows { event, positions } => {
            match merged_change(st, target, filter, shard, event).await {
                Some(changed) => ("rows", changed, None, positions),
                // Never a silent gap: the client reloads from here.
                None => (
                    "reset",
                    (Vec::new(), Vec::new()),
                    Some("unavailable".into()),
                    positions,
                ),
            }
        }
        ShardChange::Connected { .. } | ShardChange::Broke => return true,
        ShardChange::Reset { positions } => (
            "reset",
            (Vec::new(), Vec::new()),
            Some("too-old".into()),
            positions,
        ),
    };
    for (p, o) in moved {
        let at = positions.entry(p).or_insert(o);
        *at = (*at).max(o);
    }
    if kind == "rows" && rows.is_empty() && removed.is_empty() {
        return true;
    }
    let data = StreamEvent {
        revision,
        rows,
        removed,
        reason,
    };
    tx.send(event(kind, positions, &data)).await.is_ok()
}

/// One shard's change as the stream shows it: rows whole (merged across
/// shards) that the filter keeps, and keys that left the stream. A key
/// this shard no longer holds, or (group stream) whose records here left
/// the group, may still be held by another shard: it is looked up there
/// before it is announced as removed.
async fn merged_change(
    st: &Arc<GatewayState>,
    target: &Target,
    filter: &Filter,
    shard: u32,
    event: WatchEvent,
) -> Option<(Vec<RowView>, Vec<String>)> {
    let wanted = |key: &str| match filter {
        Filter::Key(only) => key == only,
        _ => true,
    };
    // Announced as removed when the merged row is not (or no longer in the group).
    let gone_here: HashSet<String> = match filter {
        Filter::Group(group) => event.left.get(group).cloned().unwrap_or_default(),
        _ => event.removed.clone(),
    }
    .into_iter()
    .filter(|k| wanted(k))
    .collect();
    let mut mine: Vec<RowView> = event.rows.into_iter().filter(|r| wanted(&r.key)).collect();
    // A key this shard no longer holds changed too: other shards may hold
    // the rest of its row, which a group stream may still show.
    let changed_elsewhere = event.removed.into_iter().filter(|k| wanted(k));
    for key in gone_here.iter().cloned().chain(changed_elsewhere) {
        if !mine.iter().any(|r| r.key == key) {
            // No groups: filled in by shards that still hold the key.
            mine.push(RowView {
                key,
                groups: BTreeMap::new(),
            });
        }
    }
    let whole = st.complete(target, shard, mine).await.ok()?;
    let mut rows = Vec::new();
    let mut removed = Vec::new();
    for row in whole {
        let present = !row.groups.is_empty() && filter.keeps(&row);
        if present {
            rows.push(row);
        } else if gone_here.contains(&row.key) {
            removed.push(row.key);
        }
    }
    Some((rows, removed))
}
