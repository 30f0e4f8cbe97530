//! The operator's Kafka edge: is the source there, create the dead-letter
//! topic, measure a consumer group's lag, delete what a view owns.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::kafka_connection::LastError;
pub use super::kafka_connection::{ConnectFailure, KafkaConnection};

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("topic {0} does not exist; create it, or fix spec.source.kafka.topic")]
    MissingTopic(String),
    /// The client could not be made, or could not reach the cluster;
    /// `said` is librdkafka's own reason, when it gave one.
    #[error("kafka at {servers}{}{}", said.as_deref().map(|s| format!(": {s}")).unwrap_or_default(), failure.hint())]
    Client {
        servers: String,
        failure: ConnectFailure,
        said: Option<String>,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    #[error(
        "{kind} {name} named by spec.source.kafka.configFrom does not exist; create it, or fix the name"
    )]
    MissingClientConfig { kind: &'static str, name: String },
    #[error(
        "no Kafka bootstrap servers: set spec.source.kafka.bootstrapServers or a bootstrap.servers key in configFrom"
    )]
    NoBootstrapServers,
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

fn unreachable(kafka: &KafkaConnection, source: rdkafka::error::KafkaError) -> KafkaError {
    KafkaError::Client {
        servers: kafka.servers.clone(),
        failure: ConnectFailure::of_error(&source),
        said: None,
        source: Box::new(source),
    }
}

/// A failed request, with what the client's error callback said about it.
fn failed_with(
    kafka: &KafkaConnection,
    context: &LastError,
    source: rdkafka::error::KafkaError,
) -> KafkaError {
    match context.take() {
        Some((failure, said)) => KafkaError::Client {
            servers: kafka.servers.clone(),
            failure,
            said: Some(said),
            source: Box::new(source),
        },
        None => unreachable(kafka, source),
    }
}

impl KafkaError {
    /// Whether a person must change something (credentials, certificates,
    /// properties, a Secret) before a retry can succeed.
    pub fn needs_a_fix(&self) -> bool {
        match self {
            KafkaError::Client { failure, .. } => *failure != ConnectFailure::Unreachable,
            KafkaError::MissingClientConfig { .. } | KafkaError::NoBootstrapServers => true,
            _ => false,
        }
    }

    /// The status message: the whole chain ("kafka at …" alone does not say
    /// what failed), unless librdkafka's own reason already says it.
    pub fn message(&self) -> String {
        match self {
            KafkaError::Client { said: Some(_), .. } => self.to_string(),
            other => matview_api::errors::chain(other),
        }
    }

    /// The `SourceReady` reason when this keeps the source from being read.
    pub fn reason(&self) -> &'static str {
        match self {
            KafkaError::MissingTopic(_) => "TopicUnavailable",
            KafkaError::Client { failure, .. } => failure.reason(),
            KafkaError::MissingClientConfig { .. } => "ClientConfigNotFound",
            KafkaError::NoBootstrapServers => "NoBootstrapServers",
            _ => "BrokerUnreachable",
        }
    }
}

fn refused(
    kafka: &KafkaConnection,
    operation: &'static str,
    name: &str,
    code: RDKafkaErrorCode,
) -> KafkaError {
    KafkaError::Refused {
        servers: kafka.servers.clone(),
        operation,
        name: name.into(),
        code,
    }
}

/// How long a dead-letter topic known to exist is not asked about again.
const ENSURED_FOR: Duration = Duration::from_secs(600);
/// How long a topic's partition count is reused (a missing topic is not remembered).
const PARTITIONS_FOR: Duration = Duration::from_secs(30);

/// Kafka clients kept across reconciles: one metadata client per
/// connection (servers and connection properties), and the topics already
/// ensured. A reconcile then makes at most one metadata request on an open
/// connection.
#[derive(Default)]
pub struct KafkaClients {
    metadata: Mutex<HashMap<KafkaConnection, Arc<BaseConsumer<LastError>>>>,
    ensured: Mutex<HashMap<(KafkaConnection, String), Instant>>,
    partitions: Mutex<HashMap<(KafkaConnection, String), (i32, Instant)>>,
}

impl KafkaClients {
    fn metadata_client(
        &self,
        kafka: &KafkaConnection,
    ) -> Result<Arc<BaseConsumer<LastError>>, KafkaError> {
        let mut clients = self.metadata.lock().map_err(|_| KafkaError::Poisoned)?;
        if let Some(client) = clients.get(kafka) {
            return Ok(client.clone());
        }
        let client: BaseConsumer<LastError> = kafka
            .client_config()
            .create_with_context(LastError::default())
            .map_err(|e| unreachable(kafka, e))?;
        let client = Arc::new(client);
        clients.insert(kafka.clone(), client.clone());
        Ok(client)
    }

    /// Partition count of a topic, off the async runtime (metadata calls block).
    pub async fn partitions(
        &self,
        kafka: &KafkaConnection,
        topic: &str,
    ) -> Result<i32, KafkaError> {
        let key = (kafka.clone(), topic.to_string());
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
        let consumer = self.metadata_client(kafka)?;
        let count = match partitions_with(consumer, kafka, topic).await {
            Ok(count) => count,
            Err(e @ KafkaError::Client { .. }) => {
                // A client that cannot connect keeps retrying in the
                // background (a refused password, again and again): drop it.
                if let Ok(mut clients) = self.metadata.lock() {
                    clients.remove(kafka);
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if let Ok(mut p) = self.partitions.lock() {
            p.insert(key, (count, Instant::now()));
        }
        Ok(count)
    }

    /// Creates the topic unless it exists (or was seen to exist lately).
    pub async fn ensure_topic(
        &self,
        kafka: &KafkaConnection,
        topic: &str,
        partitions: i32,
    ) -> Result<bool, KafkaError> {
        let key = (kafka.clone(), topic.to_string());
        let fresh = self
            .ensured
            .lock()
            .ok()
            .and_then(|e| e.get(&key).copied())
            .is_some_and(|at| at.elapsed() < ENSURED_FOR);
        if fresh {
            return Ok(false);
        }
        let created = ensure_topic(kafka, topic, partitions).await?;
        if let Ok(mut ensured) = self.ensured.lock() {
            ensured.insert(key, Instant::now());
        }
        Ok(created)
    }

    /// After deleting a topic: the next ensure asks Kafka again.
    pub fn forget_topic(&self, kafka: &KafkaConnection, topic: &str) {
        if let Ok(mut ensured) = self.ensured.lock() {
            ensured.remove(&(kafka.clone(), topic.to_string()));
        }
    }
}

async fn partitions_with(
    consumer: Arc<BaseConsumer<LastError>>,
    kafka: &KafkaConnection,
    topic: &str,
) -> Result<i32, KafkaError> {
    let (kafka, topic) = (kafka.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let metadata = match consumer.fetch_metadata(Some(&topic), TIMEOUT) {
            Ok(metadata) => metadata,
            Err(e) => {
                // Serve the queued callbacks: their error says why.
                let _ = consumer.poll(Duration::from_millis(200));
                return Err(failed_with(&kafka, consumer.context(), e));
            }
        };
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

fn admin(kafka: &KafkaConnection) -> Result<AdminClient<LastError>, KafkaError> {
    kafka
        .client_config()
        .create_with_context(LastError::default())
        .map_err(|e| unreachable(kafka, e))
}

/// Creates the topic unless it exists.
async fn ensure_topic(
    kafka: &KafkaConnection,
    topic: &str,
    partitions: i32,
) -> Result<bool, KafkaError> {
    let admin = admin(kafka)?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = admin
        .create_topics([&new], &options)
        .await
        .map_err(|e| failed_with(kafka, admin.inner().context(), e))?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(true),
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | None => Ok(false),
        Some(Err((t, code))) => Err(refused(kafka, "create topic", &t, code)),
    }
}

/// Deletes topics and consumer groups; ones already gone are fine.
pub async fn delete(
    kafka: &KafkaConnection,
    topics: &[&str],
    groups: &[&str],
) -> Result<(), KafkaError> {
    let admin = admin(kafka)?;
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    if !topics.is_empty() {
        for result in admin
            .delete_topics(topics, &options)
            .await
            .map_err(|e| failed_with(kafka, admin.inner().context(), e))?
        {
            if let Err((t, code)) = result
                && code != RDKafkaErrorCode::UnknownTopicOrPartition
            {
                return Err(refused(kafka, "delete topic", &t, code));
            }
        }
    }
    if !groups.is_empty() {
        for result in admin
            .delete_groups(groups, &options)
            .await
            .map_err(|e| failed_with(kafka, admin.inner().context(), e))?
        {
            if let Err((g, code)) = result
                && !matches!(
                    code,
                    RDKafkaErrorCode::GroupIdNotFound | RDKafkaErrorCode::NotCoordinator
                )
            {
                return Err(refused(kafka, "delete consumer group", &g, code));
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
    kafka: &KafkaConnection,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Result<GroupLag, KafkaError> {
    let (kafka, group, topic) = (kafka.clone(), group.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer<LastError> = kafka
            .client_config()
            .set("group.id", &group)
            .create_with_context(LastError::default())
            .map_err(|e| unreachable(&kafka, e))?;
        let failed = |e| failed_with(&kafka, consumer.context(), e);
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(&topic, p);
        }
        let committed = consumer.committed_offsets(tpl, TIMEOUT).map_err(failed)?;
        let (mut events, mut measured) = (0, false);
        for p in 0..partitions {
            let (low, high) = consumer
                .fetch_watermarks(&topic, p, TIMEOUT)
                .map_err(failed)?;
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

/// A topic's cleanup policy and log start offsets (does it still hold its
/// beginning?), off the async runtime where calls block.
pub async fn topic_history(
    kafka: &KafkaConnection,
    topic: &str,
    partitions: i32,
) -> Result<super::history::TopicHistory, KafkaError> {
    let admin = admin(kafka)?;
    let options = AdminOptions::new().request_timeout(Some(TIMEOUT));
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &options)
        .await
        .map_err(|e| failed_with(kafka, admin.inner().context(), e))?;
    let compacted = match described.into_iter().next() {
        Some(Ok(resource)) => resource
            .get("cleanup.policy")
            .and_then(|entry| entry.value.as_deref())
            .is_some_and(|policy| policy.split(',').any(|p| p.trim() == "compact")),
        Some(Err(code)) => return Err(refused(kafka, "describe topic", topic, code)),
        None => false,
    };
    let (kafka, topic) = (kafka.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer<LastError> = kafka
            .client_config()
            .create_with_context(LastError::default())
            .map_err(|e| unreachable(&kafka, e))?;
        let mut log_starts = std::collections::BTreeMap::new();
        for p in 0..partitions {
            let (low, _) = consumer
                .fetch_watermarks(&topic, p, TIMEOUT)
                .map_err(|e| failed_with(&kafka, consumer.context(), e))?;
            log_starts.insert(p, low);
        }
        Ok(super::history::TopicHistory {
            compacted,
            log_starts,
        })
    })
    .await
    .map_err(KafkaError::Task)?
}
