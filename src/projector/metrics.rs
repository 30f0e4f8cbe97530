//! Projector metrics in the Prometheus text format. Plain atomics: the hot
//! loop updates them once per batch.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The value of one series (`name` with its labels, as written) in a
/// Prometheus text exposition.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

/// A histogram with fixed upper bounds.
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    total: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            if value <= *bound {
                count.fetch_add(1, Relaxed);
            }
        }
        self.sum_micros.fetch_add((value * 1e6) as u64, Relaxed);
        self.total.fetch_add(1, Relaxed);
    }

    pub fn render_to(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                count.load(Relaxed)
            );
        }
        let total = self.total.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {total}");
    }
}

const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
const SIZES: &[f64] = &[1.0, 10.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0, 50000.0];

pub struct Metrics {
    pub events: AtomicU64,
    pub records_applied: AtomicU64,
    pub records_unchanged: AtomicU64,
    pub dead_lettered: Mutex<BTreeMap<&'static str, u64>>,
    pub dead_letter_failures: AtomicU64,
    pub batches: AtomicU64,
    pub batch_events: Histogram,
    pub commit_seconds: Histogram,
    /// Time split of the consume loop, in microseconds.
    pub poll_micros: AtomicU64,
    pub shape_micros: AtomicU64,
    pub commit_micros: AtomicU64,
    pub loop_micros: AtomicU64,
    pub lag: Mutex<BTreeMap<i32, i64>>,
    pub rows: AtomicU64,
    pub store_bytes: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            events: AtomicU64::new(0),
            records_applied: AtomicU64::new(0),
            records_unchanged: AtomicU64::new(0),
            dead_lettered: Mutex::new(BTreeMap::new()),
            dead_letter_failures: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            batch_events: Histogram::new(SIZES),
            commit_seconds: Histogram::new(SECONDS),
            poll_micros: AtomicU64::new(0),
            shape_micros: AtomicU64::new(0),
            commit_micros: AtomicU64::new(0),
            loop_micros: AtomicU64::new(0),
            lag: Mutex::new(BTreeMap::new()),
            rows: AtomicU64::new(0),
            store_bytes: AtomicU64::new(0),
        }
    }
}

/// One committed batch, as the consume loop reports it: counted here, once.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    pub events: u64,
    pub records_applied: u64,
    pub records_unchanged: u64,
    pub dead_letter_reasons: Vec<&'static str>,
    pub poll: std::time::Duration,
    pub shape: std::time::Duration,
    pub commit: std::time::Duration,
    /// The whole loop since the previous batch, idle polls included.
    pub iteration: std::time::Duration,
}

impl Metrics {
    pub fn batch(&self, report: &BatchReport) {
        let micros = |d: std::time::Duration| d.as_micros() as u64;
        self.events.fetch_add(report.events, Relaxed);
        self.records_applied
            .fetch_add(report.records_applied, Relaxed);
        self.records_unchanged
            .fetch_add(report.records_unchanged, Relaxed);
        self.batches.fetch_add(1, Relaxed);
        self.batch_events.observe(report.events as f64);
        self.commit_seconds.observe(report.commit.as_secs_f64());
        self.poll_micros.fetch_add(micros(report.poll), Relaxed);
        self.shape_micros.fetch_add(micros(report.shape), Relaxed);
        self.commit_micros.fetch_add(micros(report.commit), Relaxed);
        self.loop_micros
            .fetch_add(micros(report.iteration), Relaxed);
        for reason in &report.dead_letter_reasons {
            self.dead_letter(reason);
        }
    }

    pub fn dead_letter_failure(&self) {
        self.dead_letter_failures.fetch_add(1, Relaxed);
    }

    pub fn dead_letter(&self, reason: &'static str) {
        if let Ok(mut map) = self.dead_lettered.lock() {
            *map.entry(reason).or_insert(0) += 1;
        }
    }

    pub fn dead_lettered_total(&self) -> u64 {
        self.dead_lettered
            .lock()
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }

    pub fn total_lag(&self) -> i64 {
        self.lag.lock().map(|m| m.values().sum()).unwrap_or(0)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "matview_events_consumed_total",
            "Events read from the source topic.",
            self.events.load(Relaxed),
        );
        counter(
            &mut out,
            "matview_records_applied_total",
            "Records inserted or replaced in the store.",
            self.records_applied.load(Relaxed),
        );
        counter(
            &mut out,
            "matview_records_unchanged_total",
            "Records re-delivered or older than the stored version.",
            self.records_unchanged.load(Relaxed),
        );
        counter(
            &mut out,
            "matview_batches_total",
            "Batches committed.",
            self.batches.load(Relaxed),
        );
        counter(
            &mut out,
            "matview_dead_letter_failures_total",
            "Batches held back because the dead-letter topic could not be written.",
            self.dead_letter_failures.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP matview_dead_lettered_total Events sent to the dead-letter topic, by reason.\n# TYPE matview_dead_lettered_total counter"
        );
        if let Ok(map) = self.dead_lettered.lock() {
            for (reason, n) in map.iter() {
                let _ = writeln!(
                    out,
                    "matview_dead_lettered_total{{reason=\"{reason}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP matview_lag Events of the partition not yet applied.\n# TYPE matview_lag gauge"
        );
        if let Ok(map) = self.lag.lock() {
            for (p, lag) in map.iter() {
                let _ = writeln!(out, "matview_lag{{partition=\"{p}\"}} {lag}");
            }
        }
        let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            &mut out,
            "matview_rows",
            "Rows in the store.",
            self.rows.load(Relaxed),
        );
        gauge(
            &mut out,
            "matview_store_bytes",
            "Size of the store file.",
            self.store_bytes.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP matview_loop_seconds_total Consume-loop time by stage.\n# TYPE matview_loop_seconds_total counter"
        );
        let poll = self.poll_micros.load(Relaxed);
        let shape = self.shape_micros.load(Relaxed);
        let commit = self.commit_micros.load(Relaxed);
        // Everything else in the loop: watermarks, offset commits to Kafka, lag.
        let other = self
            .loop_micros
            .load(Relaxed)
            .saturating_sub(poll + shape + commit);
        for (stage, v) in [
            ("poll", poll),
            ("shape", shape),
            ("commit", commit),
            ("other", other),
        ] {
            let _ = writeln!(
                out,
                "matview_loop_seconds_total{{stage=\"{stage}\"}} {}",
                v as f64 / 1e6
            );
        }
        self.batch_events.render_to(
            &mut out,
            "matview_batch_events",
            "Events per committed batch.",
        );
        self.commit_seconds.render_to(
            &mut out,
            "matview_commit_seconds",
            "Duration of the store commit of a batch.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_labels_and_histograms() {
        let m = Metrics::default();
        m.events.fetch_add(7, Relaxed);
        m.dead_letter("not-json");
        m.dead_letter("not-json");
        m.commit_seconds.observe(0.003);
        m.lag.lock().expect("lock").insert(2, 40);
        let text = m.render();
        assert!(text.contains("matview_events_consumed_total 7\n"), "{text}");
        assert!(
            text.contains("matview_dead_lettered_total{reason=\"not-json\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("matview_lag{partition=\"2\"} 40\n"), "{text}");
        assert!(
            text.contains("matview_commit_seconds_bucket{le=\"0.0025\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("matview_commit_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("matview_commit_seconds_count 1\n"), "{text}");
        assert_eq!(m.dead_lettered_total(), 2);
    }
}
