//! One memory budget for a projector, shared out between what grows with
//! it: the store's page cache, librdkafka's fetch queue and the batches in
//! flight (one committing while the next is shaped). Pure.

/// What a budget allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPlan {
    pub store_cache_bytes: usize,
    /// librdkafka's `queued.max.messages.kbytes` (per partition).
    pub fetch_queue_kib: usize,
    pub batch_max_events: usize,
}

/// Memory the process needs whatever the budget (runtime, HTTP server,
/// librdkafka's threads, the engine): measured at about 96 MiB.
const BASE_MIB: usize = 96;
/// A batch in flight costs about this much per event: the event, its
/// records, and the store's pages it dirties before the commit.
const BATCH_BYTES_PER_EVENT: usize = 4096;
/// One batch commits while the next is polled and shaped.
const BATCHES_IN_FLIGHT: usize = 2;
/// What the default budget (512 MiB) allows. Bigger batches dirty each
/// store page for more items: 2M orders ran at 158,900 items/s with 20,000
/// and 180,300 with this (README, projector benchmark).
pub const DEFAULT_BATCH_MAX_EVENTS: usize = 32_768;

/// Shares out `budget_mib`: a quarter (at least 16 MiB) to the store's page
/// cache unless `store_cache_mib` is given; 1/64 per partition to the fetch
/// queue (at least 1 MiB); what is left after those and the base to the
/// two batches in flight, which caps `batch_max_events`.
pub fn plan(
    budget_mib: usize,
    store_cache_mib: Option<usize>,
    batch_max_events: usize,
) -> MemoryPlan {
    let cache_mib = store_cache_mib.unwrap_or((budget_mib / 4).max(16));
    let fetch_queue_kib = (budget_mib * 1024 / 64).max(1024);
    // Four partitions' queues at most, as a shard usually holds.
    let left_mib = budget_mib
        .saturating_sub(BASE_MIB + cache_mib + 4 * fetch_queue_kib / 1024)
        .max(16);
    let batch_cap = (left_mib << 20) / (BATCHES_IN_FLIGHT * BATCH_BYTES_PER_EVENT);
    MemoryPlan {
        store_cache_bytes: cache_mib << 20,
        fetch_queue_kib,
        batch_max_events: batch_max_events.min(batch_cap).max(1),
    }
}

/// The memory limit of the process's cgroup (v2), when one is set.
pub fn cgroup_limit_mib() -> Option<usize> {
    let text = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok()?;
    let bytes: u64 = text.trim().parse().ok()?;
    usize::try_from(bytes >> 20).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budget_fits_a_512_mib_pod() {
        let p = plan(512, None, DEFAULT_BATCH_MAX_EVENTS);
        assert_eq!(p.store_cache_bytes, 128 << 20);
        assert_eq!(p.fetch_queue_kib, 8 * 1024);
        assert_eq!(p.batch_max_events, DEFAULT_BATCH_MAX_EVENTS);
        let batch_bytes = BATCHES_IN_FLIGHT * p.batch_max_events * BATCH_BYTES_PER_EVENT;
        let total =
            (BASE_MIB << 20) + p.store_cache_bytes + 4 * (p.fetch_queue_kib << 10) + batch_bytes;
        assert!(total <= 512 << 20, "{total} bytes planned");
    }

    #[test]
    fn small_budgets_shrink_batches_and_big_ones_grow_the_cache() {
        let small = plan(128, None, 20_000);
        assert_eq!(small.batch_max_events, 2048, "{small:?}");
        assert_eq!(small.store_cache_bytes, 32 << 20);
        let big = plan(4096, None, 20_000);
        assert_eq!(big.store_cache_bytes, 1024 << 20);
        assert_eq!(big.batch_max_events, 20_000);
        let given = plan(512, Some(300), 20_000);
        assert_eq!(given.store_cache_bytes, 300 << 20);
        assert!(plan(0, None, 20_000).batch_max_events >= 1);
    }
}
