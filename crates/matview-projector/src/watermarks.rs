//! High-water marks of the shard's partitions, read every 500 ms off the
//! consume loop (a broker round trip per partition must not stall it). A
//! round in which no partition answers marks the source unreachable (in
//! `/readyz`, `/v1/stats` and metrics) until one answers again; so do
//! partitions that did not answer two rounds in a row while others did
//! (their leader is away and no other took over yet: their events wait).
//! Beside the rounds, every 2 s, the replicas of the shard's partitions and
//! of the dead-letter topic are read ([`super::replicas`]).

use std::collections::{BTreeMap, BTreeSet};
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
/// Replicas are read this often (beside the watermark rounds).
const REPLICAS_EVERY: Duration = Duration::from_secs(2);
/// Partitions asked at once in a round.
const AT_ONCE: usize = 8;

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
    let replicas = {
        let (client, topic, partitions, shared) = (
            client.clone(),
            topic.clone(),
            partitions.clone(),
            shared.clone(),
        );
        every(REPLICAS_EVERY, cancel.clone(), move || {
            let (client, topic, partitions, shared) = (
                client.clone(),
                topic.clone(),
                partitions.clone(),
                shared.clone(),
            );
            async move {
                let read = tokio::task::spawn_blocking(move || {
                    check_replicas(&client, &topic, &partitions, &shared)
                });
                let _ = read.await;
            }
        })
    };
    let failed_before = Arc::new(Mutex::new(BTreeSet::new()));
    let watermarks = every(EVERY, cancel, move || {
        let (client, topic, partitions, latest, shared, failed_before) = (
            client.clone(),
            topic.clone(),
            partitions.clone(),
            latest.clone(),
            shared.clone(),
            failed_before.clone(),
        );
        async move {
            let asked = partitions.len();
            let failed = read_watermarks(client, topic, partitions, &latest, &shared).await;
            if let Ok(mut before) = failed_before.lock() {
                shared.set_source_error(source_trouble(asked, &failed, &before));
                *before = failed.into_keys().collect();
            }
        }
    });
    Ok(runtime.spawn(async move {
        tokio::join!(watermarks, replicas);
    }))
}

/// Runs `round` and then waits `pause`, again and again, until `cancel`.
async fn every<F, R>(pause: Duration, cancel: CancellationToken, round: F)
where
    F: Fn() -> R,
    R: std::future::Future<Output = ()>,
{
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = round() => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// One round: each partition's watermarks, several at once (a partition
/// whose leader is away takes the whole round trip; the others must not
/// wait behind it). Notes what answered; gives what did not, with why.
async fn read_watermarks(
    client: Arc<BaseConsumer>,
    topic: String,
    partitions: Vec<i32>,
    latest: &Mutex<BTreeMap<i32, i64>>,
    shared: &Shared,
) -> BTreeMap<i32, String> {
    use futures::StreamExt;
    let answers: Vec<_> = futures::stream::iter(partitions)
        .map(move |p| {
            let (client, topic) = (client.clone(), topic.clone());
            // Metadata calls block: off the async workers (started as
            // polled, so at most AT_ONCE at a time).
            async move {
                tokio::task::spawn_blocking(move || {
                    (p, client.fetch_watermarks(&topic, p, ROUND_TRIP))
                })
                .await
            }
        })
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    let mut failed = BTreeMap::new();
    for answer in answers {
        match answer {
            Ok((p, Ok((low, high)))) => {
                shared.note_low_watermark(p, low);
                if let Ok(mut map) = latest.lock() {
                    map.insert(p, high);
                }
            }
            Ok((p, Err(e))) => {
                failed.insert(p, e.to_string());
            }
            // The blocking task itself failed (runtime shutting down): no answer to note.
            Err(_) => {}
        }
    }
    failed
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

/// Pure: the source's trouble after a round of `asked` partitions in which
/// `failed` did not answer (with why), `failed_before` the round before.
/// All failing is said at once; some failing only when they failed twice
/// in a row, so a leader moving cleanly between rounds is not reported.
pub fn source_trouble(
    asked: usize,
    failed: &BTreeMap<i32, String>,
    failed_before: &BTreeSet<i32>,
) -> Option<String> {
    let (_, why) = failed.first_key_value()?;
    if failed.len() >= asked {
        return Some(why.clone());
    }
    let again: Vec<String> = failed
        .keys()
        .filter(|p| failed_before.contains(p))
        .map(i32::to_string)
        .collect();
    match again.as_slice() {
        [] => None,
        [one] => Some(format!(
            "partition {one} did not answer twice in a row ({why}); its events wait for its leader or a new one"
        )),
        many => Some(format!(
            "partitions {} did not answer twice in a row ({why}); their events wait for their leaders or new ones",
            many.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_reported_when_all_fail_or_some_fail_twice() {
        let failed = |ps: &[i32]| -> BTreeMap<i32, String> {
            ps.iter()
                .map(|p| (*p, "Local: Timed out".to_string()))
                .collect()
        };
        let before = |ps: &[i32]| -> BTreeSet<i32> { ps.iter().copied().collect() };
        assert_eq!(source_trouble(2, &failed(&[]), &before(&[0])), None);
        assert_eq!(
            source_trouble(2, &failed(&[0, 1]), &before(&[])).as_deref(),
            Some("Local: Timed out")
        );
        assert_eq!(source_trouble(2, &failed(&[0]), &before(&[])), None);
        assert!(
            source_trouble(2, &failed(&[1]), &before(&[1]))
                .is_some_and(|s| s.starts_with("partition 1 did not answer"))
        );
        assert_eq!(source_trouble(3, &failed(&[0, 2]), &before(&[1])), None);
        assert_eq!(
            source_trouble(3, &failed(&[0, 2]), &before(&[0, 2])).as_deref(),
            Some(
                "partitions 0, 2 did not answer twice in a row (Local: Timed out); their events wait for their leaders or new ones"
            )
        );
    }
}
