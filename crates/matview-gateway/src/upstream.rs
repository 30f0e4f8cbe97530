//! Following one shard's changes: a watch on one replica, resumed on another
//! from the last positions seen when it breaks. Positions are Kafka offsets,
//! which every replica of a shard shares, so nothing is skipped.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;

use super::GatewayState;
use matview_api::projector::{WatchEvent, format_positions, parse_positions};

/// First pause before following a shard on another replica, and the longest.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// What a shard's follower reports.
#[derive(Debug)]
pub enum ShardChange {
    /// Rows changed on this shard; `positions` are the shard's after them.
    Rows {
        event: WatchEvent,
        positions: BTreeMap<i32, i64>,
    },
    /// The replica could not resume from our positions: the reader must reload.
    Reset { positions: BTreeMap<i32, i64> },
    /// A replica's stream is open: every change after `positions` follows.
    Connected { positions: BTreeMap<i32, i64> },
    /// The replica broke off; changes wait until another one is followed.
    Broke,
}

/// Bytes an upstream may send without completing an event: a replica that
/// never ends one is dropped and followed elsewhere, not buffered forever.
pub const MAX_PENDING_BYTES: usize = 64 << 20;

/// Why a replica's event stream broke off.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("reading the stream failed")]
    Read(#[source] reqwest::Error),
    #[error("over {MAX_PENDING_BYTES} bytes without a complete event")]
    TooLong,
    #[error("not a server-sent event stream: {0}")]
    Parse(String),
}

/// Server-sent events of a byte stream, parsed by `eventsource-stream`
/// (UTF-8 split across chunks, `\r\n`, `id:`, comments), ending with
/// [`UpstreamError::TooLong`] once more than `limit` bytes arrive without
/// completing an event.
pub fn sse_events<S, B>(
    bytes: S,
    limit: usize,
) -> impl futures::Stream<Item = Result<eventsource_stream::Event, UpstreamError>>
where
    S: futures::Stream<Item = Result<B, reqwest::Error>>,
    B: AsRef<[u8]>,
{
    use eventsource_stream::{EventStreamError, Eventsource};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let pending = Arc::new(AtomicUsize::new(0));
    let counted = {
        let pending = pending.clone();
        bytes.map(move |chunk| {
            let chunk = chunk.map_err(UpstreamError::Read)?;
            let len = chunk.as_ref().len();
            if pending.fetch_add(len, Ordering::Relaxed) + len > limit {
                return Err(UpstreamError::TooLong);
            }
            Ok(chunk)
        })
    };
    counted.eventsource().map(move |event| {
        pending.store(0, Ordering::Relaxed);
        event.map_err(|e| match e {
            EventStreamError::Transport(e) => e,
            EventStreamError::Utf8(e) => UpstreamError::Parse(e.to_string()),
            EventStreamError::Parser(e) => UpstreamError::Parse(e.to_string()),
        })
    })
}

/// Pauses between attempts to follow a shard: from 100 ms doubling to 5 s,
/// with jitter, so gateways do not knock on a refusing replica in step.
fn reconnect_pauses() -> impl Iterator<Item = Duration> {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(RECONNECT_PAUSE)
        .with_max_delay(MAX_PAUSE)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Follows `shard` of the view's `revision` until `out` is closed. `from`:
/// the shard's positions to resume after (empty: from the replica's now).
pub async fn follow_shard(
    st: Arc<GatewayState>,
    ns: String,
    name: String,
    revision: String,
    shard: u32,
    mut from: BTreeMap<i32, i64>,
    out: mpsc::Sender<(u32, ShardChange)>,
) {
    let mut attempt = 0usize;
    let mut pauses = reconnect_pauses();
    while !out.is_closed() {
        let pause = pauses.next().unwrap_or(MAX_PAUSE);
        let replicas = st
            .directory
            .route(&ns, &name)
            .filter(|r| r.revision == revision)
            .and_then(|r| r.shards.get(shard as usize).cloned())
            .unwrap_or_default();
        if replicas.is_empty() {
            tokio::time::sleep(pause).await;
            continue;
        }
        let url = replicas[attempt % replicas.len()].url.clone();
        attempt += 1;
        if from.is_empty() {
            // Start from this replica's positions, then ask for what follows:
            // changes applied in between are replayed, not lost.
            match st.projectors.positions(&url).await {
                Ok(p) => {
                    from = p
                        .partitions
                        .iter()
                        .map(|p| (p.partition, p.applied))
                        .collect()
                }
                Err(_) => {
                    st.metrics.failover();
                    tokio::time::sleep(pause).await;
                    continue;
                }
            }
        }
        match follow_replica(&st, &url, shard, &mut from, &out).await {
            Followed::Done => return,
            // It served: the next break starts the pauses over.
            Followed::Broke { served: true } => {
                st.metrics.failover();
                pauses = reconnect_pauses();
            }
            Followed::Broke { served: false } => st.metrics.failover(),
        }
        tokio::time::sleep(pause).await;
    }
}

/// Follows every shard of `route`'s revision into `out`, each from the
/// positions `from` gives it; the followers' tasks, to abort.
pub fn follow_shards(
    st: &Arc<GatewayState>,
    route: &super::routing::ViewRoute,
    from: impl Fn(u32) -> BTreeMap<i32, i64>,
    out: &mpsc::Sender<(u32, ShardChange)>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..route.shards.len() as u32)
        .map(|shard| {
            tokio::spawn(follow_shard(
                st.clone(),
                route.namespace.clone(),
                route.name.clone(),
                route.revision.clone(),
                shard,
                from(shard),
                out.clone(),
            ))
        })
        .collect()
}

/// How following one replica ended.
enum Followed {
    /// The reader went away.
    Done,
    /// The replica broke off (refused, went away or sent garbage); `served`:
    /// it sent events first.
    Broke { served: bool },
}

/// Reads one replica's watch until it ends; `from` moves with every event.
async fn follow_replica(
    st: &GatewayState,
    url: &str,
    shard: u32,
    from: &mut BTreeMap<i32, i64>,
    out: &mpsc::Sender<(u32, ShardChange)>,
) -> Followed {
    let watch = format!("{url}/v1/watch?from={}", format_positions(from.iter()));
    let refused = Followed::Broke { served: false };
    let Ok(response) = st.stream_http.get(&watch).send().await else {
        return refused;
    };
    if !response.status().is_success() {
        return refused;
    }
    let connected = ShardChange::Connected {
        positions: from.clone(),
    };
    if out.send((shard, connected)).await.is_err() {
        return Followed::Done;
    }
    let followed = read_events(response, shard, from, out).await;
    if matches!(followed, Followed::Broke { .. }) {
        let _ = out.send((shard, ShardChange::Broke)).await;
    }
    followed
}

/// Forwards one open stream's events until it ends.
async fn read_events(
    response: reqwest::Response,
    shard: u32,
    from: &mut BTreeMap<i32, i64>,
    out: &mpsc::Sender<(u32, ShardChange)>,
) -> Followed {
    let mut served = false;
    let mut events = std::pin::pin!(sse_events(response.bytes_stream(), MAX_PENDING_BYTES));
    while let Some(event) = events.next().await {
        let Ok(frame) = event else {
            return Followed::Broke { served };
        };
        let Ok(event) = serde_json::from_str::<WatchEvent>(&frame.data) else {
            continue;
        };
        served = true;
        let positions: BTreeMap<i32, i64> = parse_positions(&event.positions)
            .unwrap_or_default()
            .into_iter()
            .collect();
        for (p, o) in &positions {
            let at = from.entry(*p).or_insert(*o);
            *at = (*at).max(*o);
        }
        let change = match frame.event.as_str() {
            "reset" => ShardChange::Reset { positions },
            "rows" => ShardChange::Rows { event, positions },
            _ => continue,
        };
        if out.send((shard, change)).await.is_err() {
            return Followed::Done;
        }
    }
    Followed::Broke { served }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = Vec<Result<(String, String, String), String>>;

    /// Every event of `text` split into two chunks at `at`.
    fn parsed(text: &[u8], at: usize, limit: usize) -> Parsed {
        parsed_chunks(vec![text[..at].to_vec(), text[at..].to_vec()], limit)
    }

    /// Every event of these chunks (the limit counts whole chunks).
    fn parsed_chunks(chunks: Vec<Vec<u8>>, limit: usize) -> Parsed {
        let chunks: Vec<Result<Vec<u8>, reqwest::Error>> = chunks.into_iter().map(Ok).collect();
        let events = sse_events(futures::stream::iter(chunks), limit);
        futures::executor::block_on(events.collect::<Vec<_>>())
            .into_iter()
            .map(|e| {
                e.map(|e| (e.event, e.id, e.data))
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    #[test]
    fn events_read_the_same_however_the_bytes_are_split() {
        // Multi-byte characters (2, 3 and 4 bytes), CRLF lines, an id, a
        // comment and a data field over two lines.
        let text = "event: rows\r\nid: 0:17\r\ndata: {\"key\":\"Zürich €\"}\r\n\r\n: keep-alive\n\nevent: reset\ndata: 😀\ndata: x\n\n";
        let want = vec![
            Ok((
                "rows".to_string(),
                "0:17".to_string(),
                "{\"key\":\"Zürich €\"}".to_string(),
            )),
            Ok(("reset".to_string(), "0:17".to_string(), "😀\nx".to_string())),
        ];
        let bytes = text.as_bytes();
        for at in 0..=bytes.len() {
            assert_eq!(
                parsed(bytes, at, MAX_PENDING_BYTES),
                want,
                "split at byte {at}"
            );
        }
    }

    #[test]
    fn a_stream_that_never_completes_an_event_is_cut_off() {
        let endless = format!("data: {}", "x".repeat(1000));
        let got = parsed(endless.as_bytes(), 500, 800);
        assert_eq!(got, vec![Err(UpstreamError::TooLong.to_string())]);
        // Completed events reset the count: many small ones pass.
        let many = vec![b"data: 1\n\n".to_vec(); 200];
        let got = parsed_chunks(many, 100);
        assert_eq!((got.len(), got.iter().all(Result::is_ok)), (200, true));
    }

    #[test]
    fn reconnect_pauses_grow_with_jitter_up_to_the_cap() {
        let pauses: Vec<Duration> = reconnect_pauses().take(12).collect();
        assert!(
            pauses[0] >= RECONNECT_PAUSE && pauses[0] < RECONNECT_PAUSE * 2,
            "{pauses:?}"
        );
        assert!(pauses.iter().all(|p| *p <= MAX_PAUSE * 2), "{pauses:?}");
        assert!(pauses[11] >= MAX_PAUSE, "reaches the cap: {pauses:?}");
    }
}
