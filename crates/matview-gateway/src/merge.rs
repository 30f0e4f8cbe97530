//! Pure merging of shard answers: rows of one key, pages of a group scan,
//! positions, and the opaque scan cursor. No I/O.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

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

/// A merged page of a group scan.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedPage {
    /// Keys of the page, in order, each with the shards' parts found so far.
    pub rows: Vec<RowView>,
    /// For each row, the shards (indexes of the input pages) it came from:
    /// the others may still hold parts of it outside the scanned group.
    pub sources: Vec<BTreeSet<usize>>,
    /// The last key served, when more may follow.
    pub next_after: Option<String>,
}

/// One shard's page: its rows in key order, and whether it has more.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardPage {
    pub rows: Vec<RowView>,
    pub more: bool,
}

/// Merges shard pages (each sorted by key, each the shard's first keys after
/// the cursor). Keys up to the smallest last key of a shard that has more are
/// complete in every page; the merged page stops there, and at `limit`.
pub fn merge_pages(view: &CompiledView, pages: Vec<ShardPage>, limit: usize) -> MergedPage {
    let cutoff: Option<String> = pages
        .iter()
        .filter(|p| p.more)
        .filter_map(|p| p.rows.last().map(|r| r.key.clone()))
        .min();
    let any_more = pages.iter().any(|p| p.more);
    let mut by_key: BTreeMap<String, (RowView, BTreeSet<usize>)> = BTreeMap::new();
    let tagged = pages
        .into_iter()
        .enumerate()
        .flat_map(|(shard, p)| p.rows.into_iter().map(move |row| (shard, row)));
    for (shard, row) in tagged {
        if cutoff.as_ref().is_some_and(|c| row.key > *c) {
            continue;
        }
        let (merged, mut sources) = match by_key.remove(&row.key) {
            Some((existing, sources)) => (view.merge_views(existing, row), sources),
            None => (row, BTreeSet::new()),
        };
        sources.insert(shard);
        by_key.insert(merged.key.clone(), (merged, sources));
    }
    let cut = by_key.len() > limit;
    let (rows, sources): (Vec<RowView>, Vec<BTreeSet<usize>>) =
        by_key.into_values().take(limit).unzip();
    let next_after = if cut || any_more {
        rows.last().map(|r| r.key.clone())
    } else {
        None
    };
    MergedPage {
        rows,
        sources,
        next_after,
    }
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

    fn keys(page: &MergedPage) -> Vec<&str> {
        page.rows.iter().map(|r| r.key.as_str()).collect()
    }

    #[test]
    fn a_page_stops_where_a_shard_with_more_stopped() {
        let view = compiled();
        let a = ShardPage {
            rows: vec![row("a", 1), row("c", 1), row("e", 1)],
            more: true,
        };
        let b = ShardPage {
            rows: vec![row("b", 1), row("c", 2), row("f", 1)],
            more: false,
        };
        let page = merge_pages(&view, vec![a, b], 10);
        // "f" is beyond "e", where shard a stopped: it may have keys before f.
        assert_eq!(keys(&page), ["a", "b", "c", "e"]);
        assert_eq!(page.next_after.as_deref(), Some("e"));
        assert_eq!(page.rows[2].groups["cheap"].count, Some(3), "c merged");
        assert_eq!(page.sources[2], BTreeSet::from([0, 1]));
        assert_eq!(page.sources[1], BTreeSet::from([1]));
    }

    #[test]
    fn the_limit_cuts_and_the_last_page_has_no_cursor() {
        let view = compiled();
        let a = ShardPage {
            rows: vec![row("a", 1), row("b", 1)],
            more: false,
        };
        let b = ShardPage {
            rows: vec![row("c", 1)],
            more: false,
        };
        let cut = merge_pages(&view, vec![a.clone(), b.clone()], 2);
        assert_eq!(keys(&cut), ["a", "b"]);
        assert_eq!(cut.next_after.as_deref(), Some("b"));
        let all = merge_pages(&view, vec![a, b], 3);
        assert_eq!(all.next_after, None);
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
