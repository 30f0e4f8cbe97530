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

/// Pause before following a shard on another replica.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

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
}

/// One server-sent event, as read off the wire.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SseFrame {
    pub event: String,
    pub data: String,
}

/// Pure: splits complete frames off `buffer` (which keeps any partial frame).
pub fn take_frames(buffer: &mut String) -> Vec<SseFrame> {
    let mut frames = Vec::new();
    while let Some(end) = buffer.find("\n\n") {
        let block: String = buffer.drain(..end + 2).collect();
        let mut frame = SseFrame::default();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                frame.event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                if !frame.data.is_empty() {
                    frame.data.push('\n');
                }
                frame.data.push_str(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if !frame.event.is_empty() || !frame.data.is_empty() {
            frames.push(frame);
        }
    }
    frames
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
    while !out.is_closed() {
        let replicas = st
            .directory
            .route(&ns, &name)
            .filter(|r| r.revision == revision)
            .and_then(|r| r.shards.get(shard as usize).cloned())
            .unwrap_or_default();
        if replicas.is_empty() {
            tokio::time::sleep(RECONNECT_PAUSE).await;
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
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            }
        }
        if let Err(()) = follow_replica(&st, &url, shard, &mut from, &out).await {
            st.metrics.failover();
        }
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
}

/// Reads one replica's watch until it ends; `from` moves with every event.
async fn follow_replica(
    st: &GatewayState,
    url: &str,
    shard: u32,
    from: &mut BTreeMap<i32, i64>,
    out: &mpsc::Sender<(u32, ShardChange)>,
) -> Result<(), ()> {
    let watch = format!("{url}/v1/watch?from={}", format_positions(from.iter()));
    let response = st.stream_http.get(&watch).send().await.map_err(|_| ())?;
    if !response.status().is_success() {
        return Err(());
    }
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| ())?;
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        for frame in take_frames(&mut buffer) {
            let Ok(event) = serde_json::from_str::<WatchEvent>(&frame.data) else {
                continue;
            };
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
                return Ok(());
            }
        }
    }
    Err(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_at_blank_lines_and_partial_ones_wait() {
        let mut buffer =
            "event: rows\nid: 3\ndata: {\"a\":1}\n\n: keep-alive\n\nevent: reset\ndata: x"
                .to_string();
        let frames = take_frames(&mut buffer);
        assert_eq!(
            frames,
            [SseFrame {
                event: "rows".into(),
                data: "{\"a\":1}".into()
            }]
        );
        assert_eq!(buffer, "event: reset\ndata: x");
        buffer.push_str("\n\n");
        assert_eq!(take_frames(&mut buffer)[0].event, "reset");
    }
}
