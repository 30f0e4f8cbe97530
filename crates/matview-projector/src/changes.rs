//! The change feed: each committed batch gets a sequence number, the keys of
//! the rows it changed and the applied positions after it. A watcher resumes
//! from a sequence number (this process only) or from Kafka positions (which
//! every replica of the shard shares) while the buffer reaches back that far;
//! otherwise it is told to reload.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::store::ChangedRow;

/// Batches kept for resuming watchers.
const KEPT: usize = 4096;

pub type Positions = BTreeMap<i32, i64>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: u64,
    pub rows: Arc<Vec<ChangedRow>>,
    /// Next offset to apply per partition, once this batch is applied.
    pub positions: Arc<Positions>,
}

struct FeedState {
    seq: u64,
    kept: VecDeque<Change>,
    /// Positions before the oldest kept change: what is older is folded into
    /// rows and cannot be replayed.
    floor: Positions,
}

pub struct ChangeFeed {
    state: Mutex<FeedState>,
    tx: broadcast::Sender<Change>,
}

/// Where a watcher resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum From {
    /// Live changes only.
    Now,
    /// After a sequence number of this process.
    Seq(u64),
    /// After these positions (shared by every replica of the shard).
    Positions(Positions),
}

/// What a resuming watcher gets first.
#[derive(Debug, PartialEq, Eq)]
pub enum Resume {
    /// Changes it missed, in order.
    Replay(Vec<Change>),
    /// It missed more than the buffer holds: reload everything.
    TooOld,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        ChangeFeed {
            state: Mutex::new(FeedState {
                seq: 0,
                kept: VecDeque::new(),
                floor: Positions::new(),
            }),
            tx: broadcast::channel(1024).0,
        }
    }
}

/// Pure: does a change carry events after `from`?
fn beyond(change: &Change, from: &Positions) -> bool {
    change
        .positions
        .iter()
        .any(|(p, o)| *o > from.get(p).copied().unwrap_or(0))
}

impl ChangeFeed {
    /// Positions the feed starts from (the store's, when the projector starts).
    pub fn set_floor(&self, positions: Positions) {
        if let Ok(mut state) = self.state.lock()
            && state.kept.is_empty()
        {
            state.floor = positions;
        }
    }

    pub fn publish(&self, rows: Vec<ChangedRow>, positions: Positions) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.seq += 1;
        let change = Change {
            seq: state.seq,
            rows: Arc::new(rows),
            positions: Arc::new(positions),
        };
        if state.kept.len() == KEPT
            && let Some(oldest) = state.kept.pop_front()
        {
            state.floor = (*oldest.positions).clone();
        }
        state.kept.push_back(change.clone());
        let _ = self.tx.send(change);
    }

    /// Subscribes, and says what was missed since `from`; the sequence number
    /// current at subscription comes last.
    pub fn subscribe(&self, from: &From) -> (broadcast::Receiver<Change>, Resume, u64) {
        let rx = self.tx.subscribe();
        let Ok(state) = self.state.lock() else {
            return (rx, Resume::TooOld, 0);
        };
        let current = state.seq;
        let resume = match from {
            From::Now => Resume::Replay(Vec::new()),
            From::Seq(after) if *after >= current => Resume::Replay(Vec::new()),
            From::Seq(after) => match state.kept.front() {
                Some(oldest) if oldest.seq <= after + 1 => Resume::Replay(
                    state
                        .kept
                        .iter()
                        .filter(|c| c.seq > *after)
                        .cloned()
                        .collect(),
                ),
                _ => Resume::TooOld,
            },
            From::Positions(from) => {
                let missed_folded = state
                    .floor
                    .iter()
                    .any(|(p, floor)| from.get(p).copied().unwrap_or(0) < *floor);
                if missed_folded {
                    Resume::TooOld
                } else {
                    Resume::Replay(
                        state
                            .kept
                            .iter()
                            .filter(|c| beyond(c, from))
                            .cloned()
                            .collect(),
                    )
                }
            }
        };
        (rx, resume, current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(keys: &[&str]) -> Vec<ChangedRow> {
        keys.iter()
            .map(|k| ChangedRow {
                key: k.to_string(),
                left_groups: Vec::new(),
            })
            .collect()
    }

    fn at(p0: i64, p2: i64) -> Positions {
        Positions::from([(0, p0), (2, p2)])
    }

    #[test]
    fn resumes_from_a_sequence_number_or_says_too_old() {
        let feed = ChangeFeed::default();
        feed.publish(rows(&["a"]), at(1, 0));
        feed.publish(rows(&["b"]), at(2, 0));
        let (_, resume, current) = feed.subscribe(&From::Seq(1));
        assert_eq!(current, 2);
        match resume {
            Resume::Replay(changes) => {
                assert_eq!(changes.iter().map(|c| c.seq).collect::<Vec<_>>(), [2])
            }
            other => panic!("{other:?}"),
        }
        for _ in 0..KEPT {
            feed.publish(rows(&[]), at(3, 0));
        }
        assert_eq!(feed.subscribe(&From::Seq(1)).1, Resume::TooOld);
    }

    #[test]
    fn resumes_from_positions_any_replica_shares() {
        let feed = ChangeFeed::default();
        feed.set_floor(at(10, 20));
        feed.publish(rows(&["a"]), at(12, 20));
        feed.publish(rows(&["b"]), at(12, 25));
        feed.publish(rows(&["c"]), at(15, 25));
        let replay = |from: Positions| match feed.subscribe(&From::Positions(from)).1 {
            Resume::Replay(changes) => changes
                .iter()
                .map(|c| c.rows[0].key.clone())
                .collect::<Vec<_>>(),
            Resume::TooOld => vec!["too old".to_string()],
        };
        assert_eq!(replay(at(12, 20)), ["b", "c"]);
        assert_eq!(replay(at(12, 25)), ["c"]);
        assert_eq!(replay(at(15, 25)), Vec::<String>::new());
        // Ahead of this replica (another one got further): nothing to replay.
        assert_eq!(replay(at(16, 30)), Vec::<String>::new());
        // Older than what the buffer reaches back to.
        assert_eq!(replay(at(9, 20)), ["too old"]);
        assert_eq!(replay(Positions::from([(0, 12)])), ["too old"]);
    }
}
