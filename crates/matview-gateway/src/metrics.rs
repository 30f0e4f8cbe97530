//! Gateway metrics (prometheus-client): requests by route and status, their
//! latency, fan-out size, failovers and hedges between replicas, authorization checks.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

pub struct GatewayMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    fanout: Histogram,
    failovers: Counter,
    hedges: Counter,
    streams: Gauge,
    row_cache_hits: Counter,
    row_cache_misses: Counter,
}

/// Counts an open stream until dropped.
pub struct OpenStream(Gauge);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("matview_gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0002, 2.0, 16))
        });
        let fanout = Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0]);
        let failovers = Counter::default();
        let streams = Gauge::default();
        registry.register("open_streams", "Live streams being served", streams.clone());
        registry.register(
            "requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "request_seconds",
            "Request latency by route",
            latency.clone(),
        );
        registry.register(
            "fanout_shards",
            "Shards asked per data request",
            fanout.clone(),
        );
        registry.register(
            "failovers",
            "Calls retried on another replica after a failure",
            failovers.clone(),
        );
        let hedges = Counter::default();
        registry.register(
            "hedges",
            "Calls also made on another replica because the first was slow to answer",
            hedges.clone(),
        );
        let row_cache_hits = Counter::default();
        let row_cache_misses = Counter::default();
        registry.register(
            "row_cache_hits",
            "Row reads answered from the gateway's row cache",
            row_cache_hits.clone(),
        );
        registry.register(
            "row_cache_misses",
            "Row reads that asked the projectors",
            row_cache_misses.clone(),
        );
        GatewayMetrics {
            registry,
            row_cache_hits,
            row_cache_misses,
            requests,
            latency,
            fanout,
            failovers,
            hedges,
            streams,
        }
    }
}

impl GatewayMetrics {
    pub fn failover(&self) {
        self.failovers.inc();
    }

    pub fn hedge(&self) {
        self.hedges.inc();
    }

    pub fn stream_opened(&self) -> OpenStream {
        self.streams.inc();
        OpenStream(self.streams.clone())
    }

    /// Counts a row read: answered from the row cache or not.
    pub fn row_read(&self, hit: bool) {
        if hit {
            self.row_cache_hits.inc();
        } else {
            self.row_cache_misses.inc();
        }
    }

    /// Row reads answered from the cache and not, so far.
    pub fn row_reads(&self) -> (u64, u64) {
        (self.row_cache_hits.get(), self.row_cache_misses.get())
    }

    pub fn fanout(&self, shards: usize) {
        self.fanout.observe(shards as f64);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Counts and times every request by its route template (not its path, so
/// keys never become labels).
pub async fn observe(
    State(metrics): State<Arc<GatewayMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .latency
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
