//! High-water marks of the shard's partitions, read every 500 ms off the
//! consume loop (a broker round trip per partition must not stall it). A
//! round in which no partition answers marks the source unreachable (in
//! `/readyz`, `/v1/stats` and metrics) until one answers again. Every
//! fourth round also reads the replicas of the shard's partitions and of
//! the dead-letter topic ([`super::replicas`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{ProjectorError, Shared};

const EVERY: Duration = Duration::from_millis(500);
/// A broker that does not answer within this long counts as unreachable.
const ROUND_TRIP: Duration = Duration::from_secs(2);
/// Replicas are read every this many rounds (2 s).
const REPLICAS_EVERY: u32 = 4;

/// Updates `latest` until `cancel`; the task ends soon after.
pub fn spawn(
    runtime: &Handle,
    kafka: &ClientConfig,
    topic: &str,
    partitions: &[i32],
    latest: Arc<Mutex<BTreeMap<i32, i64>>>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, ProjectorError> {
    let client: Arc<BaseConsumer> = Arc::new(
        kafka
            .create()
            .map_err(ProjectorError::kafka("cannot create the watermark client"))?,
    );
    let (topic, partitions) = (topic.to_string(), partitions.to_vec());
    Ok(runtime.spawn(async move {
        for round in 0u32.. {
            if round % REPLICAS_EVERY == 0 {
                let (client, topic, partitions, noted) = (
                    client.clone(),
                    topic.clone(),
                    partitions.clone(),
                    shared.clone(),
                );
                let read = tokio::task::spawn_blocking(move || {
                    check_replicas(&client, &topic, &partitions, &noted)
                });
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = read => {}
                }
            }
            let (client, topic, partitions, latest, noted) = (
                client.clone(),
                topic.clone(),
                partitions.clone(),
                latest.clone(),
                shared.clone(),
            );
            // Metadata calls block: off the async workers.
            let read = tokio::task::spawn_blocking(move || {
                let mut failure = None;
                let mut answered = false;
                for p in partitions {
                    match client.fetch_watermarks(&topic, p, ROUND_TRIP) {
                        Ok((low, high)) => {
                            answered = true;
                            noted.note_low_watermark(p, low);
                            if let Ok(mut map) = latest.lock() {
                                map.insert(p, high);
                            }
                        }
                        Err(e) => failure = Some(e.to_string()),
                    }
                }
                if answered { None } else { failure }
            });
            tokio::select! {
                _ = cancel.cancelled() => return,
                round = read => {
                    if let Ok(failure) = round {
                        shared.set_source_error(failure);
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
        }
    }))
}

/// Blocking: notes which partitions of the shard's and of the dead-letter
/// topic have replicas out of sync; leaves the last note while the
/// metadata does not answer (the watermark rounds say the broker is away).
fn check_replicas(client: &BaseConsumer, topic: &str, partitions: &[i32], shared: &Shared) {
    use super::replicas::{out_of_sync, read};
    let dead_letter_topic = &shared.view.dead_letter_topic;
    let (Some(source), Some(letters)) = (
        read(client, topic, Some(partitions), ROUND_TRIP),
        read(client, dead_letter_topic, None, ROUND_TRIP),
    ) else {
        return;
    };
    let said: Vec<String> = [
        out_of_sync("source topic", topic, &source),
        out_of_sync("dead-letter topic", dead_letter_topic, &letters),
    ]
    .into_iter()
    .flatten()
    .collect();
    shared.set_under_replicated((!said.is_empty()).then(|| said.join("; ")));
}
