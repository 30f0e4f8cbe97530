//! Freshness of `matview bench gateway`: new items produced at a steady rate,
//! each timed from the moment it is handed to the producer until the view
//! shows it — on the view's live stream (every item), and on a plain read of
//! its row (a sample, polled every millisecond).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use serde_json::{Value, json};

use super::gateway_load::Phase;
use super::{BenchError, io_err};
use matview_gateway::upstream::{MAX_PENDING_BYTES, sse_events};

/// Reads polled per second at most, whatever the event rate.
const READ_PROBES_PER_SECOND: u64 = 50;
/// Freshness phases run so far in this process: each names its own items.
static PHASES: AtomicU64 = AtomicU64::new(0);
/// A change not visible after this long counts as not seen.
const GIVE_UP: Duration = Duration::from_secs(10);

pub struct Freshness {
    pub stream: Phase,
    pub read: Phase,
    /// From the send to the broker's acknowledgement, timed in librdkafka's
    /// delivery thread: the share of the delay that is Kafka's, not the view's.
    pub acked: Phase,
    /// Time tasks of the machine were stalled on I/O during the phase (the
    /// kernel's pressure figures, `some` and `full`, in ms), when it has them.
    pub io_stalled_ms: Option<(u64, u64)>,
}

type SentAt = Arc<Mutex<HashMap<String, Instant>>>;

/// Times each acknowledgement in librdkafka's own delivery thread, as it
/// arrives: a runtime busy with the stream and reads (the benchmark's
/// process also runs the gateway) cannot delay it.
#[derive(Default)]
pub struct AckTimer {
    acked: Mutex<Vec<u64>>,
}

impl ClientContext for AckTimer {}

impl ProducerContext for AckTimer {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Instant>) {
        if result.is_ok()
            && let Ok(mut acked) = self.acked.lock()
        {
            acked.push(sent.elapsed().as_micros() as u64);
        }
    }
}

/// The producer of freshness phases.
pub type FreshProducer = ThreadedProducer<AckTimer>;

/// A producer batching as Kafka clients do by default (5 ms: a thousand
/// one-event requests a second is a load on the broker no producer would
/// make), with Java's partitioner, which the gateway's routing assumes.
pub fn fresh_producer(bootstrap_servers: &str) -> Result<FreshProducer, BenchError> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap_servers)
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .create_with_context(AckTimer::default())
        .map_err(super::kafka_err)
}

/// Hands one message to the producer, waiting while its queue is full.
async fn send(producer: &FreshProducer, topic: &str, key: &str, payload: &str, sent: Instant) {
    let mut record = BaseRecord::with_opaque_to(topic, Box::new(sent))
        .key(key)
        .payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

/// Reads the stream; each item found that `sent_at` holds is timed into
/// `seen`. Ends once `done` and every sent item was seen.
async fn time_items(
    response: reqwest::Response,
    sent_at: SentAt,
    seen: Arc<Mutex<Vec<u64>>>,
    done: Arc<AtomicBool>,
) {
    let mut events = std::pin::pin!(sse_events(response.bytes_stream(), MAX_PENDING_BYTES));
    while let Some(Ok(frame)) = events.next().await {
        let now = Instant::now();
        let data = serde_json::from_str::<Value>(&frame.data).unwrap_or_default();
        let groups = data["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| {
                row["groups"]
                    .as_object()
                    .into_iter()
                    .flat_map(|g| g.values())
            });
        for item in groups.flat_map(|g| g["items"].as_array().into_iter().flatten()) {
            let id = item["id"].as_str().unwrap_or_default();
            if let Some(at) = sent_at.lock().ok().and_then(|mut s| s.remove(id))
                && let Ok(mut seen) = seen.lock()
            {
                seen.push((now - at).as_micros() as u64);
            }
        }
        if done.load(Ordering::Relaxed) && sent_at.lock().map(|s| s.is_empty()).unwrap_or(true) {
            return;
        }
    }
}

/// Polls `row` every millisecond until its body names `item`; the delay
/// since `sent`, or `None` when it never did.
async fn probe(http: reqwest::Client, row: String, item: String, sent: Instant) -> Option<u64> {
    let needle = format!("\"{item}\"");
    while sent.elapsed() < GIVE_UP {
        if let Ok(response) = http.get(&row).send().await
            && response.status().is_success()
            && let Ok(body) = response.text().await
            && body.contains(&needle)
        {
            return Some(sent.elapsed().as_micros() as u64);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

/// Produces new items at `rate`/s for `duration` to `topic` (keyed by the
/// row key when `key_by_row`, else by item) and times each until the view
/// at `url` shows it.
pub async fn freshness(
    url: &str,
    producer: &FreshProducer,
    topic: &str,
    key_by_row: bool,
    rate: u64,
    duration: Duration,
) -> Result<Freshness, BenchError> {
    let response = reqwest::get(format!("{url}/watch")).await.map_err(io_err)?;
    if !response.status().is_success() {
        return Err(io_err(format!("watch answered {}", response.status())));
    }
    let sent_at: SentAt = Arc::default();
    let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(time_items(
        response,
        sent_at.clone(),
        seen.clone(),
        done.clone(),
    ));
    let http = reqwest::Client::new();
    let io_before = io_pressure_us();
    let phase = PHASES.fetch_add(1, Ordering::Relaxed);
    let sample_every = (rate / READ_PROBES_PER_SECOND).max(1);
    let started = Instant::now();
    let total = rate * duration.as_secs();
    let mut probes = Vec::new();
    if let Ok(mut acked) = producer.context().acked.lock() {
        acked.clear();
    }
    for i in 0..total {
        let due = started + Duration::from_micros(i * 1_000_000 / rate.max(1));
        tokio::time::sleep_until(due.into()).await;
        // Ids of this phase only: an item id seen before is not a change.
        let item = format!("fresh{phase}-{rate}-{i}");
        // Few items per user, so every item is among a row's listed items.
        let user = format!("fresh{phase}-user-{}", i % 5000);
        let order = json!({"orderId": item, "userId": user,
            "items": [{"itemId": item, "name": "pen", "price": 1.5}]});
        let sent = Instant::now();
        if let Ok(mut s) = sent_at.lock() {
            s.insert(item.clone(), sent);
        }
        let key = if key_by_row { &user } else { &item };
        send(producer, topic, key, &order.to_string(), sent).await;
        if i % sample_every == 0 {
            let row = format!("{url}/rows/{user}");
            probes.push(tokio::spawn(probe(http.clone(), row, item, sent)));
        }
    }
    // Every message acknowledged (or failed) before the phase's figures.
    let _ = producer.flush(Duration::from_secs(30));
    let mut read = Phase {
        requests: probes.len(),
        errors: 0,
        seconds: started.elapsed().as_secs_f64(),
        micros: Vec::new(),
    };
    for probe in futures::future::join_all(probes).await {
        match probe {
            Ok(Some(micros)) => read.micros.push(micros),
            _ => read.errors += 1,
        }
    }
    done.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(GIVE_UP, reader).await;
    let micros = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let stream = Phase {
        requests: total as usize,
        errors: total as usize - micros.len(),
        seconds: started.elapsed().as_secs_f64(),
        micros,
    };
    let acked = producer
        .context()
        .acked
        .lock()
        .map(|a| a.clone())
        .unwrap_or_default();
    let acked = Phase {
        requests: total as usize,
        errors: total as usize - acked.len(),
        seconds: stream.seconds,
        micros: acked,
    };
    let io_stalled_ms = io_before
        .zip(io_pressure_us())
        .map(|((some0, full0), (some1, full1))| {
            (
                some1.saturating_sub(some0) / 1000,
                full1.saturating_sub(full0) / 1000,
            )
        });
    Ok(Freshness {
        stream,
        read,
        acked,
        io_stalled_ms,
    })
}

/// Microseconds tasks have been stalled on I/O since boot: `some` (at
/// least one task) and `full` (every non-idle task), from the kernel's
/// pressure stall information.
fn io_pressure_us() -> Option<(u64, u64)> {
    io_pressure_in(&std::fs::read_to_string("/proc/pressure/io").ok()?)
}

fn io_pressure_in(text: &str) -> Option<(u64, u64)> {
    let total = |kind: &str| {
        text.lines()
            .find(|l| l.starts_with(kind))?
            .split_whitespace()
            .find_map(|field| field.strip_prefix("total="))?
            .parse::<u64>()
            .ok()
    };
    Some((total("some ")?, total("full ")?))
}

/// The machine's dirty and under-write-back page cache, in MiB.
fn dirty_mib() -> Option<(u64, u64)> {
    dirty_in(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

/// `Dirty` and `Writeback` of a /proc/meminfo text, in MiB.
fn dirty_in(meminfo: &str) -> Option<(u64, u64)> {
    let kib = |name: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
    };
    Some((kib("Dirty:")? >> 10, kib("Writeback:")? >> 10))
}

/// Before a growth step's phases: what the page cache still has to write,
/// written back first when `sync_first`; the report's line on it.
pub(crate) fn settle(rows: u64, sync_first: bool) -> Result<String, BenchError> {
    let before = dirty_mib();
    if sync_first {
        let status = std::process::Command::new("sync")
            .status()
            .map_err(|e| BenchError::Io(format!("sync: {e}")))?;
        if !status.success() {
            return Err(BenchError::Io(format!("sync: {status}")));
        }
    }
    let show = |d: Option<(u64, u64)>| {
        d.map_or("unknown".into(), |(dirty, back)| {
            format!("{dirty} MiB dirty, {back} MiB being written")
        })
    };
    Ok(match sync_first {
        true => format!(
            "{rows} rows: {} before its phases, written back first ({} after)\n",
            show(before),
            show(dirty_mib())
        ),
        false => format!("{rows} rows: {} before its phases\n", show(before)),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn io_pressure_totals_are_read() {
        let text = "some avg10=0.10 avg60=1.67 avg300=2.07 total=232489104\nfull avg10=0.07 avg60=0.40 avg300=0.26 total=134126159\n";
        assert_eq!(super::io_pressure_in(text), Some((232489104, 134126159)));
        assert_eq!(super::io_pressure_in("some total=1\n"), None);
    }

    #[test]
    fn dirty_pages_are_read_from_meminfo() {
        let meminfo =
            "MemFree:        1000 kB\nDirty:          307200 kB\nWriteback:        2048 kB\n";
        assert_eq!(super::dirty_in(meminfo), Some((300, 2)));
        assert_eq!(super::dirty_in("MemFree: 1 kB\n"), None);
    }
}
