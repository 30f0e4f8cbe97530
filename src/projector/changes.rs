//! The change feed: each committed batch gets a sequence number and the keys
//! of the rows it changed. Watchers resume from a sequence number while it is
//! still in the buffer; older ones are told to reload.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

/// Batches kept for resuming watchers.
const KEPT: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: u64,
    pub rows: Arc<Vec<String>>,
}

pub struct ChangeFeed {
    state: Mutex<(u64, VecDeque<Change>)>,
    tx: broadcast::Sender<Change>,
}

/// What a watcher resuming after `seq` gets first.
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
            state: Mutex::new((0, VecDeque::new())),
            tx: broadcast::channel(1024).0,
        }
    }
}

impl ChangeFeed {
    pub fn publish(&self, rows: Vec<String>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.0 += 1;
        let change = Change {
            seq: state.0,
            rows: Arc::new(rows),
        };
        if state.1.len() == KEPT {
            state.1.pop_front();
        }
        state.1.push_back(change.clone());
        let _ = self.tx.send(change);
    }

    /// Subscribes, and says what was missed after `after` (if given).
    pub fn subscribe(&self, after: Option<u64>) -> (broadcast::Receiver<Change>, Resume, u64) {
        let rx = self.tx.subscribe();
        let Ok(state) = self.state.lock() else {
            return (rx, Resume::TooOld, 0);
        };
        let current = state.0;
        let resume = match after {
            None => Resume::Replay(Vec::new()),
            Some(after) if after >= current => Resume::Replay(Vec::new()),
            Some(after) => match state.1.front() {
                Some(oldest) if oldest.seq <= after + 1 => {
                    Resume::Replay(state.1.iter().filter(|c| c.seq > after).cloned().collect())
                }
                _ => Resume::TooOld,
            },
        };
        (rx, resume, current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_from_buffer_or_says_too_old() {
        let feed = ChangeFeed::default();
        feed.publish(vec!["a".into()]);
        feed.publish(vec!["b".into()]);
        let (_, resume, current) = feed.subscribe(Some(1));
        assert_eq!(current, 2);
        match resume {
            Resume::Replay(changes) => {
                assert_eq!(changes.iter().map(|c| c.seq).collect::<Vec<_>>(), [2])
            }
            other => panic!("{other:?}"),
        }
        for _ in 0..KEPT {
            feed.publish(vec![]);
        }
        assert_eq!(feed.subscribe(Some(1)).1, Resume::TooOld);
    }
}
