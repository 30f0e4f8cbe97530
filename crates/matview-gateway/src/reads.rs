//! Data reads through the gateway: one row merged across shards, and a
//! group's rows in key order, merged and paged with an opaque cursor. Every
//! answer comes from one revision and says which, and which positions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::future::join_all;
use tokio::time::Instant;

use super::GatewayState;
use super::fanout::ShardError;
use super::merge::{RowPart, merge_positions, merge_rows};
use super::params::{ReadParams, RowParams};
use super::routing::{ViewRoute, key_partition};
use super::target::Target;
use matview_api::problem::Problem;
use matview_api::projector::{ReadQuery, answer_headers, format_positions};
use matview_api::{Answer, ClientError};
use matview_engine::RowView;

/// Per shard, the read-your-writes query for its partitions.
pub(crate) fn shard_reads(
    route: &ViewRoute,
    params: &ReadParams,
) -> Result<Vec<ReadQuery>, Problem> {
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
    pub(crate) async fn ask<T, F, Fut>(
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

    pub(crate) fn deadline(&self, params: &ReadParams) -> Instant {
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
    let target = st.target_at(&ns, &name, params.revision.as_deref()).await?;
    let route = &target.route;
    let after: Option<Vec<(i32, i64)>> = params
        .after
        .iter()
        .map(|a| (a.topic == route.topic).then_some((a.partition, a.offset)))
        .collect();
    let cached = after
        .filter(|_| !target.pending)
        .and_then(|after| st.row_cache.get(route, &key, &after));
    if let Some(hit) = cached {
        st.metrics.row_read(true);
        let headers = answer_headers(&route.revision, &hit.positions);
        return Ok((headers, json_bytes(hit.body)).into_response());
    }
    st.metrics.row_read(false);
    let (row, answers) = st.read_row(&target, &key, &params).await?;
    let row = row.ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "no such row",
            format!("no record has key {key:?} (yet)"),
        )
    })?;
    let body = match row {
        RowBody::Encoded(bytes) => bytes,
        RowBody::View(row) => Bytes::from(serde_json::to_vec(&row).map_err(Problem::internal)?),
    };
    let positions: Vec<(i32, i64)> = answers
        .iter()
        .flat_map(|(_, a)| a.positions.iter().copied())
        .collect();
    if !target.pending {
        st.row_cache.offer(&st, route, &key, &body, &positions);
    }
    Ok(answered(route, &answers, json_bytes(body)))
}

/// JSON already encoded, as a response.
fn json_bytes(body: Bytes) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], body)
}

/// Shards' answers to a row read, with what they reflect (bodies taken).
pub type RowAnswers = Vec<(u32, Answer<Option<Bytes>>)>;

/// A row read: as its one shard encoded it (forwarded unparsed), or merged.
pub enum RowBody {
    Encoded(Bytes),
    View(RowView),
}

impl RowBody {
    pub fn into_view(self) -> Result<RowView, Problem> {
        match self {
            RowBody::Encoded(bytes) => serde_json::from_slice(&bytes).map_err(bad_part),
            RowBody::View(row) => Ok(row),
        }
    }
}

/// A projector's answer that is not a row: the replica is broken.
pub(crate) fn bad_part(error: serde_json::Error) -> Problem {
    Problem::new(
        StatusCode::BAD_GATEWAY,
        "bad answer from a projector",
        format!("a shard's row could not be read: {error}"),
    )
}

impl GatewayState {
    /// One row merged across the shards that may hold it.
    pub async fn read_row(
        self: &Arc<Self>,
        target: &Target,
        key: &str,
        params: &ReadParams,
    ) -> Result<(Option<RowBody>, RowAnswers), Problem> {
        let Target { route, info, .. } = target;
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
            async move { st.readers.row_bytes(&url, &key, &read).await }
        };
        let mut answers = self.ask(route, &first, deadline, read_row).await?;
        if answers.iter().all(|(_, a)| a.body.is_none()) && first.len() < all.len() {
            let rest: Vec<u32> = all.iter().copied().filter(|s| !first.contains(s)).collect();
            answers.extend(self.ask(route, &rest, deadline, read_row).await?);
        }
        let mut parts: Vec<Bytes> = answers
            .iter_mut()
            .filter_map(|(_, a)| a.body.take())
            .collect();
        // One shard holds the row: its bytes are the answer, not re-encoded.
        let row = match parts.len() {
            0 => None,
            1 => parts.pop().map(RowBody::Encoded),
            _ => {
                let views = parts
                    .iter()
                    .map(|bytes| serde_json::from_slice::<RowView>(bytes).map(Some))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(bad_part)?;
                merge_rows(&info.compiled, views).map(RowBody::View)
            }
        };
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
                let p = st.readers.positions(&url).await?;
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
        let mut parts: Vec<RowPart> = rows.drain(..).map(RowPart::View).collect();
        self.fill_in(target, missing, &mut parts, deadline).await?;
        parts
            .into_iter()
            .map(|part| part.into_view().map_err(bad_part))
            .collect()
    }

    /// Asks each shard for the keys listed for it (one lookup per shard)
    /// and merges what it holds into `rows`.
    pub(crate) async fn fill_in(
        self: &Arc<Self>,
        target: &Target,
        missing: Vec<Vec<String>>,
        rows: &mut [RowPart],
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
            async move { st.readers.lookup(&url, &keys, &ReadQuery::default()).await }
        };
        let extra = self.ask(&target.route, &shards, deadline, lookup).await?;
        let mut parts: BTreeMap<String, Vec<RowView>> = BTreeMap::new();
        for (_, answer) in extra {
            for row in answer.body.rows {
                parts.entry(row.key.clone()).or_default().push(row);
            }
        }
        for row in rows.iter_mut() {
            if let Some(more) = parts.remove(row.key()) {
                let placeholder = RowPart::View(RowView {
                    key: String::new(),
                    groups: BTreeMap::new(),
                });
                let mine = std::mem::replace(row, placeholder)
                    .into_view()
                    .map_err(bad_part)?;
                let all = std::iter::once(mine).chain(more).map(Some);
                if let Some(whole) = merge_rows(&target.info.compiled, all) {
                    *row = RowPart::View(whole);
                }
            }
        }
        Ok(())
    }
}

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
