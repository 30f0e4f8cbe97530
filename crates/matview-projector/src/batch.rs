//! A batch's stages apart from the loop that drives them: poll it, shape
//! it, and commit it on a thread of its own while the next one is polled
//! and shaped.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::message::{Message, OwnedMessage};
use tracing::warn;

use super::Shared;
use super::dead_letters::DeadLetter;
use super::decoding::Decoding;
use super::store::{BatchChanges, BatchOutcome, SourceChange, StoreError};
use matview_engine::{MessageChange, Position, Tape};

/// The next offset to read, by partition.
pub(super) type Offsets = BTreeMap<i32, i64>;

pub(super) struct Polled {
    pub(super) messages: Vec<OwnedMessage>,
    pub(super) took: Duration,
}

/// Up to `batch_max_events` messages, waiting at most `batch_max_wait` for the first.
pub(super) fn poll<C: ConsumerContext>(consumer: &BaseConsumer<C>, shared: &Shared) -> Polled {
    let started = Instant::now();
    let deadline = started + shared.config.batch_max_wait;
    let mut messages = Vec::new();
    while messages.len() < shared.config.batch_max_events {
        let wait = if messages.is_empty() {
            deadline.saturating_duration_since(Instant::now())
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
    Polled {
        messages,
        took: started.elapsed(),
    }
}

pub(super) struct Shaped {
    pub(super) changes: BatchChanges,
    pub(super) dead: Vec<DeadLetter>,
    /// The next offsets once this batch is committed.
    pub(super) offsets: Offsets,
    pub(super) took: Duration,
}

/// Shapes a batch; `decoding` turns values and keys that are not plain
/// (every schema id the batch names fetched already) into what the engine
/// reads.
pub(super) fn shape(
    shared: &Shared,
    messages: &[OwnedMessage],
    next: &Offsets,
    decoding: Option<&Decoding>,
) -> Shaped {
    let started = Instant::now();
    let (mut value_tape, mut key_buf) = (Tape::new(), Vec::new());
    let mut changes = BatchChanges::default();
    // Where each source key's latest state sits in `changes.sources`.
    let mut latest: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut dead = Vec::new();
    let mut offsets = next.clone();
    for m in messages {
        let position = Position {
            partition: m.partition(),
            offset: m.offset(),
        };
        let shaped = match decoding {
            None => shared
                .view
                .compiled
                .shape_message(m.key(), m.payload(), position),
            Some(d) => d.key(m.key(), &mut key_buf).and_then(|key| {
                let value = d.value(m.payload(), &mut value_tape)?;
                shared.view.compiled.shape_event(key, value, position)
            }),
        };
        match shaped {
            Ok(MessageChange::Add(records)) => changes.records.extend(records),
            Ok(MessageChange::Replace { source, records }) => {
                let change = SourceChange {
                    key: source,
                    version: position,
                    records,
                };
                // A later message of the key in the batch supersedes an earlier one.
                match latest.get(&change.key) {
                    Some(&i) => changes.sources[i] = change,
                    None => {
                        latest.insert(change.key.clone(), changes.sources.len());
                        changes.sources.push(change);
                    }
                }
            }
            Ok(MessageChange::Ignore) => {}
            Err(error) => dead.push(DeadLetter {
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().unwrap_or_default().to_vec(),
                error,
                position,
            }),
        }
        offsets.insert(m.partition(), m.offset() + 1);
    }
    Shaped {
        changes,
        dead,
        offsets,
        took: started.elapsed(),
    }
}

/// The outcome, the commit's duration, and when it became visible (ms since the epoch).
pub(super) type Committed = Result<(BatchOutcome, Duration, i64), StoreError>;

/// A batch whose letters are in Kafka, being committed to the store.
pub(super) struct InFlight<'scope> {
    pub(super) commit: std::thread::ScopedJoinHandle<'scope, Committed>,
    pub(super) offsets: Offsets,
    pub(super) events: u64,
    pub(super) dead_letter_reasons: Vec<&'static str>,
    pub(super) poll: Duration,
    pub(super) shape: Duration,
    /// The events' Kafka timestamps, for the freshness figures.
    pub(super) event_times_ms: Vec<i64>,
}

impl<'scope> InFlight<'scope> {
    pub(super) fn start<'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        shared: &'env Shared,
        polled: Polled,
        shaped: Shaped,
        letter_ends: Offsets,
    ) -> InFlight<'scope> {
        let offsets = shaped.offsets.clone();
        let dead_letter_reasons = shaped.dead.iter().map(|d| d.error.reason()).collect();
        let (changes, next_offsets) = (shaped.changes, shaped.offsets);
        let commit = scope.spawn(move || {
            let started = Instant::now();
            let mut outcome = shared
                .store
                .apply_batch(changes, &next_offsets, &letter_ends)?;
            let took = started.elapsed();
            // Visible at once, not after the next poll: freshness is the
            // commit, not the commit plus the wait for more events.
            shared.committed(&next_offsets, std::mem::take(&mut outcome.changed_rows));
            Ok((outcome, took, super::metrics::now_ms()))
        });
        let event_times_ms = polled
            .messages
            .iter()
            .map(|m| m.timestamp().to_millis().unwrap_or(0))
            .collect();
        InFlight {
            commit,
            offsets,
            event_times_ms,
            events: polled.messages.len() as u64,
            dead_letter_reasons,
            poll: polled.took,
            shape: shaped.took,
        }
    }
}
