//! The gateway's public API, as typed response bodies (the OpenAPI document
//! describes these).
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/views` | [`ViewList`] |
//! | `GET /v1/namespaces/{ns}/views/{name}` | [`ViewSummary`] |
//! | `GET /v1/namespaces/{ns}/views/{name}/rows/{key}` | [`RowView`] |
//! | `GET /v1/namespaces/{ns}/views/{name}/groups/{group}/rows` | [`ScanPage`] |
//! | `GET /v1/namespaces/{ns}/views/{name}/revisions/{rev}/comparison` | [`RevisionComparison`] |
//!
//! Data answers carry `Matview-Revision` and `Matview-Positions` headers.

use std::collections::BTreeMap;

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
    /// A revision built from a changed spec, waiting for promotion (or
    /// catching up), with its comparison once computed; read its rows with
    /// `?revision=`.
    pub pending: Option<matview_crd::PendingRevision>,
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

/// What a revision waiting for promotion would change, computed from both
/// revisions' stores (every row, not a sample).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionComparison {
    pub serving: ComparedRevision,
    pub candidate: ComparedRevision,
    /// Both revisions were at the same positions and did not move while
    /// they were read: the figures compare the same events exactly.
    pub consistent: bool,
    pub rows: RowCounts,
    pub records: RecordCounts,
    /// Records in both revisions whose group differs, by (from, to); a
    /// null group is a record that matched no rule.
    pub moved: Vec<MovedRecords>,
    /// Per group, each revision's count and sums over all rows.
    pub groups: Vec<GroupComparison>,
}

/// One side of a comparison: its revision and the positions it was read at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ComparedRevision {
    pub revision: String,
    /// Partition → next offset, when its last page was read.
    pub positions: BTreeMap<i32, i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RowCounts {
    pub only_serving: u64,
    pub only_candidate: u64,
    pub changed: u64,
    pub same: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordCounts {
    pub only_serving: u64,
    pub only_candidate: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MovedRecords {
    pub from: Option<String>,
    pub to: Option<String>,
    pub records: u64,
}

/// A group's figures in each revision; sums are exact decimals as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupComparison {
    pub group: String,
    pub serving: GroupFiguresView,
    pub candidate: GroupFiguresView,
    /// candidate − serving.
    pub count_delta: i64,
    /// candidate − serving, per summed field.
    pub sum_deltas: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GroupFiguresView {
    pub count: u64,
    pub sums: BTreeMap<String, String>,
}

impl RevisionComparison {
    /// The engine's comparison in the API's words.
    pub fn of(
        c: matview_engine::compare::Comparison,
        serving: ComparedRevision,
        candidate: ComparedRevision,
        consistent: bool,
    ) -> RevisionComparison {
        let view = |f: &matview_engine::compare::GroupFigures| GroupFiguresView {
            count: f.count,
            sums: f
                .sums
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
        };
        let groups = c
            .groups
            .iter()
            .map(|(group, (a, b))| {
                let fields: std::collections::BTreeSet<&String> =
                    a.sums.keys().chain(b.sums.keys()).collect();
                let zero = matview_engine::Sum::ZERO;
                let sum_deltas = fields
                    .into_iter()
                    .map(|f| {
                        let (x, y) = (
                            a.sums.get(f).copied().unwrap_or(zero),
                            b.sums.get(f).copied().unwrap_or(zero),
                        );
                        (f.clone(), y.difference(x).to_string())
                    })
                    .collect();
                GroupComparison {
                    group: group.clone(),
                    serving: view(a),
                    candidate: view(b),
                    count_delta: i64::try_from(b.count).unwrap_or(i64::MAX)
                        - i64::try_from(a.count).unwrap_or(i64::MAX),
                    sum_deltas,
                }
            })
            .collect();
        RevisionComparison {
            serving,
            candidate,
            consistent,
            rows: RowCounts {
                only_serving: c.rows_only_serving,
                only_candidate: c.rows_only_candidate,
                changed: c.rows_changed,
                same: c.rows_same,
            },
            records: RecordCounts {
                only_serving: c.records_only_serving,
                only_candidate: c.records_only_candidate,
            },
            moved: c
                .moved
                .into_iter()
                .map(|((from, to), records)| MovedRecords { from, to, records })
                .collect(),
            groups,
        }
    }
}
