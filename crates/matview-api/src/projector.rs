//! The projector's internal API, as typed request and response bodies.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/rows/{key}` | [`RowView`] |
//! | `GET /v1/groups/{group}/rows?after=&limit=` | [`RowsPage`] |
//! | `GET /v1/keys?after=&limit=` | [`KeysPage`] |
//! | `GET /v1/records?after=&limit=` | [`crate::records::RecordsPage`] |
//! | `GET /v1/positions` | [`Positions`] |
//! | `GET /v1/info` | [`ProjectorInfo`] |
//! | `GET /v1/stats` | [`ProjectorStats`] |
//! | `GET /v1/figures` | [`crate::figures::ProjectorFigures`] |
//! | `POST /v1/lookup` | [`LookupRequest`] → [`LookupResponse`] |
//! | `GET /v1/watch?from=p:o,…` | server-sent [`WatchEvent`]s |
//!
//! Row reads take a [`ReadQuery`] (read-your-writes) and answer with the
//! [`REVISION_HEADER`] and [`POSITIONS_HEADER`] headers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use matview_engine::RowView;

/// Rows in key order; `next` is the cursor of the following page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowsPage {
    pub rows: Vec<RowView>,
    pub next: Option<String>,
}

/// Row keys in order; `next` is the cursor of the following page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysPage {
    pub keys: Vec<String>,
    pub next: Option<String>,
}

/// Query of a paged listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Start after this key (exclusive).
    pub after: Option<String>,
    pub limit: Option<usize>,
}

/// How far one partition is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionPosition {
    pub partition: i32,
    /// The next offset to apply: every offset below it is in the store.
    pub applied: i64,
    pub high_watermark: i64,
    pub lag: i64,
    /// The first offset the topic still holds (retention deletes below it);
    /// with `applied` and `high_watermark`, how much of the topic is applied.
    #[serde(default)]
    pub low_watermark: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Positions {
    pub topic: String,
    pub shard: u32,
    pub shards: u32,
    pub partitions: Vec<PartitionPosition>,
}

/// What a projector serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectorInfo {
    pub view: String,
    pub namespace: String,
    pub revision: String,
    pub shard: u32,
    pub shards: u32,
    pub topic: String,
    pub dead_letter_topic: String,
    pub consumer_group: String,
    pub groups: Vec<String>,
    /// Partitions of the source topic (0 until the projector has read them).
    pub partitions: i32,
    /// The spec this projector runs, so a reader merges answers by its rules.
    pub spec: matview_crd::MaterializedViewSpec,
}

/// A projector's own figures, read by the operator for the view's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectorStats {
    pub revision: String,
    pub shard: u32,
    pub rows: u64,
    pub records_applied: u64,
    pub events_consumed: u64,
    pub dead_lettered: u64,
    /// Events of the shard's partitions not applied yet.
    pub lag: i64,
    pub ready: bool,
    /// Why the source's broker does not answer, while it does not (reads
    /// are still served from the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_error: Option<String>,
    /// Why batches are held instead of written (e.g. too little disk space),
    /// while they are (reads are still served from the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_error: Option<String>,
    /// Why the schema registry cannot answer, while it cannot (batches
    /// wait for it; reads are still served from the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_registry_error: Option<String>,
    /// The registry refuses the projector's credentials (401/403), while it does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub schema_registry_refused: bool,
    /// Which partitions of the source or dead-letter topic have replicas out
    /// of sync (a node down or cut off), while some have; the view still
    /// reads and writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub under_replicated: Option<String>,
    /// Changes whenever one of the troubles above starts, ends or changes:
    /// `GET /v1/troubles?after=` waits for the next change.
    #[serde(default)]
    pub troubles_version: u64,
}

/// `GET /v1/troubles`: answers at once when the troubles' version is not
/// `after`, else when it changes or after about 25 s, whichever is first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TroublesQuery {
    #[serde(default)]
    pub after: Option<u64>,
}

/// The answer of `GET /v1/troubles`: the troubles' version now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TroublesVersion {
    pub version: u64,
}

/// One event of `GET /v1/watch` (`rows`, or `reset` with no rows: reload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchEvent {
    /// This process's change number (the SSE id).
    pub seq: u64,
    /// Changed rows as this shard holds them now.
    pub rows: Vec<RowView>,
    /// Keys of changed rows this shard no longer holds (their last record left).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// By group: keys of changed rows that held records of the group in this
    /// shard before the change and hold none after it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub left: BTreeMap<String, Vec<String>>,
    /// Applied positions after the change, `p:o,…`: resume any replica with `from=`.
    pub positions: String,
}

/// Header naming the revision an answer reflects.
pub const REVISION_HEADER: &str = "matview-revision";
/// Header with the applied positions an answer reflects: `partition:offset`
/// pairs, comma-separated, where offset is the next one to apply.
pub const POSITIONS_HEADER: &str = "matview-positions";

/// Rows of several keys at once (one request per shard instead of one per key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupRequest {
    pub keys: Vec<String>,
}

/// The rows found; keys without records are absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookupResponse {
    pub rows: Vec<RowView>,
}

/// Read-your-writes on a projector read: answer only once every listed
/// `partition:offset` is applied, waiting at most `waitMs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReadQuery {
    /// `partition:offset` pairs, comma-separated.
    pub at_least: Option<String>,
    pub wait_ms: Option<u64>,
}

/// The headers of a data answer: the revision and the positions it reflects.
pub fn answer_headers(
    revision: &str,
    positions: &std::collections::BTreeMap<i32, i64>,
) -> axum::http::HeaderMap {
    let mut headers = axum::http::HeaderMap::new();
    if let Ok(v) = axum::http::HeaderValue::from_str(revision) {
        headers.insert(REVISION_HEADER, v);
    }
    if let Ok(v) = axum::http::HeaderValue::from_str(&format_positions(positions)) {
        headers.insert(POSITIONS_HEADER, v);
    }
    headers
}

/// `p:o,p:o` → pairs; `None` when malformed.
pub fn parse_positions(text: &str) -> Option<Vec<(i32, i64)>> {
    text.split(',')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (p, o) = part.split_once(':')?;
            Some((p.trim().parse().ok()?, o.trim().parse().ok()?))
        })
        .collect()
}

/// Pairs → `p:o,p:o`, in the given order.
pub fn format_positions<'a>(positions: impl IntoIterator<Item = (&'a i32, &'a i64)>) -> String {
    positions
        .into_iter()
        .map(|(p, o)| format!("{p}:{o}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_through_their_text_form() {
        let map = std::collections::BTreeMap::from([(0, 12), (3, 40)]);
        let text = format_positions(&map);
        assert_eq!(text, "0:12,3:40");
        assert_eq!(parse_positions(&text), Some(vec![(0, 12), (3, 40)]));
        assert_eq!(parse_positions(""), Some(vec![]));
        assert_eq!(parse_positions("0:x"), None);
        assert_eq!(parse_positions("7"), None);
    }
}

/// A row as a projector encoded it: the key read, its groups kept as the
/// projector's bytes. Serializes back to the same JSON as the [`RowView`],
/// so a gateway forwards what it does not merge without rebuilding it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EncodedRow {
    pub key: String,
    pub groups: Box<serde_json::value::RawValue>,
}

impl EncodedRow {
    /// The row decoded, for merging with other shards' parts.
    pub fn decode(&self) -> Result<RowView, serde_json::Error> {
        Ok(RowView {
            key: self.key.clone(),
            groups: serde_json::from_str(self.groups.get())?,
        })
    }
}

/// [`RowsPage`] with its rows encoded.
#[derive(Debug, Deserialize)]
pub struct EncodedRowsPage {
    pub rows: Vec<EncodedRow>,
    pub next: Option<String>,
}

/// [`LookupResponse`] with its rows encoded.
#[derive(Debug, Deserialize)]
pub struct EncodedLookup {
    pub rows: Vec<EncodedRow>,
}
