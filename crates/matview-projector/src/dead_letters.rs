//! The dead-letter topic: a rejected event goes there with its original key
//! and value and headers that say why and where it came from.
//!
//! Each letter is in the topic once, even across a kill -9: letters are sent
//! before their batch commits, so after a crash the restarted projector first
//! reads what the topic holds past the ends its store recorded at the last
//! commit ([`already_sent`]) and does not send those again.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::runtime::Handle;

use super::ProjectorError;
use matview_engine::{EventError, Position};

/// A rejected event on its way to the dead-letter topic.
pub struct DeadLetter {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub error: EventError,
    pub position: Position,
}

/// Why a batch of dead letters did not reach Kafka.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to the dead-letter topic {topic}")]
pub struct DeadLetterError {
    topic: String,
    #[source]
    source: rdkafka::error::KafkaError,
}

/// Whether this replica of a shard writes the shard's dead letters: the
/// first does (replica 0, or a process that is its shard's only one), so
/// each letter is written once however many replicas read the shard. While
/// it is down, letters wait for it: on its return it reads on from its own
/// store's positions and writes them.
pub fn writes_letters(replica: Option<u32>) -> bool {
    replica.is_none_or(|r| r == 0)
}

/// Header naming the revision that wrote a letter: after a crash, only its
/// own letters count as sent (another revision dead-letters the same events).
pub const REVISION_HEADER: &str = "matview.revision";

/// Dead-letter partition → offset just after the last letter known there.
pub type LetterEnds = BTreeMap<i32, i64>;

/// What Kafka acknowledged of a send.
#[derive(Debug, Default, PartialEq)]
pub struct Delivered {
    /// Source positions of the events whose letters are in the topic.
    pub positions: Vec<Position>,
    pub ends: LetterEnds,
}

pub struct DeadLetterSink {
    producer: FutureProducer,
    /// Deliveries are awaited from the (blocking) consume thread on this runtime.
    runtime: Handle,
    topic: String,
    source_topic: String,
    revision: String,
}

impl DeadLetterSink {
    pub fn new(
        kafka: &ClientConfig,
        runtime: Handle,
        topic: &str,
        source_topic: &str,
        revision: &str,
    ) -> Result<DeadLetterSink, ProjectorError> {
        let producer = kafka
            .clone()
            .set("message.timeout.ms", "10000")
            // The client's own retries must not write a letter twice either.
            .set("enable.idempotence", "true")
            // Dead letters can be as large as the biggest event accepted; the broker decides.
            .set("message.max.bytes", "20000000")
            .create()
            .map_err(ProjectorError::kafka(
                "cannot create the dead-letter producer",
            ))?;
        Ok(DeadLetterSink {
            producer,
            runtime,
            topic: topic.into(),
            source_topic: source_topic.into(),
            revision: revision.into(),
        })
    }

    /// Returns once Kafka answered for every letter: what it acknowledged,
    /// and the first failure if any.
    pub fn send<'a>(
        &self,
        dead: impl IntoIterator<Item = &'a DeadLetter>,
    ) -> (Delivered, Result<(), DeadLetterError>) {
        self.runtime.block_on(async {
            let sends = dead
                .into_iter()
                .map(|d| async move { (d.position, self.send_one(d).await) });
            let mut delivered = Delivered::default();
            let mut failure = Ok(());
            for (position, result) in futures::future::join_all(sends).await {
                match result {
                    Ok(at) => {
                        delivered.positions.push(position);
                        let end = delivered.ends.entry(at.partition).or_default();
                        *end = (*end).max(at.offset + 1);
                    }
                    Err((source, _)) if failure.is_ok() => {
                        failure = Err(DeadLetterError {
                            topic: self.topic.clone(),
                            source,
                        });
                    }
                    Err(_) => {}
                }
            }
            (delivered, failure)
        })
    }

    fn send_one<'a>(
        &'a self,
        d: &'a DeadLetter,
    ) -> impl Future<Output = rdkafka::producer::future_producer::OwnedDeliveryResult> + 'a {
        let partition = d.position.partition.to_string();
        let offset = d.position.offset.to_string();
        let message = d.error.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "matview.reason",
                value: Some(d.error.reason()),
            })
            .insert(Header {
                key: "matview.error",
                value: Some(message.as_str()),
            })
            .insert(Header {
                key: REVISION_HEADER,
                value: Some(self.revision.as_str()),
            })
            .insert(Header {
                key: "matview.source.topic",
                value: Some(self.source_topic.as_str()),
            })
            .insert(Header {
                key: "matview.source.partition",
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: "matview.source.offset",
                value: Some(offset.as_str()),
            });
        let mut record = FutureRecord::to(&self.topic)
            .payload(d.payload.as_slice())
            .headers(headers);
        if let Some(key) = &d.key {
            record = record.key(key.as_slice());
        }
        self.producer.send(record, Duration::from_secs(10))
    }
}

/// Where to look for letters sent but not committed, and whose they are.
pub struct LetterScan<'a> {
    pub topic: &'a str,
    pub revision: &'a str,
    pub source_topic: &'a str,
    /// Where the store's last commit says earlier letters end.
    pub since: &'a LetterEnds,
    /// The shard's source partitions and the store's next offsets in them.
    pub owned: &'a [i32],
    pub next: &'a BTreeMap<i32, i64>,
}

/// Reading the topic's tail at start gives up after this long.
const SCAN_DEADLINE: Duration = Duration::from_secs(60);

/// Positions of events this revision's shard dead-lettered after its last
/// commit (the batch a crash cut short): they are in the topic already.
pub fn already_sent(
    kafka: &ClientConfig,
    scan: &LetterScan,
) -> Result<HashSet<Position>, ProjectorError> {
    let consumer: BaseConsumer = kafka
        .clone()
        .set("group.id", "matview-dead-letter-scan")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(ProjectorError::kafka(
            "cannot create the dead-letter reader",
        ))?;
    let ends = topic_ends(&consumer, scan.topic)?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = BTreeMap::new();
    for (&partition, &(low, high)) in &ends {
        let from = scan.since.get(&partition).copied().unwrap_or(low).max(low);
        if from < high {
            assignment
                .add_partition_offset(scan.topic, partition, Offset::Offset(from))
                .map_err(ProjectorError::kafka(
                    "cannot build the dead-letter reader's assignment",
                ))?;
            remaining.insert(partition, high);
        }
    }
    let mut found = HashSet::new();
    if remaining.is_empty() {
        return Ok(found);
    }
    consumer
        .assign(&assignment)
        .map_err(ProjectorError::kafka("cannot read the dead-letter topic"))?;
    let deadline = Instant::now() + SCAN_DEADLINE;
    while !remaining.is_empty() {
        if Instant::now() > deadline {
            return Err(ProjectorError::DeadLetterScan(scan.topic.to_string()));
        }
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message =
            message.map_err(ProjectorError::kafka("cannot read the dead-letter topic"))?;
        if let Some(position) = ours(&message, scan) {
            found.insert(position);
        }
        if remaining
            .get(&message.partition())
            .is_some_and(|high| message.offset() + 1 >= *high)
        {
            remaining.remove(&message.partition());
        }
    }
    Ok(found)
}

/// Low and high watermarks of every partition; none if the topic does not
/// exist yet (it is created with the first letter).
pub fn topic_ends<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
) -> Result<BTreeMap<i32, (i64, i64)>, ProjectorError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .map_err(ProjectorError::kafka(format!(
            "cannot read metadata of the dead-letter topic {topic}"
        )))?;
    let mut ends = BTreeMap::new();
    let Some(found) = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
    else {
        return Ok(ends);
    };
    for partition in found.partitions() {
        let marks = consumer
            .fetch_watermarks(topic, partition.id(), Duration::from_secs(30))
            .map_err(ProjectorError::kafka(format!(
                "cannot read watermarks of {topic}/{}",
                partition.id()
            )))?;
        ends.insert(partition.id(), marks);
    }
    Ok(ends)
}

/// The source position of a letter if this revision's shard wrote it after
/// its last commit.
fn ours(message: &impl Message, scan: &LetterScan) -> Option<Position> {
    let headers = message.headers()?;
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())
    };
    if header(REVISION_HEADER)? != scan.revision
        || header("matview.source.topic")? != scan.source_topic
    {
        return None;
    }
    let partition: i32 = header("matview.source.partition")?.parse().ok()?;
    let offset: i64 = header("matview.source.offset")?.parse().ok()?;
    let uncommitted = scan.next.get(&partition).is_none_or(|next| offset >= *next);
    (scan.owned.contains(&partition) && uncommitted).then_some(Position { partition, offset })
}

#[cfg(test)]
mod tests {
    use super::writes_letters;

    #[test]
    fn only_a_shards_first_replica_or_its_only_process_writes_letters() {
        assert!(writes_letters(None));
        assert!(writes_letters(Some(0)));
        assert!(!writes_letters(Some(1)));
        assert!(!writes_letters(Some(7)));
    }
}
