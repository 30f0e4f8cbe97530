//! Projector metrics (prometheus-client). The consume loop reports each batch
//! once ([`Metrics::batch`]); the stats endpoint reads the same figures.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::figures::FigureRing;

pub use matview_api::metrics_text::sample;

const SECONDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
const SIZES: [f64; 8] = [1.0, 10.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0, 50000.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Partition {
    partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Stage {
    stage: &'static str,
}

pub struct Metrics {
    registry: Registry,
    events: Counter,
    records_applied: Counter,
    records_unchanged: Counter,
    records_removed: Counter,
    source_deletes: Counter,
    unknown_deletes: Counter,
    batches: Counter,
    dead_letter_failures: Counter,
    dead_lettered: Family<Reason, Counter>,
    /// The sum over reasons, for the stats endpoint.
    dead_lettered_total: AtomicU64,
    lag: Family<Partition, Gauge>,
    /// Lag by partition, for the stats endpoint.
    lag_by_partition: Mutex<BTreeMap<i32, i64>>,
    rows: Gauge,
    store_bytes: Gauge,
    store_rebuilt_from_damage: Gauge,
    source_reachable: Gauge,
    store_writable: Gauge,
    schema_registry_reachable: Gauge,
    loop_seconds: Family<Stage, Counter<f64, AtomicU64>>,
    batch_events: Histogram,
    commit_seconds: Histogram,
    /// The console's recent figures.
    figures: Mutex<FigureRing>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("matview"),
            events: Counter::default(),
            records_applied: Counter::default(),
            records_unchanged: Counter::default(),
            records_removed: Counter::default(),
            source_deletes: Counter::default(),
            unknown_deletes: Counter::default(),
            batches: Counter::default(),
            dead_letter_failures: Counter::default(),
            dead_lettered: Family::default(),
            dead_lettered_total: AtomicU64::new(0),
            lag: Family::default(),
            lag_by_partition: Mutex::new(BTreeMap::new()),
            rows: Gauge::default(),
            store_bytes: Gauge::default(),
            store_rebuilt_from_damage: Gauge::default(),
            source_reachable: Gauge::default(),
            store_writable: Gauge::default(),
            schema_registry_reachable: Gauge::default(),
            loop_seconds: Family::default(),
            batch_events: Histogram::new(SIZES),
            commit_seconds: Histogram::new(SECONDS),
            figures: Mutex::new(FigureRing::default()),
        };
        let r = &mut m.registry;
        r.register(
            "events_consumed",
            "Events read from the source topic",
            m.events.clone(),
        );
        r.register(
            "records_applied",
            "Records inserted or replaced in the store",
            m.records_applied.clone(),
        );
        r.register(
            "records_unchanged",
            "Records re-delivered or older than the stored version",
            m.records_unchanged.clone(),
        );
        r.register(
            "records_removed",
            "Records withdrawn because their source key changed or was deleted",
            m.records_removed.clone(),
        );
        r.register(
            "source_deletes",
            "Source keys deleted (tombstones, Debezium deletes)",
            m.source_deletes.clone(),
        );
        r.register(
            "unknown_deletes",
            "Deletes of source keys the view never held (not an error)",
            m.unknown_deletes.clone(),
        );
        r.register("batches", "Batches committed", m.batches.clone());
        r.register(
            "dead_letter_failures",
            "Batches held back because the dead-letter topic could not be written",
            m.dead_letter_failures.clone(),
        );
        r.register(
            "dead_lettered",
            "Events sent to the dead-letter topic, by reason",
            m.dead_lettered.clone(),
        );
        r.register(
            "lag",
            "Events of the partition not yet applied",
            m.lag.clone(),
        );
        r.register("rows", "Rows in the store", m.rows.clone());
        r.register(
            "store_bytes",
            "Size of the store file",
            m.store_bytes.clone(),
        );
        r.register(
            "store_rebuilt_from_damage",
            "1 when this process found its store damaged and is rebuilding it from the topic",
            m.store_rebuilt_from_damage.clone(),
        );
        r.register(
            "source_reachable",
            "1 while the source topic's broker answers; 0 while reads are served from the store alone",
            m.source_reachable.clone(),
        );
        r.register(
            "store_writable",
            "1 while batches are written; 0 while they are held (too little free disk space)",
            m.store_writable.clone(),
        );
        r.register(
            "schema_registry_reachable",
            "1 while the schema registry answers (or the view's format needs none); 0 while batches wait for it",
            m.schema_registry_reachable.clone(),
        );
        r.register(
            "loop_seconds",
            "Consume-loop time by stage",
            m.loop_seconds.clone(),
        );
        r.register(
            "batch_events",
            "Events per committed batch",
            m.batch_events.clone(),
        );
        r.register(
            "commit_seconds",
            "Duration of the store commit of a batch",
            m.commit_seconds.clone(),
        );
        m
    }
}

/// Wall-clock milliseconds since the Unix epoch (Kafka's timestamps' clock).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One committed batch, as the consume loop reports it: counted here, once.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    pub events: u64,
    pub records_applied: u64,
    pub records_unchanged: u64,
    pub records_removed: u64,
    pub source_deletes: u64,
    pub unknown_deletes: u64,
    pub dead_letter_reasons: Vec<&'static str>,
    pub poll: std::time::Duration,
    pub shape: std::time::Duration,
    pub commit: std::time::Duration,
    /// The whole loop since the previous batch, idle polls included.
    pub iteration: std::time::Duration,
    /// The batch's events' Kafka timestamps (ms since the epoch).
    pub event_times_ms: Vec<i64>,
    /// When the batch became visible to reads (ms since the epoch).
    pub visible_ms: i64,
}

impl Metrics {
    pub fn batch(&self, report: &BatchReport) {
        self.events.inc_by(report.events);
        self.records_applied.inc_by(report.records_applied);
        self.records_unchanged.inc_by(report.records_unchanged);
        self.records_removed.inc_by(report.records_removed);
        self.source_deletes.inc_by(report.source_deletes);
        self.unknown_deletes.inc_by(report.unknown_deletes);
        self.batches.inc();
        self.batch_events.observe(report.events as f64);
        self.commit_seconds.observe(report.commit.as_secs_f64());
        let staged = report.poll + report.shape + report.commit;
        // Everything else in the loop: watermarks, offset commits to Kafka, lag.
        let other = report.iteration.saturating_sub(staged);
        for (stage, took) in [
            ("poll", report.poll),
            ("shape", report.shape),
            ("commit", report.commit),
            ("other", other),
        ] {
            self.loop_seconds
                .get_or_create(&Stage { stage })
                .inc_by(took.as_secs_f64());
        }
        for reason in &report.dead_letter_reasons {
            self.dead_letter(reason);
        }
        if let Ok(mut ring) = self.figures.lock() {
            ring.batch(
                report.visible_ms,
                report.events,
                report.records_applied + report.records_removed,
                &report.dead_letter_reasons,
                &report.event_times_ms,
            );
        }
    }

    /// The recent figures, sampled up to now.
    pub fn figures(&self) -> Vec<matview_api::figures::FigureSample> {
        self.figures
            .lock()
            .map(|mut ring| ring.samples(now_ms()))
            .unwrap_or_default()
    }

    pub fn lag_by_partition(&self) -> BTreeMap<i32, i64> {
        self.lag_by_partition
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    pub fn dead_letter_failure(&self) {
        self.dead_letter_failures.inc();
    }

    pub fn dead_letter(&self, reason: &'static str) {
        self.dead_lettered.get_or_create(&Reason { reason }).inc();
        self.dead_lettered_total.fetch_add(1, Relaxed);
    }

    pub fn set_lag(&self, lag: BTreeMap<i32, i64>) {
        for (&partition, &behind) in &lag {
            self.lag.get_or_create(&Partition { partition }).set(behind);
        }
        let total = lag.values().sum();
        if let Ok(mut current) = self.lag_by_partition.lock() {
            *current = lag;
        }
        if let Ok(mut ring) = self.figures.lock() {
            ring.set_lag(now_ms(), total);
        }
    }

    pub fn set_rows(&self, rows: u64) {
        self.rows.set(i64::try_from(rows).unwrap_or(i64::MAX));
    }

    pub fn set_store_bytes(&self, bytes: u64) {
        self.store_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub fn set_store_writable(&self, writable: bool) {
        self.store_writable.set(i64::from(writable));
    }

    pub fn set_registry_reachable(&self, reachable: bool) {
        self.schema_registry_reachable.set(i64::from(reachable));
    }

    pub fn set_source_reachable(&self, reachable: bool) {
        self.source_reachable.set(i64::from(reachable));
    }

    pub fn store_rebuilt_from_damage(&self) {
        self.store_rebuilt_from_damage.set(1);
    }

    pub fn events(&self) -> u64 {
        self.events.get()
    }

    /// Records written to the store: inserted, replaced or removed (so a
    /// batch of deletes moves it too, and status readers notice).
    pub fn records_applied(&self) -> u64 {
        self.records_applied.get() + self.records_removed.get()
    }

    pub fn rows(&self) -> u64 {
        u64::try_from(self.rows.get()).unwrap_or(0)
    }

    pub fn dead_lettered_total(&self) -> u64 {
        self.dead_lettered_total.load(Relaxed)
    }

    pub fn total_lag(&self) -> i64 {
        self.lag_by_partition
            .lock()
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_labels_and_histograms() {
        let m = Metrics::default();
        m.batch(&BatchReport {
            events: 7,
            commit: std::time::Duration::from_millis(3),
            dead_letter_reasons: vec!["not-json", "not-json"],
            ..Default::default()
        });
        m.set_lag(BTreeMap::from([(2, 40)]));
        let text = m.render();
        assert_eq!(
            sample(&text, "matview_events_consumed_total"),
            Some(7.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "matview_dead_lettered_total{reason=\"not-json\"}"),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "matview_lag{partition=\"2\"}"),
            Some(40.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "matview_commit_seconds_bucket{le=\"0.0025\"}"),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "matview_commit_seconds_bucket{le=\"0.005\"}"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "matview_commit_seconds_count"),
            Some(1.0),
            "{text}"
        );
        assert!(
            sample(&text, "matview_loop_seconds_total{stage=\"commit\"}").is_some(),
            "{text}"
        );
        assert_eq!(m.dead_lettered_total(), 2);
        assert_eq!(m.total_lag(), 40);
    }
}
