//! Group scans answered from the row cache: the shards list only the keys
//! of the page, and the rows come from the cache; rows it lacks are looked
//! up (and kept). A page is served this way only when the view's feed has
//! passed the positions the keys reflect, so a held row is at least as new
//! as the listing: every row shown reflects at least the page's positions,
//! as in a scan the projectors answer whole.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;

use super::GatewayState;
use super::merge::{EncodedScanPage, RowPart, merge_keys, merge_positions, merge_rows};
use super::reads::bad_part;
use super::row_cache::FeedView;
use super::target::Target;
use matview_api::problem::Problem;
use matview_api::projector::{EncodedRow, ReadQuery};
use matview_engine::RowView;

/// What a scan page asks: the group, where it starts, how many rows.
pub struct PageAsk<'a> {
    pub group: &'a str,
    pub after: Option<&'a str>,
    pub limit: usize,
    /// Per shard, its read-your-writes query.
    pub reads: &'a [ReadQuery],
    pub deadline: Instant,
}

/// The page, with the positions it reflects; `None` when the cache cannot
/// answer it (off, a shard not followed, or the feed behind the keys).
pub async fn scan_from_cache(
    st: &Arc<GatewayState>,
    target: &Target,
    ask: &PageAsk<'_>,
) -> Result<Option<(BTreeMap<i32, i64>, EncodedScanPage)>, Problem> {
    let route = &target.route;
    // Only for views followed already; this starts following one.
    if st.row_cache.view_feed(st, route).is_none() {
        return Ok(None);
    }
    let shards: Vec<u32> = (0..route.shards.len() as u32).collect();
    let list = |s: u32, url: String| {
        let st = st.clone();
        let (group, after, read) = (
            ask.group.to_string(),
            ask.after.map(str::to_string),
            ask.reads[s as usize].clone(),
        );
        let limit = ask.limit;
        async move {
            st.readers
                .scan_group_keys(&url, &group, after.as_deref(), limit, &read)
                .await
        }
    };
    let mut answers = st.ask(route, &shards, ask.deadline, list).await?;
    answers.sort_by_key(|(s, _)| *s);
    let positions = merge_positions(answers.iter().map(|(_, a)| a.positions.as_slice()));
    let Some(feed) = st.row_cache.view_feed(st, route) else {
        return Ok(None);
    };
    if !reaches(&feed.positions, &positions) {
        return Ok(None);
    }
    let merged = merge_keys(
        answers
            .into_iter()
            .map(|(_, a)| (a.body.keys, a.body.next.is_some()))
            .collect(),
        ask.limit,
    );
    let mut rows: Vec<(String, Option<RowPart>)> = Vec::with_capacity(merged.keys.len());
    let mut missing: Vec<Vec<String>> = vec![Vec::new(); shards.len()];
    for (key, listed_by) in merged.keys {
        match held(st, &feed, &key) {
            Some(row) => rows.push((key, Some(row))),
            None => {
                // Keyed by row key, the shard that listed a row holds all of it.
                let holders: Vec<usize> = if route.keyed_by_row_key {
                    listed_by.into_iter().collect()
                } else {
                    (0..shards.len()).collect()
                };
                for s in holders {
                    missing[s].push(key.clone());
                }
                rows.push((key, None));
            }
        }
    }
    let mut fetched = fetch(st, target, missing, ask.deadline).await?;
    let page = EncodedScanPage {
        next: merged
            .next_after
            .as_deref()
            .map(super::merge::encode_cursor),
        // A listed row no shard holds now was deleted since: left out.
        rows: rows
            .into_iter()
            .filter_map(|(key, row)| row.or_else(|| fetched.remove(&key).map(RowPart::View)))
            .collect(),
    };
    Ok(Some((positions, page)))
}

/// The feed has applied at least `answer` on every partition it names.
pub fn reaches(fed: &BTreeMap<i32, i64>, answer: &BTreeMap<i32, i64>) -> bool {
    answer
        .iter()
        .all(|(p, o)| fed.get(p).is_some_and(|fed| fed >= o))
}

/// A row from the cache, counted as a hit or a miss.
fn held(st: &GatewayState, feed: &FeedView, key: &str) -> Option<RowPart> {
    let Some(bytes) = st.row_cache.row_at(feed, key) else {
        st.metrics.row_read(false);
        return None;
    };
    // Bytes a projector sent unparsed, and they are not a row: asked again.
    let Ok(row) = serde_json::from_slice::<EncodedRow>(&bytes) else {
        st.metrics.row_read(false);
        return None;
    };
    st.metrics.row_read(true);
    Some(RowPart::Encoded(row))
}

/// Rows of the keys listed per shard, merged across the shards asked, and
/// offered to the cache.
async fn fetch(
    st: &Arc<GatewayState>,
    target: &Target,
    missing: Vec<Vec<String>>,
    deadline: Instant,
) -> Result<BTreeMap<String, RowView>, Problem> {
    let shards: Vec<u32> = (0..missing.len() as u32)
        .filter(|s| !missing[*s as usize].is_empty())
        .collect();
    if shards.is_empty() {
        return Ok(BTreeMap::new());
    }
    let lookup = |s: u32, url: String| {
        let (st, keys) = (st.clone(), missing[s as usize].clone());
        async move { st.readers.lookup(&url, &keys, &ReadQuery::default()).await }
    };
    let answers = st.ask(&target.route, &shards, deadline, lookup).await?;
    let answered: Vec<(i32, i64)> = answers
        .iter()
        .flat_map(|(_, a)| a.positions.iter().copied())
        .collect();
    let mut parts: BTreeMap<String, Vec<RowView>> = BTreeMap::new();
    for (_, answer) in answers {
        for row in answer.body.rows {
            parts.entry(row.key.clone()).or_default().push(row);
        }
    }
    let mut rows = BTreeMap::new();
    for (key, views) in parts {
        let Some(row) = merge_rows(&target.info.compiled, views.into_iter().map(Some)) else {
            continue;
        };
        let body = Bytes::from(serde_json::to_vec(&row).map_err(bad_part)?);
        st.row_cache
            .offer(st, &target.route, &key, &body, &answered);
        rows.insert(key, row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::reaches;
    use std::collections::BTreeMap;

    #[test]
    fn the_feed_reaches_an_answer_only_on_every_partition_it_names() {
        let fed = BTreeMap::from([(0, 10), (1, 5)]);
        assert!(reaches(&fed, &BTreeMap::from([(0, 10), (1, 4)])));
        assert!(!reaches(&fed, &BTreeMap::from([(0, 11)])));
        // A partition the feed has not reported: not reached.
        assert!(!reaches(&fed, &BTreeMap::from([(2, 0)])));
        assert!(reaches(&fed, &BTreeMap::new()));
    }
}
