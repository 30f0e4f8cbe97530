//! Calls to a shard's replicas with failover: a connection error, timeout or
//! 5xx from one replica is retried on another within the request's deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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
}

impl Default for Fanout {
    fn default() -> Self {
        Fanout {
            rotation: AtomicUsize::new(0),
        }
    }
}

impl Fanout {
    /// `call` on one replica of `shard`, failing over to the others, round
    /// after round, until `deadline`. Replicas are tried from a rotating
    /// start, which spreads load.
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
        let start = self.rotation.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        // Round after round until the deadline: on a loaded machine the one
        // live replica may time out once and answer the next time.
        for attempt in 0.. {
            if attempt > 0 && attempt % replicas.len() == 0 {
                tokio::time::sleep(ROUND_PAUSE).await;
            }
            let endpoint = &replicas[(start + attempt) % replicas.len()];
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            match tokio::time::timeout(remaining, call(endpoint.url.clone())).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(e)) if e.is_retryable() => {
                    metrics.failover();
                    last = Some(e);
                }
                Ok(Err(e)) => return Err(ShardError::Refused(e)),
                Err(_) => break,
            }
        }
        Err(ShardError::Exhausted { shard, last })
    }
}
