//! Calls to a shard's replicas with failover and hedging: a connection error
//! or 5xx from one replica is retried on another at once; a replica that is
//! slow to answer gets company (the same call on the next replica) while it
//! keeps working, and the first answer wins — all within the read's deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;

use super::metrics::GatewayMetrics;
use super::routing::Endpoint;
use matview_api::{Answer, ClientError};

/// Pause before a second round over a shard's replicas (one may be restarting).
const ROUND_PAUSE: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("shard {shard} has no ready projector")]
    Dark { shard: u32 },
    #[error("no replica of shard {shard} answered before the deadline")]
    Exhausted {
        shard: u32,
        #[source]
        last: Option<ClientError>,
    },
    /// The projector answered, and the answer is an error for the caller.
    #[error(transparent)]
    Refused(ClientError),
}

pub struct Fanout {
    rotation: AtomicUsize,
    /// How long a call may go unanswered before the next replica is asked too.
    hedge_after: Duration,
}

impl Fanout {
    pub fn new(hedge_after: Duration) -> Fanout {
        Fanout {
            rotation: AtomicUsize::new(0),
            hedge_after: hedge_after.max(Duration::from_millis(1)),
        }
    }

    /// `call` on one replica of `shard` until `deadline`: a failed call is
    /// made again on the next replica (round after round: on a loaded
    /// machine the one live replica may fail once and answer the next
    /// time); a call unanswered after `hedge_after` is joined by one on the
    /// next replica, and neither is cancelled — a slow replica's work is
    /// not thrown away. Replicas are tried from a rotating start, which
    /// spreads load.
    pub async fn on_shard<T, F, Fut>(
        &self,
        metrics: &GatewayMetrics,
        shard: u32,
        replicas: &[Endpoint],
        deadline: Instant,
        call: F,
    ) -> Result<Answer<T>, ShardError>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<Answer<T>, ClientError>>,
    {
        if replicas.is_empty() {
            return Err(ShardError::Dark { shard });
        }
        // One replica: a second call to it still helps past a stuck connection.
        let most_in_flight = replicas.len().max(2);
        let start = self.rotation.fetch_add(1, Ordering::Relaxed);
        let mut attempts = 0usize;
        let mut in_flight: FuturesUnordered<Fut> = FuturesUnordered::new();
        let mut last = None;
        let mut next_call_at = Instant::now();
        let expired = tokio::time::sleep_until(deadline);
        tokio::pin!(expired);
        loop {
            tokio::select! {
                biased;
                Some(result) = in_flight.next() => match result {
                    Ok(answer) => return Ok(answer),
                    Err(e) if e.is_retryable() => {
                        metrics.failover();
                        last = Some(e);
                        if in_flight.is_empty() {
                            // A whole round failed: a short pause before the next.
                            let round_done = attempts.is_multiple_of(replicas.len());
                            next_call_at = Instant::now() + if round_done { ROUND_PAUSE } else { Duration::ZERO };
                        }
                    }
                    Err(e) => return Err(ShardError::Refused(e)),
                },
                _ = tokio::time::sleep_until(next_call_at), if in_flight.len() < most_in_flight => {
                    if !in_flight.is_empty() {
                        metrics.hedge();
                    }
                    let endpoint = &replicas[(start + attempts) % replicas.len()];
                    attempts += 1;
                    in_flight.push(call(endpoint.url.clone()));
                    next_call_at = Instant::now() + self.hedge_after;
                }
                _ = &mut expired => break,
            }
        }
        Err(ShardError::Exhausted { shard, last })
    }
}

#[cfg(test)]
#[path = "fanout_tests.rs"]
mod tests;
