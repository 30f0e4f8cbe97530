//! Reads at a steady rate while a projector builds its view (`matview bench
//! projector --lookups-per-second N`): what serving reads costs projection.
//! Open loop on a thread of its own: every millisecond the reads due by then
//! are sent (at most [`IN_FLIGHT`] at once; one that cannot be sent is
//! counted as an error), each of a random user's row; an answer that the
//! row does not exist yet (404) is a read served like any other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::gateway_load::Phase;

const IN_FLIGHT: usize = 256;

pub struct PacedReads {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Phase>,
}

impl PacedReads {
    /// Starts reading rows `u0`…`u{users-1}` of the projector at `base`.
    pub fn start(base: String, users: u64, per_second: u64) -> std::io::Result<PacedReads> {
        let stop = Arc::new(AtomicBool::new(false));
        let running = stop.clone();
        let thread = std::thread::Builder::new()
            .name("paced-reads".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => runtime.block_on(read(base, users.max(1), per_second, running)),
                    Err(_) => Phase {
                        requests: 0,
                        errors: 1,
                        seconds: 0.0,
                        micros: Vec::new(),
                    },
                }
            })?;
        Ok(PacedReads { stop, thread })
    }

    /// Stops reading; what was served.
    pub fn stop(self) -> Phase {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(Phase {
            requests: 0,
            errors: 1,
            seconds: 0.0,
            micros: Vec::new(),
        })
    }
}

async fn read(base: String, users: u64, per_second: u64, stop: Arc<AtomicBool>) -> Phase {
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    // From when the projector listens: its start is not a failed read.
    let health = format!("{base}/healthz");
    while !stop.load(Ordering::Relaxed) && http.get(&health).send().await.is_err() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let served: Arc<Mutex<(Vec<u64>, usize)>> = Arc::default();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let started = Instant::now();
    let (mut sent, mut unsent) = (0u64, 0usize);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * per_second as f64) as u64;
        while sent < due {
            sent += 1;
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                unsent += 1;
                continue;
            };
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let url = format!("{base}/v1/rows/u{}", state % users);
            let (http, served) = (http.clone(), served.clone());
            tokio::spawn(async move {
                let asked = Instant::now();
                // A read is answered when its whole body has arrived, as a
                // client that uses the row would wait for it.
                let answered = match http.get(url).send().await {
                    Ok(r) => {
                        let known =
                            r.status().is_success() || r.status() == reqwest::StatusCode::NOT_FOUND;
                        known && r.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                if let Ok(mut served) = served.lock() {
                    match answered {
                        true => served.0.push(asked.elapsed().as_micros() as u64),
                        false => served.1 += 1,
                    }
                }
                drop(slot);
            });
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    // Every read sent is answered (or timed out) before the figures are taken.
    let _ = slots.acquire_many(IN_FLIGHT as u32).await;
    let (micros, failed) = served
        .lock()
        .map(|mut s| (std::mem::take(&mut s.0), s.1))
        .unwrap_or_default();
    Phase {
        requests: micros.len(),
        errors: failed + unsent,
        seconds,
        micros,
    }
}
