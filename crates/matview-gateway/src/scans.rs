//! A group's rows in key order through the gateway: each shard's page
//! merged up to where every shard's keys are known, rows completed with the
//! parts other shards hold outside the group, paged with an opaque cursor.
//! Rows one shard holds go out as that shard encoded them.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::GatewayState;
use super::cached_scans::{PageAsk, scan_from_cache};
use super::merge::{
    EncodedScanPage, RowPart, ShardPage, decode_cursor, encode_cursor, merge_pages, merge_positions,
};
use super::params::ScanParams;
use super::reads::{bad_part, shard_reads};
use super::target::Target;
use matview_api::problem::Problem;
use matview_api::projector::{EncodedRowsPage, answer_headers};

pub async fn scan_group(
    State(st): State<Arc<GatewayState>>,
    Path((ns, name, group)): Path<(String, String, String)>,
    headers: HeaderMap,
    ScanParams(params): ScanParams,
) -> Result<Response, Problem> {
    let caller = st.auth.authenticate(&headers).await?;
    st.auth.require(&caller, &ns, &name, "list").await?;
    let target = st.target_at(&ns, &name, params.revision.as_deref()).await?;
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
    let ask = PageAsk {
        group: &group,
        after: after.as_deref(),
        limit: params.limit,
        reads: &reads,
        deadline,
    };
    let cached = match target.pending {
        true => None,
        false => scan_from_cache(&st, &target, &ask).await?,
    };
    let (positions, page) = match cached {
        Some(answer) => answer,
        None => scan_from_projectors(&st, &target, &ask).await?,
    };
    Ok((answer_headers(&route.revision, &positions), Json(page)).into_response())
}

/// The page read whole from the projectors: each shard's page merged, rows
/// completed with the parts other shards hold outside the group.
async fn scan_from_projectors(
    st: &Arc<GatewayState>,
    target: &Target,
    ask: &PageAsk<'_>,
) -> Result<(BTreeMap<i32, i64>, EncodedScanPage), Problem> {
    let route = &target.route;
    let shards: Vec<u32> = (0..route.shards.len() as u32).collect();
    let scan = |s: u32, url: String| {
        let st = st.clone();
        let (group, after) = (ask.group.to_string(), ask.after.map(str::to_string));
        let (read, limit) = (ask.reads[s as usize].clone(), ask.limit);
        async move {
            st.readers
                .scan_group::<EncodedRowsPage>(&url, &group, after.as_deref(), limit, &read)
                .await
        }
    };
    let mut answers = st.ask(route, &shards, ask.deadline, scan).await?;
    answers.sort_by_key(|(s, _)| *s);
    let positions = merge_positions(answers.iter().map(|(_, a)| a.positions.as_slice()));
    let pages = answers
        .into_iter()
        .map(|(_, a)| ShardPage {
            more: a.body.next.is_some(),
            rows: a.body.rows.into_iter().map(RowPart::Encoded).collect(),
        })
        .collect();
    let mut merged = merge_pages(&target.info.compiled, pages, ask.limit).map_err(bad_part)?;
    // A row in the group may have records of other groups on shards whose
    // page did not list it: fetch those parts.
    if !route.keyed_by_row_key && shards.len() > 1 {
        let missing = (0..shards.len())
            .map(|s| {
                let absent = merged.rows.iter().zip(&merged.sources);
                absent
                    .filter(|(_, sources)| !sources.contains(&s))
                    .map(|(row, _)| row.key().to_string())
                    .collect()
            })
            .collect();
        st.fill_in(target, missing, &mut merged.rows, ask.deadline)
            .await?;
    }
    let page = EncodedScanPage {
        next: merged.next_after.as_deref().map(encode_cursor),
        rows: merged.rows,
    };
    Ok((positions, page))
}
