//! Pure merging of shard answers: rows of one key, pages of a group scan,
//! positions, and the opaque scan cursor. No I/O.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use serde::Serialize;

use matview_api::projector::EncodedRow;
use matview_engine::{CompiledView, RowView};

/// The union of shards' views of one key (each shard holds disjoint records).
pub fn merge_rows(
    view: &CompiledView,
    parts: impl IntoIterator<Item = Option<RowView>>,
) -> Option<RowView> {
    parts
        .into_iter()
        .flatten()
        .reduce(|a, b| view.merge_views(a, b))
}

/// A shard's part of a row: as the projector encoded it (forwarded without
/// being rebuilt), or decoded because it was merged. Serializes as the row's
/// JSON either way.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum RowPart {
    Encoded(EncodedRow),
    View(RowView),
}

impl RowPart {
    pub fn key(&self) -> &str {
        match self {
            RowPart::Encoded(row) => &row.key,
            RowPart::View(row) => &row.key,
        }
    }

    pub fn into_view(self) -> Result<RowView, serde_json::Error> {
        match self {
            RowPart::Encoded(row) => row.decode(),
            RowPart::View(row) => Ok(row),
        }
    }
}

/// Two parts of one key as one (the encoded ones decoded first).
pub fn merge_parts(
    view: &CompiledView,
    a: RowPart,
    b: RowPart,
) -> Result<RowPart, serde_json::Error> {
    Ok(RowPart::View(
        view.merge_views(a.into_view()?, b.into_view()?),
    ))
}

/// A [`matview_api::gateway::ScanPage`] as sent: rows one shard holds go out
/// as that shard encoded them (same JSON, not rebuilt).
#[derive(serde::Serialize)]
pub struct EncodedScanPage {
    pub rows: Vec<RowPart>,
    pub next: Option<String>,
}

/// A merged page of a group scan.
#[derive(Debug, Clone)]
pub struct MergedPage {
    /// Keys of the page, in order, each with the shards' parts found so far.
    pub rows: Vec<RowPart>,
    /// For each row, the shards (indexes of the input pages) it came from:
    /// the others may still hold parts of it outside the scanned group.
    pub sources: Vec<BTreeSet<usize>>,
    /// The last key served, when more may follow.
    pub next_after: Option<String>,
}

/// One shard's page: its rows in key order, and whether it has more.
#[derive(Debug, Clone)]
pub struct ShardPage {
    pub rows: Vec<RowPart>,
    pub more: bool,
}

/// Merges shard pages (each sorted by key, each the shard's first keys after
/// the cursor). Keys up to the smallest last key of a shard that has more are
/// complete in every page; the merged page stops there, and at `limit`. Only
/// rows that more than one shard holds are decoded.
pub fn merge_pages(
    view: &CompiledView,
    pages: Vec<ShardPage>,
    limit: usize,
) -> Result<MergedPage, serde_json::Error> {
    let (cutoff, any_more) = cutoff(
        pages
            .iter()
            .map(|p| (p.rows.last().map(RowPart::key), p.more)),
    );
    let mut by_key: BTreeMap<String, (RowPart, BTreeSet<usize>)> = BTreeMap::new();
    let tagged = pages
        .into_iter()
        .enumerate()
        .flat_map(|(shard, p)| p.rows.into_iter().map(move |row| (shard, row)));
    for (shard, row) in tagged {
        if cutoff.as_deref().is_some_and(|c| row.key() > c) {
            continue;
        }
        let (merged, mut sources) = match by_key.remove(row.key()) {
            Some((existing, sources)) => (merge_parts(view, existing, row)?, sources),
            None => (row, BTreeSet::new()),
        };
        sources.insert(shard);
        by_key.insert(merged.key().to_string(), (merged, sources));
    }
    let cut = by_key.len() > limit;
    let (rows, sources): (Vec<RowPart>, Vec<BTreeSet<usize>>) =
        by_key.into_values().take(limit).unzip();
    let next_after = if cut || any_more {
        rows.last().map(|r| r.key().to_string())
    } else {
        None
    };
    Ok(MergedPage {
        rows,
        sources,
        next_after,
    })
}

/// Where merged shard pages stop being complete: the smallest last key of
/// a page that has more; and whether any has more. Each item is a page's
/// last key and whether more follow it.
fn cutoff<'a>(pages: impl Iterator<Item = (Option<&'a str>, bool)>) -> (Option<String>, bool) {
    let mut any_more = false;
    let mut cut: Option<&str> = None;
    for (last, more) in pages {
        if more {
            any_more = true;
            if let Some(last) = last {
                cut = Some(cut.map_or(last, |c| c.min(last)));
            }
        }
    }
    (cut.map(str::to_string), any_more)
}

/// Shards' key pages (each a group's keys in order, and whether it has
/// more) merged as [`merge_pages`] merges rows: each key with the shards
/// (indexes of the input pages) that listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedKeys {
    pub keys: Vec<(String, BTreeSet<usize>)>,
    pub next_after: Option<String>,
}

pub fn merge_keys(pages: Vec<(Vec<String>, bool)>, limit: usize) -> MergedKeys {
    let (cutoff, any_more) = cutoff(
        pages
            .iter()
            .map(|(keys, more)| (keys.last().map(String::as_str), *more)),
    );
    let mut by_key: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (shard, (keys, _)) in pages.into_iter().enumerate() {
        for key in keys {
            if cutoff.as_deref().is_some_and(|c| key.as_str() > c) {
                continue;
            }
            by_key.entry(key).or_default().insert(shard);
        }
    }
    let cut = by_key.len() > limit;
    let keys: Vec<(String, BTreeSet<usize>)> = by_key.into_iter().take(limit).collect();
    let next_after = if cut || any_more {
        keys.last().map(|(k, _)| k.clone())
    } else {
        None
    };
    MergedKeys { keys, next_after }
}

/// Positions of several shards (each owns distinct partitions) as one map.
pub fn merge_positions<'a>(
    parts: impl IntoIterator<Item = &'a [(i32, i64)]>,
) -> BTreeMap<i32, i64> {
    let mut out = BTreeMap::new();
    for part in parts {
        for &(p, o) in part {
            let entry = out.entry(p).or_insert(o);
            *entry = (*entry).max(o);
        }
    }
    out
}

const CURSOR_PREFIX: &str = "c1.";

/// The opaque cursor of a scan that continues after `key`.
pub fn encode_cursor(key: &str) -> String {
    format!("{CURSOR_PREFIX}{}", URL_SAFE_NO_PAD.encode(key.as_bytes()))
}

/// The key a cursor continues after; `None` when it is not one of ours.
pub fn decode_cursor(cursor: &str) -> Option<String> {
    let encoded = cursor.strip_prefix(CURSOR_PREFIX)?;
    let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use matview_engine::GroupView;

    fn compiled() -> CompiledView {
        let text = include_str!("../../../examples/items-by-price.yaml");
        let view: matview_crd::MaterializedView = serde_yaml_ng::from_str(text).expect("example");
        matview_engine::compile(&view.spec).expect("compiles")
    }

    fn row(key: &str, cheap: u64) -> RowView {
        let group = GroupView {
            count: Some(cheap),
            sum: BTreeMap::new(),
            items: None,
            truncated: false,
        };
        RowView {
            key: key.into(),
            groups: BTreeMap::from([("cheap".to_string(), group)]),
        }
    }

    /// A part as a projector sends it.
    fn encoded(key: &str, cheap: u64) -> RowPart {
        let bytes = serde_json::to_vec(&row(key, cheap)).expect("encodes");
        RowPart::Encoded(serde_json::from_slice(&bytes).expect("decodes"))
    }

    fn keys(page: &MergedPage) -> Vec<&str> {
        page.rows.iter().map(RowPart::key).collect()
    }

    fn count(part: &RowPart) -> Option<u64> {
        part.clone().into_view().expect("decodes").groups["cheap"].count
    }

    #[test]
    fn a_page_stops_where_a_shard_with_more_stopped() {
        let view = compiled();
        let a = ShardPage {
            rows: vec![encoded("a", 1), encoded("c", 1), encoded("e", 1)],
            more: true,
        };
        let b = ShardPage {
            rows: vec![encoded("b", 1), RowPart::View(row("c", 2)), encoded("f", 1)],
            more: false,
        };
        let page = merge_pages(&view, vec![a, b], 10).expect("merges");
        // "f" is beyond "e", where shard a stopped: it may have keys before f.
        assert_eq!(keys(&page), ["a", "b", "c", "e"]);
        assert_eq!(page.next_after.as_deref(), Some("e"));
        assert_eq!(count(&page.rows[2]), Some(3), "c merged");
        // Rows one shard holds are forwarded as encoded, and read the same.
        assert!(matches!(page.rows[0], RowPart::Encoded(_)));
        assert!(matches!(page.rows[2], RowPart::View(_)));
        assert_eq!(
            serde_json::to_string(&page.rows[0]).expect("encodes"),
            serde_json::to_string(&row("a", 1)).expect("encodes")
        );
        assert_eq!(page.sources[2], BTreeSet::from([0, 1]));
        assert_eq!(page.sources[1], BTreeSet::from([1]));
    }

    #[test]
    fn the_limit_cuts_and_the_last_page_has_no_cursor() {
        let view = compiled();
        let a = ShardPage {
            rows: vec![encoded("a", 1), encoded("b", 1)],
            more: false,
        };
        let b = ShardPage {
            rows: vec![encoded("c", 1)],
            more: false,
        };
        let cut = merge_pages(&view, vec![a.clone(), b.clone()], 2).expect("merges");
        assert_eq!(keys(&cut), ["a", "b"]);
        assert_eq!(cut.next_after.as_deref(), Some("b"));
        let all = merge_pages(&view, vec![a, b], 3).expect("merges");
        assert_eq!(all.next_after, None);
    }

    #[test]
    fn key_pages_merge_as_row_pages_do() {
        let page = |keys: &[&str], more| (keys.iter().map(|k| k.to_string()).collect(), more);
        // Shard 0 stopped at "e" with more: "f" of shard 1 may come after
        // keys shard 0 has not listed yet.
        let merged = merge_keys(
            vec![page(&["a", "c", "e"], true), page(&["b", "c", "f"], false)],
            10,
        );
        let listed: Vec<(&str, Vec<usize>)> = merged
            .keys
            .iter()
            .map(|(k, s)| (k.as_str(), s.iter().copied().collect()))
            .collect();
        assert_eq!(
            listed,
            [
                ("a", vec![0]),
                ("b", vec![1]),
                ("c", vec![0, 1]),
                ("e", vec![0])
            ]
        );
        assert_eq!(merged.next_after.as_deref(), Some("e"));
        // The limit cuts; the last page has no cursor.
        let cut = merge_keys(vec![page(&["a", "b"], false), page(&["c"], false)], 2);
        assert_eq!(cut.next_after.as_deref(), Some("b"));
        let all = merge_keys(vec![page(&["a", "b"], false), page(&["c"], false)], 3);
        assert_eq!(all.keys.len(), 3);
        assert_eq!(all.next_after, None);
    }

    #[test]
    fn a_part_that_is_not_a_row_fails_the_merge() {
        let view = compiled();
        let bad: EncodedRow =
            serde_json::from_str(r#"{"key":"a","groups":{"cheap":{"count":"many"}}}"#)
                .expect("any JSON value is kept encoded");
        let pages = vec![
            ShardPage {
                rows: vec![RowPart::Encoded(bad)],
                more: false,
            },
            ShardPage {
                rows: vec![encoded("a", 1)],
                more: false,
            },
        ];
        assert!(merge_pages(&view, pages, 10).is_err());
    }

    #[test]
    fn rows_merge_across_shards_and_positions_unite() {
        let view = compiled();
        let merged = merge_rows(&view, [Some(row("u", 2)), None, Some(row("u", 5))]);
        assert_eq!(merged.expect("found").groups["cheap"].count, Some(7));
        assert_eq!(merge_rows(&view, [None, None]), None);
        let a: &[(i32, i64)] = &[(0, 10), (2, 4)];
        let b: &[(i32, i64)] = &[(1, 7)];
        assert_eq!(
            merge_positions([a, b]),
            BTreeMap::from([(0, 10), (1, 7), (2, 4)])
        );
    }

    #[test]
    fn cursors_are_opaque_and_checked() {
        for key in ["u-1", "", "ä/ö?&=", "c1.x"] {
            assert_eq!(decode_cursor(&encode_cursor(key)).as_deref(), Some(key));
        }
        assert_eq!(decode_cursor("u-1"), None);
        assert_eq!(decode_cursor("c1.!!"), None);
    }
}
