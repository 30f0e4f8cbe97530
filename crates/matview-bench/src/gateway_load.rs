//! Closed-loop load of `matview bench gateway`: N clients, each sending its
//! next request when the last one is answered, with latencies recorded.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Latency figures of one phase.
pub struct Phase {
    pub requests: usize,
    pub errors: usize,
    pub seconds: f64,
    pub micros: Vec<u64>,
}

impl Phase {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }

    pub fn percentile(&mut self, p: f64) -> f64 {
        if self.micros.is_empty() {
            return 0.0;
        }
        self.micros.sort_unstable();
        let at = ((self.micros.len() as f64 * p) as usize).min(self.micros.len() - 1);
        self.micros[at] as f64 / 1000.0
    }

    /// `what`, the rate, p50 and p99, and `extra`.
    pub fn line(&mut self, what: &str, extra: &str) -> String {
        format!(
            "{what:<26}{:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} errors){extra}\n",
            self.rate(),
            self.percentile(0.50),
            self.percentile(0.99),
            self.errors
        )
    }

    /// A freshness line: p50 and p99 of the delays, and how many were seen.
    pub fn freshness_line(&mut self, what: &str) -> String {
        format!(
            "{what:<26}p50 {:>6.1} ms  p99 {:>6.1} ms  ({} of {} seen)\n",
            self.percentile(0.50),
            self.percentile(0.99),
            self.micros.len(),
            self.requests
        )
    }
}

/// The URL of a client's next request, from a random number.
pub type Targets = Arc<dyn Fn(u64) -> String + Send + Sync>;

/// `clients` loops of requests for `duration`; a 2xx answer counts, anything
/// else is an error.
pub async fn load(targets: Targets, clients: usize, duration: Duration) -> Phase {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .tcp_nodelay(true)
        .build()
        .unwrap_or_default();
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (http, targets) = (http.clone(), targets.clone());
            tokio::spawn(async move {
                let mut state = (c as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                let (mut micros, mut errors) = (Vec::new(), 0);
                while started.elapsed() < duration {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let target = targets(state);
                    let sent = Instant::now();
                    let answered = match http.get(&target).send().await {
                        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                        _ => false,
                    };
                    if answered {
                        micros.push(sent.elapsed().as_micros() as u64);
                    } else {
                        errors += 1;
                    }
                }
                (micros, errors)
            })
        })
        .collect();
    let mut phase = Phase {
        requests: 0,
        errors: 0,
        seconds: 0.0,
        micros: Vec::new(),
    };
    for task in tasks {
        if let Ok((micros, errors)) = task.await {
            phase.requests += micros.len() + errors;
            phase.errors += errors;
            phase.micros.extend(micros);
        }
    }
    phase.seconds = started.elapsed().as_secs_f64();
    phase
}
