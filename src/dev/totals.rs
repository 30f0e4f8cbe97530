//! The serving revision's rows and lag in `matview dev`, for the status the
//! gateway shows (what the operator writes in a cluster): the view list and
//! summary show numbers, not `—`.
//!
//! As the operator counts them: when the topic is not keyed by the row key,
//! a row can have records in several shards, so rows are distinct keys over
//! the shards' stores — counted again only when records were applied since,
//! and at most every [`RECOUNT_EVERY`] (dev mode publishes every second; a
//! big view's keys are not read that often).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::projector::RunningProjector;

/// Above this many keys, rows are summed over the shards instead.
const MAX_DISTINCT_KEYS: usize = 1_000_000;
const KEYS_PAGE: usize = 10_000;
/// Distinct rows are counted again at most this often.
pub const RECOUNT_EVERY: Duration = Duration::from_secs(10);

/// A revision's totals, and what they were counted at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub rows: i64,
    pub lag: i64,
    pub records_applied: u64,
    /// When `rows` was counted.
    pub counted_at: Instant,
}

/// The totals of one revision's projectors (one per shard in dev mode);
/// `known` is the last count of the same revision.
pub fn totals(
    projectors: &[RunningProjector],
    keyed_by_row_key: bool,
    known: Option<Totals>,
) -> Totals {
    let records_applied = projectors
        .iter()
        .map(|p| p.shared.metrics.records_applied())
        .sum();
    let lag = projectors
        .iter()
        .map(|p| p.shared.metrics.total_lag())
        .sum();
    let summed = || {
        projectors
            .iter()
            .map(|p| p.shared.store.row_count().unwrap_or(0) as i64)
            .sum()
    };
    if keyed_by_row_key || projectors.len() < 2 {
        return Totals {
            rows: summed(),
            lag,
            records_applied,
            counted_at: Instant::now(),
        };
    }
    match known
        .filter(|k| k.records_applied == records_applied || k.counted_at.elapsed() < RECOUNT_EVERY)
    {
        Some(k) => Totals { lag, ..k },
        None => Totals {
            rows: distinct_keys(projectors).unwrap_or_else(summed),
            lag,
            records_applied,
            counted_at: Instant::now(),
        },
    }
}

fn distinct_keys(projectors: &[RunningProjector]) -> Option<i64> {
    let mut keys = BTreeSet::new();
    for p in projectors {
        let mut after: Option<String> = None;
        loop {
            let page = p
                .shared
                .store
                .keys(None, after.as_deref(), KEYS_PAGE)
                .ok()?;
            let done = page.len() < KEYS_PAGE;
            after = page.last().cloned();
            keys.extend(page);
            if keys.len() > MAX_DISTINCT_KEYS {
                return None;
            }
            if done {
                break;
            }
        }
    }
    Some(keys.len() as i64)
}
