//! Can a rebuild see the whole history? A new revision is built by reading
//! the topic again; when retention already deleted its beginning (a log
//! start offset above 0, and a cleanup policy without `compact`), the
//! rebuilt view would silently lack those events. Pure: what Kafka said in,
//! the verdict out.

use std::collections::BTreeMap;

/// What Kafka says of a topic's beginning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicHistory {
    /// `cleanup.policy` includes `compact`: the log keeps each key's latest value.
    pub compacted: bool,
    /// Log start offset by partition.
    pub log_starts: BTreeMap<i32, i64>,
}

/// The verdict on a rebuild from this topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum History {
    /// Every partition still starts at offset 0.
    Whole,
    /// A compacted log: rebuilding from it is correct (each key's latest
    /// value is kept, and a table view needs no more).
    Compacted,
    /// Retention deleted the beginning of these partitions: (partition,
    /// offsets gone). `accepted`: the spec says to switch anyway.
    Deleted {
        partitions: Vec<(i32, i64)>,
        accepted: bool,
    },
}

/// The verdict, from what Kafka said and whether the spec accepts a gap.
pub fn verdict(topic: &TopicHistory, accepted: bool) -> History {
    let partitions: Vec<(i32, i64)> = topic
        .log_starts
        .iter()
        .filter(|(_, start)| **start > 0)
        .map(|(p, start)| (*p, *start))
        .collect();
    if topic.compacted {
        History::Compacted
    } else if partitions.is_empty() {
        History::Whole
    } else {
        History::Deleted {
            partitions,
            accepted,
        }
    }
}

impl History {
    /// Whether the operator must keep the serving revision.
    pub fn blocks_switch(&self) -> bool {
        matches!(
            self,
            History::Deleted {
                accepted: false,
                ..
            }
        )
    }

    /// The `HistoryComplete` condition: (true?, reason, message).
    pub fn condition(&self, topic: &str) -> (bool, &'static str, String) {
        match self {
            History::Whole => (
                true,
                "FromTheBeginning",
                format!("topic {topic} still holds every event: the rebuild reads them all"),
            ),
            History::Compacted => (
                true,
                "Compacted",
                format!(
                    "topic {topic} is compacted: the rebuild reads each key's latest value, which is all the view needs"
                ),
            ),
            History::Deleted {
                partitions,
                accepted,
            } => {
                let gone: i64 = partitions.iter().map(|(_, n)| n).sum();
                let which = partitions
                    .iter()
                    .map(|(p, n)| format!("{p} ({n})"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let head = format!(
                    "retention deleted the beginning of topic {topic}: {gone} offsets are gone from partitions {which}, so the rebuilt revision lacks events the serving one counted"
                );
                if *accepted {
                    (
                        false,
                        "IncompleteAccepted",
                        format!(
                            "{head}; spec.source.acceptIncompleteHistory is true, so it switches once caught up"
                        ),
                    )
                } else {
                    (
                        false,
                        "RetentionDeletedEvents",
                        format!(
                            "{head}; the serving revision keeps serving. Set spec.source.acceptIncompleteHistory: true to switch anyway, or revert the change"
                        ),
                    )
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(compacted: bool, starts: &[(i32, i64)]) -> TopicHistory {
        TopicHistory {
            compacted,
            log_starts: starts.iter().copied().collect(),
        }
    }

    #[test]
    fn deleted_beginnings_block_the_switch_unless_accepted_or_compacted() {
        assert_eq!(
            verdict(&topic(false, &[(0, 0), (1, 0)]), false),
            History::Whole
        );
        let gone = verdict(&topic(false, &[(0, 0), (1, 120), (2, 5)]), false);
        assert!(gone.blocks_switch());
        let (ok, reason, message) = gone.condition("orders");
        assert_eq!((ok, reason), (false, "RetentionDeletedEvents"));
        assert!(
            message.contains("125 offsets") && message.contains("1 (120), 2 (5)"),
            "{message}"
        );
        let accepted = verdict(&topic(false, &[(1, 120)]), true);
        assert!(!accepted.blocks_switch());
        assert_eq!(accepted.condition("orders").1, "IncompleteAccepted");
        // Compaction moves no log start but may: either way the rebuild is right.
        let compacted = verdict(&topic(true, &[(0, 40)]), false);
        assert_eq!(compacted, History::Compacted);
        assert!(!compacted.blocks_switch());
    }
}
