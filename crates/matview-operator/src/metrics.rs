//! Operator metrics (prometheus-client): reconciles, their duration, errors
//! by reason, views by phase (a deleted view leaves the gauge).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use matview_crd::Phase;

const SECONDS: [f64; 9] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Verb {
    verb: &'static str,
    /// The resource (and subresource), e.g. `materializedviews/status`.
    resource: String,
}

/// Counts the operator's requests to the Kubernetes API by verb and resource (a layer
/// of its client), for the scale benchmark and for operators of operators.
#[derive(Clone, Default)]
pub struct ApiRequests(Family<Verb, Counter>);

impl ApiRequests {
    pub fn count(&self, method: &http::Method, path: &str, query: Option<&str>) {
        let watch =
            query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
        let verb = match *method {
            _ if watch => "watch",
            http::Method::GET => "get",
            http::Method::POST => "create",
            http::Method::PATCH => "patch",
            http::Method::PUT => "update",
            http::Method::DELETE => "delete",
            _ => "other",
        };
        let resource = resource_of(path);
        self.0.get_or_create(&Verb { verb, resource }).inc();
    }
}

/// Pure: the resource a Kubernetes API path names, with its subresource:
/// `/apis/g/v/namespaces/ns/materializedviews/x/status` →
/// `materializedviews/status`.
fn resource_of(path: &str) -> String {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] | ["apis", _, _version, rest @ ..] => rest,
        _ => return "other".into(),
    };
    let rest = match rest {
        ["namespaces", _ns, kind, more @ ..] => [&[*kind][..], more].concat(),
        other => other.to_vec(),
    };
    match rest.as_slice() {
        [kind, _name, sub, ..] => format!("{kind}/{sub}"),
        [kind, ..] => (*kind).to_string(),
        [] => "other".into(),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: String,
}

pub struct OperatorMetrics {
    registry: Registry,
    reconciles: Counter,
    duration: Histogram,
    errors: Family<Reason, Counter>,
    views: Family<PhaseLabel, Gauge>,
    pub api_requests: ApiRequests,
    /// Each view's phase as last counted, to move it between gauges.
    phases: Mutex<BTreeMap<String, String>>,
}

impl Default for OperatorMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("matview_operator");
        let reconciles = Counter::default();
        let duration = Histogram::new(SECONDS);
        let errors = Family::<Reason, Counter>::default();
        let views = Family::<PhaseLabel, Gauge>::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_seconds",
            "Duration of reconciles",
            duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles by reason",
            errors.clone(),
        );
        registry.register("views", "Views by phase", views.clone());
        let api_requests = ApiRequests::default();
        registry.register(
            "api_requests",
            "Requests to the Kubernetes API by verb (watch, get, create, patch, update, delete)",
            api_requests.0.clone(),
        );
        OperatorMetrics {
            registry,
            reconciles,
            duration,
            errors,
            views,
            api_requests,
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
        self.metrics.reconciles.inc();
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
        self.errors.get_or_create(&Reason { reason }).inc();
    }

    fn count(&self, phase: &str, by: i64) {
        let label = PhaseLabel {
            phase: phase.to_string(),
        };
        self.views.get_or_create(&label).inc_by(by);
    }

    /// A deleted view leaves the per-phase gauge.
    pub fn forget(&self, view: &str) {
        let old = self.phases.lock().ok().and_then(|mut p| p.remove(view));
        if let Some(old) = old {
            self.count(&old, -1);
        }
    }

    pub fn phase(&self, view: &str, phase: Option<Phase>) {
        let new = phase.map_or_else(|| "Unknown".to_string(), |p| p.to_string());
        let old = self
            .phases
            .lock()
            .ok()
            .and_then(|mut p| p.insert(view.to_string(), new.clone()));
        if old.as_ref() != Some(&new) {
            if let Some(old) = old {
                self.count(&old, -1);
            }
            self.count(&new, 1);
        }
    }

    /// Views this operator has counted (for pacing periodic work).
    pub fn view_count(&self) -> usize {
        self.phases.lock().map(|p| p.len()).unwrap_or(0)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matview_api::metrics_text::sample;

    #[test]
    fn views_move_between_phases_and_leave_when_deleted() {
        let m = OperatorMetrics::default();
        m.phase("shop/a", Some(Phase::Building));
        m.phase("shop/b", Some(Phase::Building));
        m.phase("shop/a", Some(Phase::Ready));
        m.phase("shop/a", Some(Phase::Ready));
        m.error("KafkaError");
        drop(m.reconcile_timer());
        let text = m.render();
        let at = |series: &str| sample(&text, series);
        assert_eq!(
            at("matview_operator_views{phase=\"Building\"}"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            at("matview_operator_views{phase=\"Ready\"}"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            at("matview_operator_reconcile_errors_total{reason=\"KafkaError\"}"),
            Some(1.0)
        );
        assert_eq!(at("matview_operator_reconciles_total"), Some(1.0));
        m.forget("shop/b");
        let text = m.render();
        assert_eq!(
            sample(&text, "matview_operator_views{phase=\"Building\"}"),
            Some(0.0)
        );
    }

    #[test]
    fn requests_are_counted_by_verb_and_resource() {
        for (path, resource) in [
            (
                "/apis/matview.dev/v1alpha1/namespaces/shop/materializedviews/a/status",
                "materializedviews/status",
            ),
            (
                "/apis/apps/v1/namespaces/shop/statefulsets/a-s0",
                "statefulsets",
            ),
            ("/apis/apps/v1/statefulsets", "statefulsets"),
            ("/api/v1/namespaces/shop/pods", "pods"),
            ("/api/v1/namespaces/shop", "namespaces"),
            ("/apis/events.k8s.io/v1/namespaces/shop/events", "events"),
            ("/version", "other"),
        ] {
            assert_eq!(resource_of(path), resource, "{path}");
        }
        let m = OperatorMetrics::default();
        let patch = http::Method::PATCH;
        m.api_requests
            .count(&patch, "/api/v1/namespaces/shop/configmaps/a", None);
        m.api_requests
            .count(&http::Method::GET, "/api/v1/pods", Some("watch=true&x=1"));
        let text = m.render();
        let series = |verb: &str, resource: &str| {
            let name = "matview_operator_api_requests_total";
            sample(
                &text,
                &format!("{name}{{verb=\"{verb}\",resource=\"{resource}\"}}"),
            )
        };
        assert_eq!(series("patch", "configmaps"), Some(1.0), "{text}");
        assert_eq!(series("watch", "pods"), Some(1.0), "{text}");
    }
}
