//! The dead-letter topic: a rejected event goes there with its original key
//! and value and headers that say why and where it came from.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::runtime::Handle;

use super::ProjectorError;
use crate::engine::{EventError, Position};

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

pub struct DeadLetterSink {
    producer: FutureProducer,
    /// Deliveries are awaited from the (blocking) consume thread on this runtime.
    runtime: Handle,
    topic: String,
    source_topic: String,
}

impl DeadLetterSink {
    pub fn new(
        kafka: &ClientConfig,
        runtime: Handle,
        topic: &str,
        source_topic: &str,
    ) -> Result<DeadLetterSink, ProjectorError> {
        let producer = kafka
            .clone()
            .set("message.timeout.ms", "10000")
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
        })
    }

    /// Returns once Kafka acknowledged every dead letter (or one failed).
    pub fn send(&self, dead: &[DeadLetter]) -> Result<(), DeadLetterError> {
        if dead.is_empty() {
            return Ok(());
        }
        self.runtime.block_on(async {
            let sends = dead.iter().map(|d| self.send_one(d));
            for result in futures::future::join_all(sends).await {
                result.map_err(|(source, _)| DeadLetterError {
                    topic: self.topic.clone(),
                    source,
                })?;
            }
            Ok(())
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
