//! The operator's Kafka edge: is the source there, create the dead-letter
//! topic, measure a consumer group's lag, delete what a view owns.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("topic {0} does not exist; create it, or fix spec.source.kafka.topic")]
    MissingTopic(String),
    #[error("kafka at {servers}")]
    Client {
        servers: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("kafka at {servers}: cannot {operation} {name}: {code}")]
    Refused {
        servers: String,
        operation: &'static str,
        name: String,
        code: RDKafkaErrorCode,
    },
    #[error("a Kafka metadata task failed")]
    Task(#[source] tokio::task::JoinError),
    #[error("the operator's Kafka client cache is unusable after a panic")]
    Poisoned,
}

const TIMEOUT: Duration = Duration::from_secs(10);

fn client_config(servers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", servers)
        .set("socket.timeout.ms", "10000");
    config
}

fn unreachable(servers: &str, source: rdkafka::error::KafkaError) -> KafkaError {
    KafkaError::Client {
        servers: servers.into(),
        source,
    }
}

fn refused(
    servers: &str,
    operation: &'static str,
    name: &str,
    code: RDKafkaErrorCode,
) -> KafkaError {
    KafkaError::Refused {
        servers: servers.into(),
        operation,
        name: name.into(),
        code,
    }
}

/// How long a dead-letter topic known to exist is not asked about again.
const ENSURED_FOR: Duration = Duration::from_secs(600);
/// How long a topic's partition count is reused (a missing topic is not remembered).
const PARTITIONS_FOR: Duration = Duration::from_secs(30);

/// Kafka clients kept across reconciles: one metadata client per cluster
/// (bootstrap servers), and the topics already ensured. A reconcile then
/// makes at most one metadata request on an open connection.
#[derive(Default)]
pub struct KafkaClients {
    metadata: Mutex<HashMap<String, Arc<BaseConsumer>>>,
    ensured: Mutex<HashMap<(String, String), Instant>>,
    partitions: Mutex<HashMap<(String, String), (i32, Instant)>>,
}

impl KafkaClients {
    fn metadata_client(&self, servers: &str) -> Result<Arc<BaseConsumer>, KafkaError> {
        let mut clients = self.metadata.lock().map_err(|_| KafkaError::Poisoned)?;
        if let Some(client) = clients.get(servers) {
            return Ok(client.clone());
        }
        let client: BaseConsumer = client_config(servers)
            .create()
            .map_err(|e| unreachable(servers, e))?;
        let client = Arc::new(client);
        clients.insert(servers.to_string(), client.clone());
        Ok(client)
    }

    /// Partition count of a topic, off the async runtime (metadata calls block).
    pub async fn partitions(&self, servers: &str, topic: &str) -> Result<i32, KafkaError> {
        let key = (servers.to_string(), topic.to_string());
        let known = self
            .partitions
            .lock()
            .ok()
            .and_then(|p| p.get(&key).copied());
        if let Some((count, at)) = known
            && at.elapsed() < PARTITIONS_FOR
        {
            return Ok(count);
        }
        let consumer = self.metadata_client(servers)?;
        let count = partitions_with(consumer, servers, topic).await?;
        if let Ok(mut p) = self.partitions.lock() {
            p.insert(key, (count, Instant::now()));
        }
        Ok(count)
    }

    /// Creates the topic unless it exists (or was seen to exist lately).
    pub async fn ensure_topic(
        &self,
        servers: &str,
        topic: &str,
        partitions: i32,
    ) -> Result<bool, KafkaError> {
        let key = (servers.to_string(), topic.to_string());
        let fresh = self
            .ensured
            .lock()
            .ok()
            .and_then(|e| e.get(&key).copied())
            .is_some_and(|at| at.elapsed() < ENSURED_FOR);
        if fresh {
            return Ok(false);
        }
        let created = ensure_topic(servers, topic, partitions).await?;
        if let Ok(mut ensured) = self.ensured.lock() {
            ensured.insert(key, Instant::now());
        }
        Ok(created)
    }

    /// After deleting a topic: the next ensure asks Kafka again.
    pub fn forget_topic(&self, servers: &str, topic: &str) {
        if let Ok(mut ensured) = self.ensured.lock() {
            ensured.remove(&(servers.to_string(), topic.to_string()));
        }
    }
}

async fn partitions_with(
    consumer: Arc<BaseConsumer>,
    servers: &str,
    topic: &str,
) -> Result<i32, KafkaError> {
    let (servers, topic) = (servers.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let metadata = consumer
            .fetch_metadata(Some(&topic), TIMEOUT)
            .map_err(|e| unreachable(&servers, e))?;
        metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len() as i32)
            .filter(|n| *n > 0)
            .ok_or(KafkaError::MissingTopic(topic))
    })
    .await
    .map_err(KafkaError::Task)?
}

fn admin(servers: &str) -> Result<AdminClient<DefaultClientContext>, KafkaError> {
    client_config(servers)
        .create()
        .map_err(|e| unreachable(servers, e))
}

/// Creates the topic unless it exists.
async fn ensure_topic(servers: &str, topic: &str, partitions: i32) -> Result<bool, KafkaError> {
    let admin = admin(servers)?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = admin
        .create_topics([&new], &options)
        .await
        .map_err(|e| unreachable(servers, e))?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | None => Ok(false),
        Some(Err((t, code))) => Err(refused(servers, "create topic", &t, code)),
    }
}

/// Deletes topics and consumer groups; ones already gone are fine.
pub async fn delete(servers: &str, topics: &[&str], groups: &[&str]) -> Result<(), KafkaError> {
    let admin = admin(servers)?;
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    if !topics.is_empty() {
        for result in admin
            .delete_topics(topics, &options)
            .await
            .map_err(|e| unreachable(servers, e))?
        {
            if let Err((t, code)) = result
                && code != RDKafkaErrorCode::UnknownTopicOrPartition
            {
                return Err(refused(servers, "delete topic", &t, code));
            }
        }
    }
    if !groups.is_empty() {
        for result in admin
            .delete_groups(groups, &options)
            .await
            .map_err(|e| unreachable(servers, e))?
        {
            if let Err((g, code)) = result
                && !matches!(
                    code,
                    RDKafkaErrorCode::GroupIdNotFound | RDKafkaErrorCode::NotCoordinator
                )
            {
                return Err(refused(servers, "delete consumer group", &g, code));
            }
        }
    }
    Ok(())
}

/// A consumer group's lag on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLag {
    /// Events not committed, summed over partitions (from the start of a
    /// partition the group never committed).
    pub events: i64,
    /// Whether the group committed anything: before that, lag is unknown to
    /// readers of status (not zero), though `events` still says how far a
    /// new revision has to go.
    pub measured: bool,
}

/// Events of `topic` the consumer group has not committed, summed over partitions.
pub async fn group_lag(
    servers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Result<GroupLag, KafkaError> {
    let (servers, group, topic) = (servers.to_string(), group.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client_config(&servers)
            .set("group.id", &group)
            .create()
            .map_err(|e| unreachable(&servers, e))?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(&topic, p);
        }
        let committed = consumer
            .committed_offsets(tpl, TIMEOUT)
            .map_err(|e| unreachable(&servers, e))?;
        let (mut events, mut measured) = (0, false);
        for p in 0..partitions {
            let (low, high) = consumer
                .fetch_watermarks(&topic, p, TIMEOUT)
                .map_err(|e| unreachable(&servers, e))?;
            let at = match committed.find_partition(&topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => {
                    measured = true;
                    o
                }
                _ => low,
            };
            events += (high - at).max(0);
        }
        Ok(GroupLag { events, measured })
    })
    .await
    .map_err(KafkaError::Task)?
}
