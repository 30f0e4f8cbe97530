//! Operator metrics: reconciles, their duration, errors by reason, views by phase.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use crate::crd::Phase;
use crate::projector::metrics::Histogram;

const SECONDS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

pub struct OperatorMetrics {
    reconciles: AtomicU64,
    duration: Histogram,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    phases: Mutex<BTreeMap<String, Option<Phase>>>,
}

impl Default for OperatorMetrics {
    fn default() -> Self {
        OperatorMetrics {
            reconciles: AtomicU64::new(0),
            duration: Histogram::new(SECONDS),
            errors: Mutex::new(BTreeMap::new()),
            phases: Mutex::new(BTreeMap::new()),
        }
    }
}

/// Times one reconcile when dropped: cannot be forgotten on any return path.
pub struct ReconcileTimer<'a> {
    metrics: &'a OperatorMetrics,
    started: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics.reconciles.fetch_add(1, Relaxed);
        self.metrics
            .duration
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl OperatorMetrics {
    pub fn reconcile_timer(&self) -> ReconcileTimer<'_> {
        ReconcileTimer {
            metrics: self,
            started: Instant::now(),
        }
    }

    pub fn error(&self, reason: &'static str) {
        if let Ok(mut e) = self.errors.lock() {
            *e.entry(reason).or_insert(0) += 1;
        }
    }

    /// A deleted view leaves the per-phase gauge.
    pub fn forget(&self, view: &str) {
        if let Ok(mut p) = self.phases.lock() {
            p.remove(view);
        }
    }

    pub fn phase(&self, view: &str, phase: Option<Phase>) {
        if let Ok(mut p) = self.phases.lock() {
            p.insert(view.to_string(), phase);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP matview_operator_reconciles_total Reconciles run.\n# TYPE matview_operator_reconciles_total counter\nmatview_operator_reconciles_total {}",
            self.reconciles.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP matview_operator_reconcile_errors_total Failed reconciles by reason.\n# TYPE matview_operator_reconcile_errors_total counter"
        );
        if let Ok(errors) = self.errors.lock() {
            for (reason, n) in errors.iter() {
                let _ = writeln!(
                    out,
                    "matview_operator_reconcile_errors_total{{reason=\"{reason}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP matview_operator_views Views by phase.\n# TYPE matview_operator_views gauge"
        );
        if let Ok(phases) = self.phases.lock() {
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for phase in phases.values() {
                *counts
                    .entry(
                        phase
                            .map(|p| format!("{p:?}"))
                            .unwrap_or_else(|| "Unknown".into()),
                    )
                    .or_insert(0) += 1;
            }
            for (phase, n) in counts {
                let _ = writeln!(out, "matview_operator_views{{phase=\"{phase}\"}} {n}");
            }
        }
        self.duration.render_to(
            &mut out,
            "matview_operator_reconcile_seconds",
            "Duration of reconciles.",
        );
        out
    }
}
