//! Data reads through the gateway: one row merged across shards, and a
//! group's rows in key order, merged and paged with an opaque cursor. Every
//! answer comes from one revision and says which, and which positions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::join_all;
use tokio::time::Instant;

use super::GatewayState;
use super::discovery::RevisionInfo;
use super::fanout::ShardError;
use super::merge::{
    ShardPage, decode_cursor, encode_cursor, merge_pages, merge_positions, merge_rows,
};
use super::params::{ReadParams, RowParams, ScanParams};
use super::routing::{ViewRoute, key_partition};
use matview_api::gateway::ScanPage;
use matview_api::problem::Problem;
use matview_api::projector::{ReadQuery, answer_headers, format_positions};
use matview_api::{Answer, ClientError};
use matview_engine::RowView;

/// A view ready to be read: its route and its revision's compiled spec.
pub struct Target {
    pub route: Arc<ViewRoute>,
    pub info: Arc<RevisionInfo>,
}

impl GatewayState {
    /// The serving revision of a view, or a 404/503 that says why not.
    pub async fn target(&self, ns: &str, name: &str) -> Result<Target, Problem> {
        let route = match self.directory.route(ns, name) {
            Some(route) => route,
            None if self.directory.view(ns, name).is_some() => {
                return Err(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not serving yet",
                    format!(
                        "view {ns}/{name} has no serving revision yet; see kubectl describe mv -n {ns} {name}"
                    ),
                ));
            }
            None => {
                return Err(Problem::new(
                    StatusCode::NOT_FOUND,
                    "no such view",
                    format!("no MaterializedView {ns}/{name}"),
                ));
            }
        };
        let info = self
            .directory
            .revision_info(&self.projectors, &route)
            .await
            .map_err(|e| {
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "view unavailable",
                    matview_api::errors::chain(&e),
                )
            })?;
        Ok(Target { route, info })
    }
}

/// Per shard, the read-your-writes query for its partitions.
fn shard_reads(route: &ViewRoute, params: &ReadParams) -> Result<Vec<ReadQuery>, Problem> {
    let mut per_shard: Vec<BTreeMap<i32, i64>> = vec![BTreeMap::new(); route.shards.len()];
    for at in &params.after {
        if at.topic != route.topic {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "bad after",
                format!(
                    "view {}/{} reads topic {}, not {}",
                    route.namespace, route.name, route.topic, at.topic
                ),
            ));
        }
        let wanted = per_shard[route.owner_of(at.partition) as usize]
            .entry(at.partition)
            .or_insert(at.offset);
        *wanted = (*wanted).max(at.offset);
    }
    Ok(per_shard
        .into_iter()
        .map(|wanted| ReadQuery {
            at_least: (!wanted.is_empty()).then(|| format_positions(&wanted)),
            wait_ms: (!wanted.is_empty()).then_some(params.wait_ms),
        })
        .collect())
}

/// Shards that must answer because a read-your-writes position names them.
fn constrained_shards(reads: &[ReadQuery]) -> impl Iterator<Item = u32> + '_ {
    (0..reads.len() as u32).filter(|s| reads[*s as usize].at_least.is_some())
}

fn shard_problem(error: ShardError) -> Problem {
    match error {
        ShardError::Refused(ClientError::Status {
            status, problem, ..
        }) => Problem::new(
            status,
            if status == StatusCode::GATEWAY_TIMEOUT {
                "not applied yet"
            } else {
                "refused by the projector"
            },
            problem.map(|p| p.detail).unwrap_or_default(),
        ),
        other => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shard unavailable",
            matview_api::errors::chain(&other),
        ),
    }
}

impl GatewayState {
    /// Asks each of `shards` in parallel (one replica each, with failover).
    async fn ask<T, F, Fut>(
        &self,
        route: &ViewRoute,
        shards: &[u32],
        deadline: Instant,
        call: F,
    ) -> Result<Vec<(u32, Answer<T>)>, Problem>
    where
        F: Fn(u32, String) -> Fut,
        Fut: Future<Output = Result<Answer<T>, ClientError>>,
    {
        self.metrics.fanout(shards.len());
        let calls = shards.iter().map(|&s| {
            let call = &call;
            let replicas = &route.shards[s as usize];
            async move {
                let answer = self
                    .fanout
                    .on_shard(&self.metrics, s, replicas, deadline, |url| call(s, url))
                    .await;
                answer.map(|a| (s, a))
            }
        });
        let mut answers = Vec::with_capacity(shards.len());
        for result in join_all(calls).await {
            let (shard, answer) = result.map_err(shard_problem)?;
            if answer
                .revision
                .as_ref()
                .is_some_and(|r| *r != route.revision)
            {
                return Err(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "revision changed",
                    "the view switched revisions during the read; retry",
                ));
            }
            answers.push((shard, answer));
        }
        Ok(answers)
    }

    fn deadline(&self, params: &ReadParams) -> Instant {
        let wait = if params.after.is_empty() {
            0
        } else {
            params.wait_ms
        };
        Instant::now() + self.deadline + Duration::from_millis(wait)
    }
}

/// An answer with the revision and the positions it reflects.
fn answered<T>(
    route: &ViewRoute,
    answers: &[(u32, Answer<T>)],
    body: impl IntoResponse,
) -> Response {
    let positions = merge_positions(answers.iter().map(|(_, a)| a.positions.as_slice()));
    (answer_headers(&route.revision, &positions), body).into_response()
}

pub async fn get_row(
    State(st): State<Arc<GatewayState>>,
    Path((ns, name, key)): Path<(String, String, String)>,
    headers: HeaderMap,
    RowParams(params): RowParams,
) -> Result<Response, Problem> {
    let caller = st.auth.authenticate(&headers).await?;
    st.auth.require(&caller, &ns, &name, "get").await?;
    let target = st.target(&ns, &name).await?;
    let (row, answers) = st.read_row(&target, &key, &params).await?;
    let row = row.ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "no such row",
            format!("no record has key {key:?} (yet)"),
        )
    })?;
    Ok(answered(&target.route, &answers, Json(row)))
}

/// Shards' answers to a row read, with what they reflect.
pub type RowAnswers = Vec<(u32, Answer<Option<RowView>>)>;

impl GatewayState {
    /// One row merged across the shards that may hold it.
    pub async fn read_row(
        self: &Arc<Self>,
        target: &Target,
        key: &str,
        params: &ReadParams,
    ) -> Result<(Option<RowView>, RowAnswers), Problem> {
        let Target { route, info } = target;
        let reads = shard_reads(route, params)?;
        let deadline = self.deadline(params);
        let all: Vec<u32> = (0..route.shards.len() as u32).collect();
        // Keyed by the row key: the key's partition names the one shard to
        // ask (and shards a read-your-writes position names); others only on a miss.
        let first: Vec<u32> = if route.keyed_by_row_key && info.partitions > 0 {
            let partition = key_partition(key.as_bytes(), info.partitions);
            let mut shards: Vec<u32> = constrained_shards(&reads).collect();
            shards.push(route.owner_of(partition));
            shards.sort_unstable();
            shards.dedup();
            shards
        } else {
            all.clone()
        };
        let read_row = |s: u32, url: String| {
            let (st, key, read) = (self.clone(), key.to_string(), reads[s as usize].clone());
            async move { st.projectors.row(&url, &key, &read).await }
        };
        let mut answers = self.ask(route, &first, deadline, read_row).await?;
        if answers.iter().all(|(_, a)| a.body.is_none()) && first.len() < all.len() {
            let rest: Vec<u32> = all.iter().copied().filter(|s| !first.contains(s)).collect();
            answers.extend(self.ask(route, &rest, deadline, read_row).await?);
        }
        let row = merge_rows(&info.compiled, answers.iter().map(|(_, a)| a.body.clone()));
        Ok((row, answers))
    }

    /// Every shard's applied positions now (one replica each).
    pub async fn current_positions(
        self: &Arc<Self>,
        target: &Target,
    ) -> Result<BTreeMap<i32, i64>, Problem> {
        let shards: Vec<u32> = (0..target.route.shards.len() as u32).collect();
        let deadline = Instant::now() + self.deadline;
        let read = |_: u32, url: String| {
            let st = self.clone();
            async move {
                let p = st.projectors.positions(&url).await?;
                let applied = p
                    .partitions
                    .iter()
                    .map(|p| (p.partition, p.applied))
                    .collect();
                Ok(Answer {
                    body: (),
                    revision: None,
                    positions: applied,
                })
            }
        };
        let answers = self.ask(&target.route, &shards, deadline, read).await?;
        Ok(merge_positions(
            answers.iter().map(|(_, a)| a.positions.as_slice()),
        ))
    }

    /// Completes rows one shard reported with the other shards' parts.
    pub async fn complete(
        self: &Arc<Self>,
        target: &Target,
        from_shard: u32,
        mut rows: Vec<RowView>,
    ) -> Result<Vec<RowView>, Problem> {
        let shards = target.route.shards.len();
        if target.route.keyed_by_row_key || shards < 2 || rows.is_empty() {
            return Ok(rows);
        }
        let keys: Vec<String> = rows.iter().map(|r| r.key.clone()).collect();
        let missing = (0..shards)
            .map(|s| {
                if s as u32 == from_shard {
                    Vec::new()
                } else {
                    keys.clone()
                }
            })
            .collect();
        let deadline = Instant::now() + self.deadline;
        self.fill_in(target, missing, &mut rows, deadline).await?;
        Ok(rows)
    }

    /// Asks each shard for the keys listed for it (one lookup per shard)
    /// and merges what it holds into `rows`.
    async fn fill_in(
        self: &Arc<Self>,
        target: &Target,
        missing: Vec<Vec<String>>,
        rows: &mut [RowView],
        deadline: Instant,
    ) -> Result<(), Problem> {
        let shards: Vec<u32> = (0..missing.len() as u32)
            .filter(|s| !missing[*s as usize].is_empty())
            .collect();
        if shards.is_empty() {
            return Ok(());
        }
        let lookup = |s: u32, url: String| {
            let (st, keys) = (self.clone(), missing[s as usize].clone());
            async move {
                st.projectors
                    .lookup(&url, &keys, &ReadQuery::default())
                    .await
            }
        };
        let extra = self.ask(&target.route, &shards, deadline, lookup).await?;
        let mut parts: BTreeMap<String, Vec<RowView>> = BTreeMap::new();
        for (_, answer) in extra {
            for row in answer.body.rows {
                parts.entry(row.key.clone()).or_default().push(row);
            }
        }
        for row in rows.iter_mut() {
            if let Some(more) = parts.remove(&row.key) {
                let all = std::iter::once(Some(row.clone())).chain(more.into_iter().map(Some));
                if let Some(whole) = merge_rows(&target.info.compiled, all) {
                    *row = whole;
                }
            }
        }
        Ok(())
    }
}

pub async fn scan_group(
    State(st): State<Arc<GatewayState>>,
    Path((ns, name, group)): Path<(String, String, String)>,
    headers: HeaderMap,
    ScanParams(params): ScanParams,
) -> Result<Response, Problem> {
    let caller = st.auth.authenticate(&headers).await?;
    st.auth.require(&caller, &ns, &name, "list").await?;
    let target = st.target(&ns, &name).await?;
    let (route, info) = (&target.route, &target.info);
    if !info.compiled.groups.contains(&group) {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "no such group",
            format!("groups are {:?}", info.compiled.groups),
        ));
    }
    let after = match &params.cursor {
        None => None,
        Some(cursor) => Some(decode_cursor(cursor).ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "bad cursor",
                "pass the `next` value of the previous page unchanged",
            )
        })?),
    };
    let reads = shard_reads(route, &params)?;
    let deadline = st.deadline(&params);
    let shards: Vec<u32> = (0..route.shards.len() as u32).collect();
    let scan = |s: u32, url: String| {
        let (st, group, after) = (st.clone(), group.clone(), after.clone());
        let read = reads[s as usize].clone();
        async move {
            st.projectors
                .scan_group(&url, &group, after.as_deref(), params.limit, &read)
                .await
        }
    };
    let mut answers = st.ask(route, &shards, deadline, scan).await?;
    answers.sort_by_key(|(s, _)| *s);
    let pages = answers
        .iter()
        .map(|(_, a)| ShardPage {
            rows: a.body.rows.clone(),
            more: a.body.next.is_some(),
        })
        .collect();
    let mut merged = merge_pages(&info.compiled, pages, params.limit);
    // A row in the group may have records of other groups on shards whose
    // page did not list it: fetch those parts.
    if !route.keyed_by_row_key && shards.len() > 1 {
        let missing = (0..shards.len())
            .map(|s| {
                let absent = merged.rows.iter().zip(&merged.sources);
                absent
                    .filter(|(_, sources)| !sources.contains(&s))
                    .map(|(row, _)| row.key.clone())
                    .collect()
            })
            .collect();
        st.fill_in(&target, missing, &mut merged.rows, deadline)
            .await?;
    }
    let page = ScanPage {
        next: merged.next_after.as_deref().map(encode_cursor),
        rows: merged.rows,
    };
    Ok(answered(route, &answers, Json(page)))
}

/// A row in a scanned group may have records of other groups on shards whose
/// page did not list it: fetch those parts (one lookup per shard) and merge.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::parse_read_params;
    use crate::routing::Endpoint;

    fn route(shards: usize) -> ViewRoute {
        ViewRoute {
            namespace: "shop".into(),
            name: "v".into(),
            revision: "r1".into(),
            topic: "orders".into(),
            keyed_by_row_key: false,
            shards: vec![Vec::<Endpoint>::new(); shards],
        }
    }

    #[test]
    fn read_your_writes_positions_go_to_the_owning_shard() {
        let params = parse_read_params(
            "after=orders:3:10&after=orders:1:4&after=orders:3:12",
            false,
        )
        .expect("parses");
        let reads = shard_reads(&route(2), &params).expect("same topic");
        assert_eq!(reads[0].at_least, None);
        assert_eq!(reads[1].at_least.as_deref(), Some("1:4,3:12"));
        assert_eq!(constrained_shards(&reads).collect::<Vec<_>>(), [1]);
        let other = parse_read_params("after=payments:0:1", false).expect("parses");
        let e = shard_reads(&route(2), &other).expect_err("wrong topic");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
