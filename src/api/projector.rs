//! The projector's internal API, as typed request and response bodies.
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/rows/{key}` | [`RowView`] |
//! | `GET /v1/groups/{group}/rows?after=&limit=` | [`RowsPage`] |
//! | `GET /v1/keys?after=&limit=` | [`KeysPage`] |
//! | `GET /v1/positions` | [`Positions`] |
//! | `GET /v1/info` | [`ProjectorInfo`] |
//! | `GET /v1/stats` | [`ProjectorStats`] |

use serde::{Deserialize, Serialize};

pub use crate::engine::RowView;

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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Positions {
    pub topic: String,
    pub shard: u32,
    pub shards: u32,
    pub partitions: Vec<PartitionPosition>,
}

/// What a projector serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}
