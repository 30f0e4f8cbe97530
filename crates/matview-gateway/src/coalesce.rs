//! Consecutive changes of one shard folded into one, so a stream that fell
//! behind catches up with one merge per shard instead of one per change.
//! Pure: the folded change says what the last of them says about each key.

use std::collections::{BTreeMap, BTreeSet};

use matview_api::projector::WatchEvent;
use matview_engine::RowView;

/// Folds `events` (one shard's, in order) into one: a key's row as the last
/// event that changed it has it, or removed when that event removed it; keys
/// that left a group in any of them (whether they are still out is decided
/// by the final row); the last event's positions and sequence number.
pub fn coalesce(events: Vec<WatchEvent>) -> Option<WatchEvent> {
    let mut rows: BTreeMap<String, RowView> = BTreeMap::new();
    let mut removed: BTreeSet<String> = BTreeSet::new();
    let mut left: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut last = None;
    for event in events {
        for row in event.rows {
            removed.remove(&row.key);
            rows.insert(row.key.clone(), row);
        }
        for key in event.removed {
            rows.remove(&key);
            removed.insert(key);
        }
        for (group, keys) in event.left {
            left.entry(group).or_default().extend(keys);
        }
        last = Some((event.seq, event.positions));
    }
    let (seq, positions) = last?;
    Some(WatchEvent {
        seq,
        rows: rows.into_values().collect(),
        removed: removed.into_iter().collect(),
        left: left
            .into_iter()
            .map(|(group, keys)| (group, keys.into_iter().collect()))
            .collect(),
        positions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use matview_engine::GroupView;

    fn row(key: &str, count: u64) -> RowView {
        let group = GroupView {
            count: Some(count),
            sum: BTreeMap::new(),
            items: None,
            truncated: false,
        };
        RowView {
            key: key.into(),
            groups: BTreeMap::from([("cheap".to_string(), group)]),
        }
    }

    fn event(seq: u64, rows: Vec<RowView>, removed: &[&str], left: &[&str]) -> WatchEvent {
        WatchEvent {
            seq,
            rows,
            removed: removed.iter().map(|k| k.to_string()).collect(),
            left: if left.is_empty() {
                BTreeMap::new()
            } else {
                BTreeMap::from([(
                    "cheap".to_string(),
                    left.iter().map(|k| k.to_string()).collect(),
                )])
            },
            positions: format!("0:{seq}"),
        }
    }

    #[test]
    fn the_last_word_on_each_key_wins() {
        let folded = coalesce(vec![
            event(1, vec![row("a", 1), row("b", 1)], &[], &[]),
            event(2, vec![row("a", 2)], &["b"], &["b"]),
            event(3, vec![row("c", 1)], &["a"], &[]),
            event(4, vec![row("b", 5)], &[], &[]),
        ])
        .expect("events");
        let rows: Vec<(&str, Option<u64>)> = folded
            .rows
            .iter()
            .map(|r| (r.key.as_str(), r.groups["cheap"].count))
            .collect();
        // b came back after its removal; a was removed after its update.
        assert_eq!(rows, [("b", Some(5)), ("c", Some(1))]);
        assert_eq!(folded.removed, ["a"]);
        assert_eq!(folded.left["cheap"], ["b"]);
        assert_eq!((folded.seq, folded.positions.as_str()), (4, "0:4"));
    }

    #[test]
    fn nothing_folds_to_nothing_and_one_event_stays_itself() {
        assert_eq!(coalesce(Vec::new()), None);
        let one = event(7, vec![row("a", 1)], &["z"], &["y"]);
        assert_eq!(coalesce(vec![one.clone()]), Some(one));
    }
}
