//! Reconnect behaviour while a node is away: the connection attempts the
//! root namespace's clients (the test's producer, projectors, the operator)
//! send it, counted each second by the cluster's SYN counter. A storm — a
//! client retrying without backoff — shows as a steep count.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cluster::OwnCluster;

/// Kafka clients of the root namespace that may connect to any node: the
/// test's producer and its metadata clients, two projectors with four
/// clients each (consumer, watermarks, dead letters, their tail), the
/// operator's admin client.
pub const CLIENTS: u64 = 12;
/// librdkafka's first reconnect backoff (`reconnect.backoff.ms`); attempts
/// back off from it, doubling, so a client tries at most this often.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);

pub struct Reconnects {
    samples: Arc<Mutex<Vec<(Instant, u64)>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// Attempts in all and the most in any one second.
#[derive(Debug, Clone, Copy)]
pub struct Counted {
    pub attempts: u64,
    pub seconds: f64,
    pub peak_per_second: u64,
}

impl std::fmt::Display for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} connection attempts in {:.0} s ({:.1}/s, at most {} in one second)",
            self.attempts,
            self.seconds,
            self.attempts as f64 / self.seconds.max(1.0),
            self.peak_per_second
        )
    }
}

impl Reconnects {
    /// Counts attempts at node `node` of `cluster` from now until [`Reconnects::end`].
    pub fn count(cluster: &OwnCluster, node: i32) -> Reconnects {
        let (name, samples, stop) = (
            cluster.name().to_string(),
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(AtomicBool::new(false)),
        );
        let task = {
            let (samples, stop) = (samples.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let name = name.clone();
                    let at = Instant::now();
                    let count = tokio::task::spawn_blocking(move || OwnCluster::syns(&name, node))
                        .await
                        .expect("SYN counter");
                    if let Ok(mut s) = samples.lock() {
                        s.push((at, count));
                    }
                    tokio::time::sleep(Duration::from_secs(1).saturating_sub(at.elapsed())).await;
                }
            })
        };
        Reconnects {
            samples,
            stop,
            task,
        }
    }

    pub async fn end(self) -> Counted {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("SYN sampler");
        let samples = self.samples.lock().map(|s| s.clone()).unwrap_or_default();
        counted(&samples)
    }
}

/// Pure: totals of cumulative counter samples.
pub fn counted(samples: &[(Instant, u64)]) -> Counted {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Counted {
            attempts: 0,
            seconds: 0.0,
            peak_per_second: 0,
        };
    };
    let peak = samples
        .windows(2)
        .map(|w| {
            let secs = w[1].0.duration_since(w[0].0).as_secs_f64().max(1.0);
            ((w[1].1 - w[0].1) as f64 / secs).ceil() as u64
        })
        .max()
        .unwrap_or(0);
    Counted {
        attempts: last.1 - first.1,
        seconds: last.0.duration_since(first.0).as_secs_f64(),
        peak_per_second: peak,
    }
}

/// The most attempts `seconds` of backoff allow: each client at most
/// once per first backoff for the first second (the doubling reaches 1 s
/// after about 10 tries), then at most twice a second — far below a storm,
/// which retries without waiting.
pub fn allowed(seconds: f64) -> u64 {
    let first_second = 1000 / FIRST_BACKOFF.as_millis() as u64;
    CLIENTS * (first_second + 2 * seconds.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_the_steepest_second() {
        let t = Instant::now();
        let samples = [
            (t, 5),
            (t + Duration::from_secs(1), 9),
            (t + Duration::from_secs(2), 30),
            (t + Duration::from_secs(3), 31),
        ];
        let c = counted(&samples);
        assert_eq!((c.attempts, c.peak_per_second), (26, 21));
        assert!((c.seconds - 3.0).abs() < 1e-9);
        assert_eq!(counted(&[]).attempts, 0);
        assert_eq!(allowed(10.0), CLIENTS * 30);
    }
}
