//! The consume loop: poll a batch from the shard's partitions, shape it,
//! dead-letter what the engine rejects (and wait until Kafka has it), commit
//! records and offsets to the store in one transaction, then tell Kafka.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tracing::{error, info, warn};

use super::{ProjectorError, Shared};
use crate::crd::StartFrom;
use crate::engine::{EventError, Position};

/// A rejected event on its way to the dead-letter topic.
struct DeadLetter {
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    error: EventError,
    position: Position,
}

/// Partitions of a topic with `count` partitions that belong to `shard`.
pub fn owned_partitions(count: i32, shard: u32, shards: u32) -> Vec<i32> {
    (0..count)
        .filter(|p| (*p as u32) % shards.max(1) == shard)
        .collect()
}

pub(super) fn run(
    shared: Arc<Shared>,
    kafka: ClientConfig,
    stop: Arc<AtomicBool>,
) -> Result<(), ProjectorError> {
    let config = &shared.config;
    let topic = shared.topic.clone();
    let consumer: BaseConsumer = kafka
        .clone()
        .set("group.id", &shared.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(|e| ProjectorError::Kafka(format!("cannot create consumer: {e}")))?;
    let metadata = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(30))
        .map_err(|e| {
            ProjectorError::Kafka(format!("cannot read metadata of topic {topic}: {e}"))
        })?;
    let partition_count = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .filter(|t| t.error().is_none())
        .map(|t| t.partitions().len() as i32)
        .filter(|n| *n > 0)
        .ok_or_else(|| ProjectorError::Kafka(format!("source topic {topic} does not exist")))?;
    let partitions = owned_partitions(partition_count, shared.shard, shared.shards);
    info!(topic = %topic, ?partitions, shard = shared.shard, "assigned partitions");

    let producer: FutureProducer = kafka
        .clone()
        .set("message.timeout.ms", "10000")
        // Dead letters can be as large as the biggest event accepted; the broker decides.
        .set("message.max.bytes", "20000000")
        .create()
        .map_err(|e| ProjectorError::Kafka(format!("cannot create dead-letter producer: {e}")))?;
    // Awaits dead-letter deliveries from this (non-async) thread.
    let dlq_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ProjectorError::Kafka(format!("cannot start the dead-letter runtime: {e}")))?;

    // Where to start: the store's offsets, else the spec's starting point.
    let assign_from_store =
        |consumer: &BaseConsumer| -> Result<BTreeMap<i32, i64>, ProjectorError> {
            let stored = shared.store.positions().map_err(ProjectorError::Store)?;
            let mut tpl = TopicPartitionList::new();
            for &p in &partitions {
                let offset = match stored.get(&p) {
                    Some(&o) => Offset::Offset(o),
                    None if shared.start_from == StartFrom::Latest => Offset::End,
                    None => Offset::Beginning,
                };
                tpl.add_partition_offset(&topic, p, offset)
                    .map_err(|e| ProjectorError::Kafka(e.to_string()))?;
            }
            consumer
                .assign(&tpl)
                .map_err(|e| ProjectorError::Kafka(format!("cannot assign partitions: {e}")))?;
            Ok(stored)
        };
    let mut next_offsets = assign_from_store(&consumer)?;

    // Readiness target: the high-water marks seen now.
    let mut high_water: BTreeMap<i32, i64> = BTreeMap::new();
    for &p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(&topic, p, Duration::from_secs(30))
            .map_err(|e| {
                ProjectorError::Kafka(format!("cannot read watermarks of {topic}/{p}: {e}"))
            })?;
        high_water.insert(p, high);
        next_offsets.entry(p).or_insert(match shared.start_from {
            StartFrom::Latest => high,
            StartFrom::Earliest => low,
        });
    }
    info!(?high_water, "consuming");
    shared.set_targets(&high_water);
    shared.update_lag(&next_offsets, &high_water);
    let latest_high = Arc::new(std::sync::Mutex::new(high_water.clone()));
    let watcher = spawn_watermark_watcher(
        kafka.clone(),
        topic.clone(),
        partitions.clone(),
        latest_high.clone(),
        stop.clone(),
    )?;

    let max_wait = config.batch_max_wait;
    let mut iteration_started = Instant::now();
    while !stop.load(Relaxed) {
        shared
            .metrics
            .loop_micros
            .fetch_add(iteration_started.elapsed().as_micros() as u64, Relaxed);
        iteration_started = Instant::now();
        // ---- poll a batch
        let poll_started = Instant::now();
        let mut messages = Vec::new();
        let deadline = poll_started + max_wait;
        while messages.len() < config.batch_max_events {
            let now = Instant::now();
            let wait = if messages.is_empty() {
                deadline.saturating_duration_since(now)
            } else {
                Duration::ZERO
            };
            match consumer.poll(wait) {
                Some(Ok(m)) => messages.push(m.detach()),
                Some(Err(e)) => {
                    warn!(error = %e, "consume error");
                    break;
                }
                None => break,
            }
            if Instant::now() >= deadline && !messages.is_empty() {
                break;
            }
        }
        shared
            .metrics
            .poll_micros
            .fetch_add(poll_started.elapsed().as_micros() as u64, Relaxed);

        // High-water marks come from a watcher thread: a broker round trip
        // per partition must not stall the loop.
        if let Ok(seen) = latest_high.lock() {
            for (&p, &h) in seen.iter() {
                let entry = high_water.entry(p).or_insert(h);
                *entry = (*entry).max(h);
            }
        }
        if messages.is_empty() {
            shared.update_lag(&next_offsets, &high_water);
        }
        if messages.is_empty() {
            continue;
        }

        // ---- shape
        let shape_started = Instant::now();
        let mut records = Vec::new();
        let mut dead = Vec::new();
        let mut batch_offsets = next_offsets.clone();
        for m in &messages {
            let position = Position {
                partition: m.partition(),
                offset: m.offset(),
            };
            let payload = m.payload().unwrap_or_default();
            match shared.view.shape(payload, position) {
                Ok(rs) => records.extend(rs),
                Err(error) => dead.push(DeadLetter {
                    key: m.key().map(<[u8]>::to_vec),
                    payload: payload.to_vec(),
                    error,
                    position,
                }),
            }
            batch_offsets.insert(m.partition(), m.offset() + 1);
        }
        shared
            .metrics
            .shape_micros
            .fetch_add(shape_started.elapsed().as_micros() as u64, Relaxed);

        // ---- dead letters: Kafka must have them before the offsets move on.
        if !dead.is_empty() {
            if let Err(e) = send_dead_letters(
                &dlq_runtime,
                &producer,
                &shared.dead_letter_topic,
                &topic,
                &dead,
            ) {
                shared.metrics.dead_letter_failures.fetch_add(1, Relaxed);
                shared.set_dead_letter_error(Some(e.clone()));
                error!(error = %e, topic = %shared.dead_letter_topic, "cannot write dead letters; holding the batch and retrying");
                next_offsets = assign_from_store(&consumer)?;
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            shared.set_dead_letter_error(None);
            for d in &dead {
                shared.metrics.dead_letter(d.error.reason());
            }
        }

        // ---- commit: records and offsets together.
        let commit_started = Instant::now();
        let outcome = shared
            .store
            .apply_batch(records, &batch_offsets)
            .map_err(ProjectorError::Store)?;
        let commit_time = commit_started.elapsed();
        shared
            .metrics
            .commit_micros
            .fetch_add(commit_time.as_micros() as u64, Relaxed);
        shared
            .metrics
            .commit_seconds
            .observe(commit_time.as_secs_f64());
        next_offsets = batch_offsets;

        // Informational: standard lag tools read the consumer group.
        let mut tpl = TopicPartitionList::new();
        for (&p, &o) in &next_offsets {
            let _ = tpl.add_partition_offset(&topic, p, Offset::Offset(o));
        }
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            warn!(error = %e, "cannot commit offsets to the consumer group (the store has them)");
        }

        let m = &shared.metrics;
        m.events.fetch_add(messages.len() as u64, Relaxed);
        m.records_applied
            .fetch_add(outcome.inserted + outcome.replaced, Relaxed);
        m.records_unchanged
            .fetch_add(outcome.unchanged + outcome.stale, Relaxed);
        m.batches.fetch_add(1, Relaxed);
        m.batch_events.observe(messages.len() as f64);
        for (&p, &o) in &next_offsets {
            let high = high_water.entry(p).or_insert(o);
            *high = (*high).max(o);
        }
        shared.update_lag(&next_offsets, &high_water);
        if !outcome.changed_rows.is_empty() {
            shared.feed.publish(outcome.changed_rows);
        }
    }
    info!("stopping: last batch committed");
    let _ = watcher.join();
    Ok(())
}

/// Polls the partitions' high-water marks every 500 ms until `stop`.
fn spawn_watermark_watcher(
    kafka: ClientConfig,
    topic: String,
    partitions: Vec<i32>,
    latest: Arc<std::sync::Mutex<BTreeMap<i32, i64>>>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, ProjectorError> {
    let client: BaseConsumer = kafka
        .create()
        .map_err(|e| ProjectorError::Kafka(format!("cannot create watermark client: {e}")))?;
    std::thread::Builder::new()
        .name("watermarks".into())
        .spawn(move || {
            while !stop.load(Relaxed) {
                for &p in &partitions {
                    if let Ok((_, high)) =
                        client.fetch_watermarks(&topic, p, Duration::from_secs(5))
                        && let Ok(mut map) = latest.lock()
                    {
                        map.insert(p, high);
                    }
                }
                for _ in 0..10 {
                    if stop.load(Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        })
        .map_err(|e| ProjectorError::Kafka(e.to_string()))
}

fn send_dead_letters(
    runtime: &tokio::runtime::Runtime,
    producer: &FutureProducer,
    dlq: &str,
    source: &str,
    dead: &[DeadLetter],
) -> Result<(), String> {
    runtime.block_on(async {
        let sends = dead.iter().map(|d| {
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
                    value: Some(source),
                })
                .insert(Header {
                    key: "matview.source.partition",
                    value: Some(partition.as_str()),
                })
                .insert(Header {
                    key: "matview.source.offset",
                    value: Some(offset.as_str()),
                });
            let mut record = FutureRecord::to(dlq)
                .payload(d.payload.as_slice())
                .headers(headers);
            if let Some(key) = &d.key {
                record = record.key(key.as_slice());
            }
            producer.send(record, Duration::from_secs(10))
        });
        for result in futures::future::join_all(sends).await {
            result.map_err(|(e, _)| e.to_string())?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_split_by_modulo() {
        assert_eq!(owned_partitions(6, 0, 2), [0, 2, 4]);
        assert_eq!(owned_partitions(6, 1, 2), [1, 3, 5]);
        assert_eq!(owned_partitions(3, 0, 1), [0, 1, 2]);
        assert_eq!(owned_partitions(2, 2, 3), Vec::<i32>::new());
    }
}
