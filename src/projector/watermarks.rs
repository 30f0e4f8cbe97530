//! High-water marks of the shard's partitions, read every 500 ms off the
//! consume loop (a broker round trip per partition must not stall it).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ProjectorError;

const EVERY: Duration = Duration::from_millis(500);

/// Updates `latest` until `cancel`; the task ends soon after.
pub fn spawn(
    runtime: &Handle,
    kafka: &ClientConfig,
    topic: &str,
    partitions: &[i32],
    latest: Arc<Mutex<BTreeMap<i32, i64>>>,
    cancel: CancellationToken,
) -> Result<JoinHandle<()>, ProjectorError> {
    let client: Arc<BaseConsumer> = Arc::new(
        kafka
            .create()
            .map_err(ProjectorError::kafka("cannot create the watermark client"))?,
    );
    let (topic, partitions) = (topic.to_string(), partitions.to_vec());
    Ok(runtime.spawn(async move {
        loop {
            let (client, topic, partitions, latest) = (
                client.clone(),
                topic.clone(),
                partitions.clone(),
                latest.clone(),
            );
            // Metadata calls block: off the async workers.
            let read = tokio::task::spawn_blocking(move || {
                for p in partitions {
                    if let Ok((_, high)) =
                        client.fetch_watermarks(&topic, p, Duration::from_secs(5))
                        && let Ok(mut map) = latest.lock()
                    {
                        map.insert(p, high);
                    }
                }
            });
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = read => {}
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
        }
    }))
}
