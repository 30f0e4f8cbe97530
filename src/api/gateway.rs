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

pub use crate::engine::RowView;

/// One view the caller may read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewList {
    pub views: Vec<ViewSummary>,
}

/// A page of a group's rows in key order; `next` is an opaque cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanPage {
    pub rows: Vec<RowView>,
    pub next: Option<String>,
}
