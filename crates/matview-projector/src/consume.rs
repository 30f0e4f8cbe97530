//! The consume loop: poll a batch from the shard's partitions, shape it,
//! dead-letter what the engine rejects (and wait until Kafka has it), commit
//! records and offsets to the store in one transaction, then tell Kafka.
//!
//! The source is opened once ([`Source::open`]); each stage of the loop is a
//! function returning a small struct (in `batch`), and a batch is reported
//! as one [`BatchReport`]. A batch commits on a thread of its own while the
//! loop polls and shapes the next one.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::batch::{InFlight, Offsets, Shaped, poll, shape};
use super::dead_letters::{self, DeadLetterSink, LetterScan};
use super::decoding::Decoding;
use super::metrics::BatchReport;
use super::{ProjectorError, Shared};
use matview_crd::StartFrom;
use matview_engine::Position;

/// Partitions of a topic with `count` partitions that belong to `shard`.
pub fn owned_partitions(count: i32, shard: u32, shards: u32) -> Vec<i32> {
    (0..count)
        .filter(|p| (*p as u32) % shards.max(1) == shard)
        .collect()
}

/// Remembers the client's last error as librdkafka reports it (e.g. "SASL
/// authentication error: … invalid credentials"): a failed metadata request
/// alone only says the transport failed.
#[derive(Default)]
struct SourceContext {
    last_error: Mutex<Option<String>>,
}

impl ClientContext for SourceContext {
    fn error(&self, error: KafkaError, reason: &str) {
        error!(%error, reason, "kafka client error");
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(reason.to_string());
        }
    }
}

impl ConsumerContext for SourceContext {}

/// The shard's Kafka side, opened once: consumer, partitions, dead letters.
struct Source {
    consumer: BaseConsumer<SourceContext>,
    topic: String,
    /// Partitions of the topic, and those this shard owns.
    count: i32,
    partitions: Vec<i32>,
    dead_letters: DeadLetterSink,
}

impl Source {
    fn open(
        shared: &Shared,
        kafka: &ClientConfig,
        runtime: Handle,
    ) -> Result<Source, ProjectorError> {
        let topic = shared.view.topic.clone();
        let mut consumer_config = kafka.clone();
        if kafka.get("queued.max.messages.kbytes").is_none() {
            // librdkafka's default (64 MiB per partition) outgrows a budget.
            let queue = shared.config.fetch_queue_kib.to_string();
            consumer_config.set("queued.max.messages.kbytes", queue);
        }
        let consumer: BaseConsumer<SourceContext> = consumer_config
            .set("group.id", &shared.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .create_with_context(SourceContext::default())
            .map_err(ProjectorError::kafka("cannot create the consumer"))?;
        let metadata = match consumer.fetch_metadata(Some(&topic), Duration::from_secs(30)) {
            Ok(metadata) => metadata,
            Err(e) => {
                // Serve the client's queued callbacks: the error they carry
                // says why (a refused password, a certificate, …).
                let _ = consumer.poll(Duration::from_millis(200));
                let said = consumer
                    .context()
                    .last_error
                    .lock()
                    .ok()
                    .and_then(|l| l.clone())
                    .map(|reason| format!(" ({reason})"))
                    .unwrap_or_default();
                return Err(ProjectorError::kafka(format!(
                    "cannot read metadata of topic {topic}{said}"
                ))(e));
            }
        };
        let count = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len() as i32)
            .filter(|n| *n > 0)
            .ok_or_else(|| ProjectorError::MissingTopic(topic.clone()))?;
        let partitions = owned_partitions(count, shared.shard, shared.view.shards);
        info!(topic = %topic, ?partitions, shard = shared.shard, "assigned partitions");
        let dead_letters = DeadLetterSink::new(
            kafka,
            runtime,
            &shared.view.dead_letter_topic,
            &topic,
            &shared.view.revision,
        )?;
        Ok(Source {
            consumer,
            topic,
            count,
            partitions,
            dead_letters,
        })
    }

    /// Seeks to the store's offsets (or the spec's starting point); returns them.
    fn assign_from_store(&self, shared: &Shared) -> Result<Offsets, ProjectorError> {
        let stored = shared.store.positions()?;
        let mut tpl = TopicPartitionList::new();
        for &p in &self.partitions {
            let offset = match stored.get(&p) {
                Some(&o) => Offset::Offset(o),
                None if shared.view.start_from == StartFrom::Latest => Offset::End,
                None => Offset::Beginning,
            };
            tpl.add_partition_offset(&self.topic, p, offset)
                .map_err(ProjectorError::kafka("cannot build the assignment"))?;
        }
        self.consumer
            .assign(&tpl)
            .map_err(ProjectorError::kafka("cannot assign partitions"))?;
        Ok(stored)
    }

    /// The high-water marks now (the readiness target); fills in where a new
    /// store starts.
    fn high_water(
        &self,
        start_from: StartFrom,
        next: &mut Offsets,
    ) -> Result<Offsets, ProjectorError> {
        let mut high_water = Offsets::new();
        for &p in &self.partitions {
            let (low, high) = self
                .consumer
                .fetch_watermarks(&self.topic, p, Duration::from_secs(30))
                .map_err(ProjectorError::kafka(format!(
                    "cannot read watermarks of {}/{p}",
                    self.topic
                )))?;
            high_water.insert(p, high);
            next.entry(p).or_insert(match start_from {
                StartFrom::Latest => high,
                StartFrom::Earliest => low,
            });
        }
        Ok(high_water)
    }

    /// Informational: standard lag tools read the consumer group.
    fn commit_to_group(&self, next: &Offsets) {
        let mut tpl = TopicPartitionList::new();
        for (&p, &o) in next {
            let _ = tpl.add_partition_offset(&self.topic, p, Offset::Offset(o));
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            warn!(error = %e, "cannot commit offsets to the consumer group (the store has them)");
        }
    }
}

pub(super) fn run(
    shared: Arc<Shared>,
    kafka: ClientConfig,
    cancel: CancellationToken,
    runtime: Handle,
) -> Result<(), ProjectorError> {
    let source = Source::open(&shared, &kafka, runtime.clone())?;
    let mut next = source.assign_from_store(&shared)?;
    let high_water = source.high_water(shared.view.start_from, &mut next)?;
    info!(?high_water, "consuming");
    shared.set_targets(&high_water, source.count);
    shared.set_source_error(None);
    shared.set_registry_error(None);
    shared.feed.set_floor(next.clone());
    shared.update_lag(&next, &high_water);
    let latest_high = Arc::new(Mutex::new(high_water.clone()));
    let watcher = super::watermarks::spawn(
        &runtime,
        &kafka,
        &source.topic,
        &source.partitions,
        latest_high.clone(),
        shared.clone(),
        cancel.clone(),
    )?;

    let sent_before = letters_sent_before(&shared, &kafka, &source, &next)?;
    let mut consuming = Consuming {
        shared: &shared,
        source: &source,
        decoding: Decoding::for_view(&shared, runtime.clone())?,
        next,
        high_water,
        sent_before,
        iteration_started: Instant::now(),
    };
    std::thread::scope(|scope| consuming.overlapped(scope, &latest_high, &cancel))?;
    info!("stopping: last batch committed");
    let _ = runtime.block_on(watcher);
    Ok(())
}

/// The consume loop and what it carries from batch to batch.
struct Consuming<'a> {
    shared: &'a Shared,
    source: &'a Source,
    /// Decoding of values and keys that are not plain (`None` for JSON values, raw keys).
    decoding: Option<Decoding>,
    /// Next offsets to consume, as committed to the store.
    next: Offsets,
    high_water: Offsets,
    /// Dead letters found in the topic at start, not yet passed again.
    sent_before: HashSet<Position>,
    iteration_started: Instant,
}

impl<'a> Consuming<'a> {
    /// A batch commits on a thread of its own while this one polls and
    /// shapes the next: the two stages overlap. Letters and commits stay in
    /// batch order, and nothing is sent for a batch before the one before it
    /// is committed.
    fn overlapped<'scope>(
        &mut self,
        scope: &'scope std::thread::Scope<'scope, 'a>,
        latest_high: &Mutex<Offsets>,
        cancel: &CancellationToken,
    ) -> Result<(), ProjectorError> {
        let mut in_flight: Option<InFlight<'scope>> = None;
        while !cancel.is_cancelled() {
            let polled = poll(&self.source.consumer, self.shared);
            merge_high_water(latest_high, &mut self.high_water);
            if polled.messages.is_empty() {
                self.finish(in_flight.take())?;
                self.shared.update_lag(&self.next, &self.high_water);
                continue;
            }
            if let Some(decoding) = self.decoding.as_mut() {
                if let Err(e) = decoding.prefetch(&polled.messages) {
                    // The registry is not the data: wait for it, skip nothing.
                    self.shared.set_registry_error(Some(&e));
                    self.finish(in_flight.take())?;
                    self.hold()?;
                    continue;
                }
                self.shared.set_registry_error(None);
            }
            // The next batch starts where the one in flight ends.
            let shaped_from = in_flight.as_ref().map_or(&self.next, |b| &b.offsets);
            let decoding = self.decoding.as_ref();
            let shaped = shape(self.shared, &polled.messages, shaped_from, decoding);
            self.finish(in_flight.take())?;
            if let Some(letter_ends) = self.send_letters(&shaped)? {
                in_flight = Some(InFlight::start(
                    scope,
                    self.shared,
                    polled,
                    shaped,
                    letter_ends,
                ));
            }
        }
        self.finish(in_flight.take())
    }

    /// Sends a shaped batch's dead letters; the ends of the letters to store
    /// with it, or none when the batch is held (no space, or Kafka did not
    /// take the letters) and will be polled again whole.
    fn send_letters(&mut self, shaped: &Shaped) -> Result<Option<Offsets>, ProjectorError> {
        let shared = self.shared;
        // Before any letter is sent: a held batch is polled again whole.
        if let Some(why) = lacks_space(shared) {
            shared.set_store_error(Some(why));
            return self.hold();
        }
        shared.set_store_error(None);
        if !dead_letters::writes_letters(shared.config.replica) {
            // Replica 0 of the shard writes them; nothing to store either.
            return Ok(Some(Default::default()));
        }
        let sent_before = &self.sent_before;
        let unsent = shaped
            .dead
            .iter()
            .filter(|d| !sent_before.contains(&d.position));
        let (delivered, sent) = self.source.dead_letters.send(unsent);
        if let Err(e) = sent {
            // What did arrive must not be sent again when the batch is retried.
            self.sent_before.extend(delivered.positions);
            shared.metrics.dead_letter_failure();
            shared.set_dead_letter_error(Some(e.to_string()));
            error!(error = %e, topic = %shared.view.dead_letter_topic, "cannot write dead letters; holding the batch and retrying");
            return self.hold();
        }
        shared.set_dead_letter_error(None);
        for d in &shaped.dead {
            self.sent_before.remove(&d.position);
        }
        // Letters found at start and not yet passed sit before this batch's
        // in the topic: the next scan must still begin before them.
        Ok(Some(if self.sent_before.is_empty() {
            delivered.ends
        } else {
            Default::default()
        }))
    }

    /// Holds the batch: consume again from what the store has, in a second.
    fn hold(&mut self) -> Result<Option<Offsets>, ProjectorError> {
        self.next = self.source.assign_from_store(self.shared)?;
        std::thread::sleep(Duration::from_secs(1));
        Ok(None)
    }

    /// Waits for a batch's commit, then tells Kafka, the metrics and the
    /// change feed.
    fn finish(&mut self, batch: Option<InFlight<'_>>) -> Result<(), ProjectorError> {
        let Some(batch) = batch else {
            return Ok(());
        };
        let shared = self.shared;
        let (outcome, commit, visible_ms) = match batch.commit.join() {
            Ok(committed) => committed?,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        self.next = batch.offsets;
        self.source.commit_to_group(&self.next);
        for (&p, &o) in &self.next {
            let high = self.high_water.entry(p).or_insert(o);
            *high = (*high).max(o);
        }
        shared.update_lag(&self.next, &self.high_water);
        shared.metrics.batch(&BatchReport {
            events: batch.events,
            records_applied: outcome.inserted + outcome.replaced,
            records_unchanged: outcome.unchanged + outcome.stale,
            records_removed: outcome.removed,
            source_deletes: outcome.sources.deleted,
            unknown_deletes: outcome.sources.unknown_deletes,
            dead_letter_reasons: batch.dead_letter_reasons,
            poll: batch.poll,
            shape: batch.shape,
            commit,
            iteration: self.iteration_started.elapsed(),
            event_times_ms: batch.event_times_ms,
            visible_ms,
        });
        self.iteration_started = Instant::now();
        Ok(())
    }
}

/// Why the next batch must wait: its file system has less free space than
/// `--min-free-mib` (a commit that runs out of space midway helps no one).
fn lacks_space(shared: &Shared) -> Option<String> {
    let free = shared.store.free_bytes()?;
    let needed = shared.config.min_free_bytes;
    (free < needed).then(|| {
        format!(
            "{} MiB free in {}, below --min-free-mib {}: free space or grow the volume",
            free >> 20,
            shared.config.data_dir.display(),
            needed >> 20
        )
    })
}

/// Dead letters of events past the store's offsets that are in the topic
/// already (sent by a run that crashed before committing their batch).
fn letters_sent_before(
    shared: &Shared,
    kafka: &ClientConfig,
    source: &Source,
    next: &Offsets,
) -> Result<HashSet<Position>, ProjectorError> {
    let topic = &shared.view.dead_letter_topic;
    let Some(since) = shared.store.letter_ends()? else {
        // A new store: only letters written from now on can be its own.
        let ends = dead_letters::topic_ends(&source.consumer, topic)?
            .into_iter()
            .map(|(partition, (_, high))| (partition, high))
            .collect();
        shared.store.begin_letter_ends(&ends)?;
        return Ok(HashSet::new());
    };
    let found = dead_letters::already_sent(
        kafka,
        &LetterScan {
            topic,
            revision: &shared.view.revision,
            source_topic: &source.topic,
            since: &since,
            owned: &source.partitions,
            next,
        },
    )?;
    if !found.is_empty() {
        info!(
            letters = found.len(),
            "dead letters of the batch cut short are in the topic already; not sending them again"
        );
    }
    Ok(found)
}

/// High-water marks come from a watcher task: a broker round trip per
/// partition must not stall the loop.
fn merge_high_water(latest: &Mutex<Offsets>, high_water: &mut Offsets) {
    if let Ok(seen) = latest.lock() {
        for (&p, &h) in seen.iter() {
            let entry = high_water.entry(p).or_insert(h);
            *entry = (*entry).max(h);
        }
    }
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

    #[test]
    fn high_water_marks_only_move_forward() {
        let latest = Mutex::new(Offsets::from([(0, 5), (1, 9)]));
        let mut high = Offsets::from([(0, 7), (1, 3)]);
        merge_high_water(&latest, &mut high);
        assert_eq!(high, Offsets::from([(0, 7), (1, 9)]));
    }
}
