//! Reads of rows: one key, many keys, a group's rows in key order, all keys.
//! Each may wait until given positions are applied (read-your-writes) and
//! answers with the revision and the applied positions it reflects.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::Shared;
use crate::store::StoredRowRecords;
use matview_api::problem::Problem;
use matview_api::problem::TypedQuery;
use matview_api::projector::{
    KeysPage, LookupRequest, LookupResponse, PageQuery, ReadQuery, RowView, RowsPage,
    answer_headers, format_positions, parse_positions,
};
use matview_api::records::{GroupCounts, RecordsPage, RowRecords};

const MAX_SCAN_LIMIT: usize = 1000;
const MAX_KEYS_LIMIT: usize = 100_000;
const MAX_LOOKUP_KEYS: usize = 1000;
/// Longest read-your-writes wait a caller may ask for.
const MAX_WAIT: Duration = Duration::from_secs(30);
const DEFAULT_WAIT: Duration = Duration::from_secs(5);

/// A read's own query: paging and read-your-writes together.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScanQuery {
    after: Option<String>,
    limit: Option<usize>,
    at_least: Option<String>,
    wait_ms: Option<u64>,
}

fn limit(given: Option<usize>, default: usize, max: usize) -> Result<usize, Problem> {
    match given {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad limit",
            format!("limit must be 1..={max}, got {n}"),
        )),
    }
}

pub(super) fn read_view(shared: &Shared, key: &str) -> Result<Option<RowView>, Problem> {
    Ok(shared
        .store
        .row(key)
        .map_err(Problem::internal)?
        .map(|row| shared.view.compiled.into_view(key, row)))
}

/// Waits for read-your-writes positions; returns the applied offsets to report.
async fn settle(shared: &Shared, query: &ReadQuery) -> Result<BTreeMap<i32, i64>, Problem> {
    let Some(text) = query.at_least.as_deref() else {
        return Ok(shared.positions().0);
    };
    let wanted = parse_positions(text).ok_or_else(|| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad atLeast",
            format!("{text:?}: expected partition:offset pairs, comma-separated"),
        )
    })?;
    let shards = shared.view.shards;
    if let Some((p, _)) = wanted
        .iter()
        .find(|(p, _)| (*p as u32) % shards != shared.shard)
    {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "partition not served here",
            format!("partition {p} belongs to shard {}", (*p as u32) % shards),
        ));
    }
    let wait = query
        .wait_ms
        .map_or(DEFAULT_WAIT, Duration::from_millis)
        .min(MAX_WAIT);
    shared.wait_applied(&wanted, wait).await.map_err(|applied| {
        Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            "not applied yet",
            format!(
                "positions {text} were not applied within {} ms (applied: {})",
                wait.as_millis(),
                format_positions(&applied)
            ),
        )
    })
}

/// Adds the revision and positions headers to an answer.
fn answered(shared: &Shared, applied: &BTreeMap<i32, i64>, body: impl IntoResponse) -> Response {
    (answer_headers(&shared.view.revision, applied), body).into_response()
}

pub async fn get_row(
    State(shared): State<Arc<Shared>>,
    Path(key): Path<String>,
    TypedQuery(query): TypedQuery<ReadQuery>,
) -> Result<Response, Problem> {
    let applied = settle(&shared, &query).await?;
    // A point read is a few cached B-tree pages: cheaper inline than a hop
    // to the blocking pool (measured with `matview bench gateway`).
    let row = shared.store.row(&key).map_err(Problem::internal)?;
    let row = row.ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "no such row",
            format!("no record has key {key:?} (yet)"),
        )
    })?;
    // The row's JSON written straight from the store's records: the bytes
    // `Json(RowView)` would write, without the tree of items in between.
    let mut body = Vec::with_capacity(4096);
    shared.view.compiled.write_view(&key, &row, &mut body);
    let json = [(CONTENT_TYPE, "application/json")];
    Ok(answered(&shared, &applied, (json, body)))
}

pub async fn lookup(
    State(shared): State<Arc<Shared>>,
    TypedQuery(query): TypedQuery<ReadQuery>,
    Json(request): Json<LookupRequest>,
) -> Result<Response, Problem> {
    if request.keys.len() > MAX_LOOKUP_KEYS {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "too many keys",
            format!("at most {MAX_LOOKUP_KEYS} keys per lookup"),
        ));
    }
    let applied = settle(&shared, &query).await?;
    let reader = shared.clone();
    let rows = tokio::task::spawn_blocking(move || {
        let mut rows = Vec::new();
        for key in &request.keys {
            rows.extend(read_view(&reader, key)?);
        }
        Ok::<_, Problem>(rows)
    })
    .await
    .map_err(Problem::internal)??;
    Ok(answered(&shared, &applied, Json(LookupResponse { rows })))
}

/// A group scan's bounds: the group's index and the page size.
fn group_page(shared: &Shared, group: &str, query: &ScanQuery) -> Result<(usize, usize), Problem> {
    let groups = &shared.view.compiled.groups;
    let group_index = groups.iter().position(|g| g == group).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "no such group",
            format!("groups are {groups:?}"),
        )
    })?;
    Ok((group_index, limit(query.limit, 100, MAX_SCAN_LIMIT)?))
}

fn read_of(query: &ScanQuery) -> ReadQuery {
    ReadQuery {
        at_least: query.at_least.clone(),
        wait_ms: query.wait_ms,
    }
}

/// The keys of a group's rows after `after`, and the cursor of what follows.
fn group_keys(
    shared: &Shared,
    group_index: usize,
    after: Option<&str>,
    limit: usize,
) -> Result<KeysPage, Problem> {
    let keys = shared
        .store
        .keys_in_group(group_index, after, limit)
        .map_err(Problem::internal)?;
    let next = (keys.len() == limit)
        .then(|| keys.last().cloned())
        .flatten();
    Ok(KeysPage { keys, next })
}

pub async fn scan_group(
    State(shared): State<Arc<Shared>>,
    Path(group): Path<String>,
    TypedQuery(query): TypedQuery<ScanQuery>,
) -> Result<Response, Problem> {
    group_scan(shared, &group, query, |reader, page| {
        let mut rows = Vec::with_capacity(page.keys.len());
        for key in &page.keys {
            rows.extend(read_view(reader, key)?);
        }
        Ok(RowsPage {
            rows,
            next: page.next,
        })
    })
    .await
}

/// The keys a group scan would list, without the rows (a gateway that
/// holds the rows asks only for these).
pub async fn scan_group_keys(
    State(shared): State<Arc<Shared>>,
    Path(group): Path<String>,
    TypedQuery(query): TypedQuery<ScanQuery>,
) -> Result<Response, Problem> {
    group_scan(shared, &group, query, |_, page| Ok(page)).await
}

/// A page of a group's keys, once the query's positions are applied, made
/// into the answer by `answer` (on the blocking pool: it reads the store).
async fn group_scan<T: serde::Serialize + Send + 'static>(
    shared: Arc<Shared>,
    group: &str,
    query: ScanQuery,
    answer: impl FnOnce(&Shared, KeysPage) -> Result<T, Problem> + Send + 'static,
) -> Result<Response, Problem> {
    let (group_index, limit) = group_page(&shared, group, &query)?;
    let applied = settle(&shared, &read_of(&query)).await?;
    let reader = shared.clone();
    let page = tokio::task::spawn_blocking(move || {
        let keys = group_keys(&reader, group_index, query.after.as_deref(), limit)?;
        answer(&reader, keys)
    })
    .await
    .map_err(Problem::internal)??;
    Ok(answered(&shared, &applied, Json(page)))
}

/// Row keys in order, for counting distinct rows across shards.
pub async fn keys(
    State(shared): State<Arc<Shared>>,
    TypedQuery(page): TypedQuery<PageQuery>,
) -> Result<Json<KeysPage>, Problem> {
    let limit = limit(page.limit, 10_000, MAX_KEYS_LIMIT)?;
    tokio::task::spawn_blocking(move || {
        let keys = shared
            .store
            .keys(None, page.after.as_deref(), limit)
            .map_err(Problem::internal)?;
        let next = (keys.len() == limit)
            .then(|| keys.last().cloned())
            .flatten();
        Ok(Json(KeysPage { keys, next }))
    })
    .await
    .map_err(Problem::internal)?
}

/// Rows in key order with every record's group and the row's counts and
/// sums, read in one transaction with the positions they reflect: what a
/// comparison of two revisions reads.
pub async fn records(
    State(shared): State<Arc<Shared>>,
    TypedQuery(page): TypedQuery<PageQuery>,
) -> Result<Response, Problem> {
    let limit = limit(page.limit, 500, MAX_SCAN_LIMIT * 5)?;
    let reader = shared.clone();
    let page = tokio::task::spawn_blocking(move || {
        let shared = reader;
        let (rows, positions) = shared
            .store
            .row_records(page.after.as_deref(), limit)
            .map_err(Problem::internal)?;
        let next = (rows.len() == limit)
            .then(|| rows.last().map(|r| r.key.clone()))
            .flatten();
        let compiled = &shared.view.compiled;
        let rows = rows.into_iter().map(|r| row_records(compiled, r)).collect();
        Ok::<_, Problem>(RecordsPage {
            rows,
            next,
            positions,
        })
    })
    .await
    .map_err(Problem::internal)??;
    let positions = page.positions.clone();
    Ok(answered(&shared, &positions, Json(page)))
}

/// A stored row in the names of the view: groups and summed fields.
fn row_records(compiled: &matview_engine::CompiledView, row: StoredRowRecords) -> RowRecords {
    let group_name = |g: usize| compiled.groups.get(g).cloned();
    let records = row
        .records
        .into_iter()
        .map(|(id, group)| (id, group.and_then(|g| group_name(g as usize))))
        .collect();
    let mut groups = BTreeMap::new();
    for (g, totals) in row.totals.into_iter().enumerate() {
        let Some(name) = group_name(g).filter(|_| totals.count > 0) else {
            continue;
        };
        let sums = compiled
            .aggregate
            .sums
            .iter()
            .zip(&totals.sums)
            .filter_map(|(field, sum)| {
                let field = compiled.fields.get(*field)?;
                Some((field.name.clone(), sum.to_string()))
            })
            .collect();
        let counts = GroupCounts {
            count: totals.count,
            sums,
        };
        groups.insert(name, counts);
    }
    RowRecords {
        key: row.key,
        records,
        groups,
    }
}
