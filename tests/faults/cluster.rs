//! A replicated Kafka cluster of one test's own (`hack/testenv.sh cluster
//! <name>`): three KRaft nodes, each in a network namespace of its own,
//! that a test kills, cuts off, heals and slows down. Removed when dropped.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::support::{testenv, testenv_command, unique_name};

pub struct OwnCluster {
    name: String,
    pub bootstrap: String,
}

impl OwnCluster {
    /// Starts three nodes and waits until each serves. Blocking.
    pub fn start(prefix: &str) -> OwnCluster {
        let name = unique_name(prefix);
        // Dropped (and so removed) also when the start fails half way.
        let mut cluster = OwnCluster {
            name,
            bootstrap: String::new(),
        };
        cluster.bootstrap = testenv(&["cluster", &cluster.name]);
        cluster
    }

    /// kill -9 of node `node` (1–3), waited for.
    pub fn kill(&self, node: i32) {
        testenv(&["cluster-kill", &self.name, &node.to_string()]);
    }

    /// Node `node` shut down cleanly (SIGTERM), waited for.
    pub fn stop_node(&self, node: i32) {
        testenv(&["cluster-stop", &self.name, &node.to_string()]);
    }

    /// A client for the cluster's metadata and watermarks.
    fn metadata_client(&self) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .expect("metadata client")
    }

    /// Every partition of `topic` has all three replicas in sync.
    pub fn fully_replicated(&self, topic: &str) -> bool {
        let consumer = self.metadata_client();
        let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) else {
            return false;
        };
        metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .is_some_and(|t| {
                !t.partitions().is_empty() && t.partitions().iter().all(|p| p.isr().len() == 3)
            })
    }

    /// Connection attempts (SYN packets) sent to node `node` from the root
    /// namespace — tests, projectors, the operator — since the cluster
    /// started. Blocking.
    pub fn syns(name: &str, node: i32) -> u64 {
        let count = testenv(&["cluster-syns", name, &node.to_string()]);
        count
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("cluster-syns printed {count:?}, not a count"))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Each partition's high watermark of `topic` now, as its leader says.
    pub fn high_watermarks(&self, topic: &str) -> std::collections::BTreeMap<i32, i64> {
        let consumer = self.metadata_client();
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .expect("metadata");
        let found = metadata.topics().iter().find(|t| t.name() == topic);
        found
            .map(|t| t.partitions())
            .unwrap_or_default()
            .iter()
            .map(|p| {
                let (_, high) = consumer
                    .fetch_watermarks(topic, p.id(), Duration::from_secs(30))
                    .expect("watermarks");
                (p.id(), high)
            })
            .collect()
    }

    /// Node `node` started again (same address and data), serving.
    pub fn start_node(&self, node: i32) {
        testenv(&["cluster-start", &self.name, &node.to_string()]);
    }

    /// A network namespace of the test's own on the cluster's bridge:
    /// (its name, its address).
    pub fn host(&self, host: &str) -> (String, String) {
        let ip = testenv(&["cluster-host", &self.name, host]);
        let subnet = ip.split('.').nth(2).expect("an IPv4 address").to_string();
        (format!("mv{subnet}-{host}"), ip)
    }

    /// `host` (made by [`OwnCluster::host`]) and the nodes cut off from each
    /// other; the rest of the bridge still reaches it. [`OwnCluster::heal`] ends it.
    pub fn isolate(&self, host: &str) {
        testenv(&["isolate", &self.name, host]);
    }

    /// Host `host` (`b1`..`b3`, or one made by [`OwnCluster::host`]) cut off.
    pub fn cut(&self, host: &str) {
        testenv(&["cut", &self.name, host]);
    }

    pub fn heal(&self, host: &str) {
        testenv(&["heal", &self.name, host]);
    }

    /// Delay and loss on `host`'s link, each way.
    pub fn slow(&self, host: &str, delay_ms: u32, loss_percent: u32) {
        testenv(&[
            "slow",
            &self.name,
            host,
            &delay_ms.to_string(),
            &loss_percent.to_string(),
        ]);
    }

    pub fn fast(&self, host: &str) {
        testenv(&["fast", &self.name, host]);
    }

    /// The node (1–3) leading `partition` of `topic` now, as the cluster's
    /// metadata says; `None` while it has no leader.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let consumer = self.metadata_client();
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .ok()?;
        let found = metadata.topics().iter().find(|t| t.name() == topic)?;
        let p = found.partitions().iter().find(|p| p.id() == partition)?;
        (p.leader() >= 1).then_some(p.leader())
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = testenv_command(&["cluster-down", &self.name]).output();
    }
}
