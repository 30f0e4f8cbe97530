//! The gateway's public API, as typed response bodies (the OpenAPI document
//! describes these).
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/views` | [`ViewList`] |
//! | `GET /v1/namespaces/{ns}/views/{name}` | [`ViewSummary`] |
//! | `GET /v1/namespaces/{ns}/views/{name}/rows/{key}` | [`RowView`] |
//! | `GET /v1/namespaces/{ns}/views/{name}/groups/{group}/rows` | [`ScanPage`] |
//!
//! Data answers carry `Matview-Revision` and `Matview-Positions` headers.

use serde::{Deserialize, Serialize};

pub use matview_engine::RowView;

/// One view the caller may read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ViewSummary {
    pub namespace: String,
    pub name: String,
    pub topic: String,
    /// The revision that serves reads.
    pub revision: Option<String>,
    pub phase: Option<String>,
    /// Every shard has a ready projector of the serving revision.
    pub serving: bool,
    pub groups: Vec<String>,
    pub fields: Vec<String>,
    pub shards: u32,
    pub keyed_by_row_key: bool,
    pub rows: Option<i64>,
    pub lag: Option<i64>,
    /// The path of this view's rows under the gateway.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ViewList {
    pub views: Vec<ViewSummary>,
}

/// A page of a group's rows in key order; `next` is an opaque cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScanPage {
    pub rows: Vec<RowView>,
    pub next: Option<String>,
}

/// The data of a live stream's `rows` and `reset` events. The event id is a
/// resume token (Kafka positions): send it back as `Last-Event-ID`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StreamEvent {
    /// The revision the rows come from.
    pub revision: String,
    /// Changed rows, whole (merged across shards); empty in a `reset`.
    pub rows: Vec<RowView>,
    /// Keys of rows that left this stream in the change, in the same event
    /// as the rows that changed with them: a row whose last record was
    /// removed (a lookup now answers 404 and scans skip it), or, on a group
    /// stream, a row that no longer has records in the group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// Why a `reset` was sent: `too-old` (the resume point is gone),
    /// `revision` (the view switched revisions) or `unavailable` (a change
    /// could not be completed from every shard): reload, then keep reading.
    /// A reload may already answer from a new revision the stream has not
    /// announced yet (it does within 0.5 s): skip `rows` of another
    /// revision than the reload's until that `reset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
