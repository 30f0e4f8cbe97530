//! Which partitions a shard depends on have replicas out of sync, in words
//! for the view's status. Kafka still serves them (a new leader took over),
//! but one more failure can stop writes (`min.insync.replicas`): worth
//! saying while it lasts, from the cluster's own metadata.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

/// How many partitions are named before "and N more".
const NAMED: usize = 3;

/// One partition's replicas as the cluster's metadata gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReplicas {
    pub partition: i32,
    /// The leading node, or -1 while none leads.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub in_sync: Vec<i32>,
}

/// Pure: the partitions of `topic` (`what`: "source topic", …) that have no
/// leader or replicas out of sync, in words; `None` when all are in sync.
pub fn out_of_sync(what: &str, topic: &str, partitions: &[PartitionReplicas]) -> Option<String> {
    let said: Vec<String> = partitions
        .iter()
        .filter_map(|p| {
            if p.leader < 0 {
                return Some(format!("partition {} has no leader", p.partition));
            }
            let in_sync: BTreeSet<i32> = p.in_sync.iter().copied().collect();
            let out: Vec<String> = p
                .replicas
                .iter()
                .filter(|r| !in_sync.contains(r))
                .map(i32::to_string)
                .collect();
            (!out.is_empty()).then(|| {
                format!(
                    "partition {} has {} of {} replicas in sync (out of sync: node {})",
                    p.partition,
                    p.replicas.len() - out.len(),
                    p.replicas.len(),
                    out.join(", node ")
                )
            })
        })
        .collect();
    if said.is_empty() {
        return None;
    }
    let more = said.len().saturating_sub(NAMED);
    let mut text = format!(
        "{what} {topic}: {}",
        said[..said.len().min(NAMED)].join("; ")
    );
    if more > 0 {
        text.push_str(&format!("; and {more} more partitions"));
    }
    Some(text)
}

/// Blocking: `topic`'s partitions (those in `only`, when given) as the
/// cluster's metadata says now; `None` when it does not answer in `timeout`.
pub fn read(
    client: &BaseConsumer,
    topic: &str,
    only: Option<&[i32]>,
    timeout: Duration,
) -> Option<Vec<PartitionReplicas>> {
    let metadata = client.fetch_metadata(Some(topic), timeout).ok()?;
    let found = metadata.topics().iter().find(|t| t.name() == topic)?;
    Some(
        found
            .partitions()
            .iter()
            .filter(|p| only.is_none_or(|only| only.contains(&p.id())))
            .map(|p| PartitionReplicas {
                partition: p.id(),
                leader: p.leader(),
                replicas: p.replicas().to_vec(),
                in_sync: p.isr().to_vec(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(partition: i32, leader: i32, in_sync: &[i32]) -> PartitionReplicas {
        PartitionReplicas {
            partition,
            leader,
            replicas: vec![1, 2, 3],
            in_sync: in_sync.to_vec(),
        }
    }

    #[test]
    fn all_in_sync_says_nothing() {
        let all = [partition(0, 1, &[1, 2, 3]), partition(1, 2, &[3, 2, 1])];
        assert_eq!(out_of_sync("source topic", "orders", &all), None);
        assert_eq!(out_of_sync("source topic", "orders", &[]), None);
    }

    #[test]
    fn the_nodes_out_of_sync_and_leaderless_partitions_are_named() {
        let some = [
            partition(0, 1, &[1, 2, 3]),
            partition(1, 2, &[2]),
            partition(2, -1, &[]),
        ];
        assert_eq!(
            out_of_sync("source topic", "orders", &some).as_deref(),
            Some(
                "source topic orders: partition 1 has 1 of 3 replicas in sync (out of sync: node 1, node 3); partition 2 has no leader"
            )
        );
    }

    #[test]
    fn many_partitions_are_counted_not_listed() {
        let many: Vec<_> = (0..5).map(|p| partition(p, 1, &[1, 2])).collect();
        let said = out_of_sync("dead-letter topic", "dl", &many).unwrap_or_default();
        assert!(said.ends_with("partition 2 has 2 of 3 replicas in sync (out of sync: node 3); and 2 more partitions"), "{said}");
        assert_eq!(said.matches("has 2 of 3").count(), 3, "{said}");
    }
}
