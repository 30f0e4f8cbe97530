//! `GET /v1/dead-letters`: the latest letters of the view's dead-letter
//! topic, read from Kafka with the projector's own client settings (so the
//! gateway needs no Kafka access or credentials of its own).
//!
//! A read assigns each partition its last `limit` offsets and reads to the
//! end; answers are kept for [`FRESH_FOR`] so that many open consoles cost
//! one read, and reads are one at a time.

use std::time::{Duration, Instant};

use base64::Engine;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::dead_letters::{REVISION_HEADER, topic_ends};
use matview_api::dead_letters::{
    DeadLetter, DeadLetters, Encoding, SHOWN_KEY_BYTES, SHOWN_VALUE_BYTES, ShownBytes,
    SourcePosition,
};

/// How long an answer is served again before the topic is read anew.
const FRESH_FOR: Duration = Duration::from_secs(2);
/// Reading the topic's last letters gives up after this long.
const READ_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("{context}")]
    Kafka {
        context: String,
        #[source]
        source: KafkaError,
    },
    #[error("could not read the last letters of {0} within {READ_DEADLINE:?}")]
    Timeout(String),
    #[error("cannot find the ends of the dead-letter topic")]
    Ends(#[source] Box<super::ProjectorError>),
    #[error("the dead-letter reader stopped unexpectedly")]
    Stopped,
}

fn kafka_failed(context: impl Into<String>) -> impl FnOnce(KafkaError) -> TailError {
    let context = context.into();
    move |source| TailError::Kafka { context, source }
}

type Kept = Option<(Instant, usize, DeadLetters)>;

pub struct DeadLetterTail {
    kafka: ClientConfig,
    topic: String,
    last: tokio::sync::Mutex<Kept>,
}

impl DeadLetterTail {
    pub fn new(kafka: ClientConfig, topic: String) -> DeadLetterTail {
        DeadLetterTail {
            kafka,
            topic,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The latest `limit` letters, newest first.
    pub async fn latest(&self, limit: usize) -> Result<DeadLetters, TailError> {
        let mut last = self.last.lock().await;
        if let Some((at, kept_limit, answer)) = &*last
            && at.elapsed() < FRESH_FOR
            && *kept_limit == limit
        {
            return Ok(answer.clone());
        }
        let (kafka, topic) = (self.kafka.clone(), self.topic.clone());
        let answer = tokio::task::spawn_blocking(move || read_latest(&kafka, &topic, limit))
            .await
            .map_err(|_| TailError::Stopped)??;
        *last = Some((Instant::now(), limit, answer.clone()));
        Ok(answer)
    }
}

fn read_latest(kafka: &ClientConfig, topic: &str, limit: usize) -> Result<DeadLetters, TailError> {
    let consumer: BaseConsumer = kafka
        .clone()
        .set("group.id", "matview-dead-letter-tail")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(kafka_failed("cannot create the dead-letter reader"))?;
    let ends = topic_ends(&consumer, topic).map_err(|e| TailError::Ends(Box::new(e)))?;
    let retained = ends
        .values()
        .map(|(low, high)| (high - low).max(0) as u64)
        .sum();
    let mut assignment = TopicPartitionList::new();
    let mut remaining = std::collections::BTreeSet::new();
    for (&partition, &(low, high)) in &ends {
        if high > low {
            let from = (high - limit as i64).max(low);
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(from))
                .map_err(kafka_failed(
                    "cannot build the dead-letter reader's assignment",
                ))?;
            remaining.insert((partition, high));
        }
    }
    let mut letters = Vec::new();
    if !remaining.is_empty() {
        consumer
            .assign(&assignment)
            .map_err(kafka_failed(format!("cannot read {topic}")))?;
    }
    let deadline = Instant::now() + READ_DEADLINE;
    while !remaining.is_empty() {
        if Instant::now() > deadline {
            return Err(TailError::Timeout(topic.to_string()));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                remaining.retain(|(p, _)| *p != partition);
            }
            Some(Err(e)) => return Err(kafka_failed(format!("cannot read {topic}"))(e)),
            Some(Ok(message)) => {
                let partition = message.partition();
                if remaining
                    .iter()
                    .any(|&(p, high)| p == partition && message.offset() + 1 >= high)
                {
                    remaining.retain(|(p, _)| *p != partition);
                }
                letters.push(letter_of(&message));
            }
        }
    }
    Ok(DeadLetters::latest(
        topic.to_string(),
        retained,
        letters,
        limit,
    ))
}

/// A letter as it is shown: matview's headers, the event cut to size.
pub fn letter_of(message: &impl Message) -> DeadLetter {
    let header = |name: &str| {
        message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
    };
    let source = (|| {
        Some(SourcePosition {
            topic: header("matview.source.topic")?,
            partition: header("matview.source.partition")?.parse().ok()?,
            offset: header("matview.source.offset")?.parse().ok()?,
        })
    })();
    DeadLetter {
        partition: message.partition(),
        offset: message.offset(),
        timestamp_ms: message.timestamp().to_millis(),
        reason: header("matview.reason"),
        error: header("matview.error"),
        revision: header(REVISION_HEADER),
        source,
        key: message.key().map(|k| shown(k, SHOWN_KEY_BYTES)),
        value: shown(message.payload().unwrap_or_default(), SHOWN_VALUE_BYTES),
    }
}

/// At most `max` bytes of `bytes`: as text if they are UTF-8 (cut at a
/// character boundary), else in base64.
pub fn shown(bytes: &[u8], max: usize) -> ShownBytes {
    let total = bytes.len() as u64;
    let head = &bytes[..bytes.len().min(max)];
    let (text, encoding, kept) = match std::str::from_utf8(head) {
        Ok(text) => (text.to_string(), Encoding::Utf8, head.len()),
        // Cut inside a character: the text up to it (only when the whole is text).
        Err(e) if e.error_len().is_none() && std::str::from_utf8(bytes).is_ok() => {
            let text = &head[..e.valid_up_to()];
            (
                String::from_utf8_lossy(text).into_owned(),
                Encoding::Utf8,
                text.len(),
            )
        }
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(head),
            Encoding::Base64,
            head.len(),
        ),
    };
    ShownBytes {
        text,
        encoding,
        bytes: total,
        truncated: (kept as u64) < total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};

    #[test]
    fn text_is_shown_whole_or_cut_at_a_character() {
        let whole = shown(b"{\"a\":1}", 16);
        assert_eq!(
            (whole.text.as_str(), whole.encoding, whole.truncated),
            ("{\"a\":1}", Encoding::Utf8, false)
        );
        // "é" is two bytes: a cut inside the second one keeps "aé".
        let cut = shown("aéé".as_bytes(), 4);
        assert_eq!(
            (cut.text.as_str(), cut.encoding, cut.bytes, cut.truncated),
            ("aé", Encoding::Utf8, 5, true)
        );
        let half = shown("aéé".as_bytes(), 2);
        assert_eq!((half.text.as_str(), half.truncated), ("a", true));
    }

    #[test]
    fn bytes_that_are_not_text_are_base64() {
        let binary = shown(&[0, 159, 146, 150, 255], 3);
        assert_eq!(binary.encoding, Encoding::Base64);
        assert_eq!(binary.text, "AJ+S");
        assert!(binary.truncated);
        assert_eq!(binary.bytes, 5);
    }

    #[test]
    fn a_letter_carries_its_reason_revision_and_source() {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "matview.reason",
                value: Some("not-json"),
            })
            .insert(Header {
                key: REVISION_HEADER,
                value: Some("r1"),
            })
            .insert(Header {
                key: "matview.source.topic",
                value: Some("orders"),
            })
            .insert(Header {
                key: "matview.source.partition",
                value: Some("3"),
            })
            .insert(Header {
                key: "matview.source.offset",
                value: Some("42"),
            });
        let message = OwnedMessage::new(
            Some(b"<script>alert(1)</script>".to_vec()),
            Some(b"k".to_vec()),
            "orders.v.dlq".into(),
            Timestamp::CreateTime(1_700_000_000_000),
            1,
            7,
            Some(headers),
        );
        let letter = letter_of(&message);
        assert_eq!(letter.reason.as_deref(), Some("not-json"));
        assert_eq!(letter.revision.as_deref(), Some("r1"));
        assert_eq!(
            letter.source,
            Some(SourcePosition {
                topic: "orders".into(),
                partition: 3,
                offset: 42
            })
        );
        assert_eq!((letter.partition, letter.offset), (1, 7));
        assert_eq!(letter.timestamp_ms, Some(1_700_000_000_000));
        assert_eq!(letter.value.text, "<script>alert(1)</script>");
        assert_eq!(letter.key.map(|k| k.text).as_deref(), Some("k"));
    }

    #[test]
    fn a_foreign_message_has_no_reason_or_source() {
        let message =
            OwnedMessage::new(None, None, "t".into(), Timestamp::NotAvailable, 0, 0, None);
        let letter = letter_of(&message);
        assert_eq!(
            (letter.reason, letter.source, letter.key),
            (None, None, None)
        );
        assert_eq!(letter.value.bytes, 0);
    }
}
