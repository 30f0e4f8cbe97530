//! Readers never see a row go back in time: while orders stream in and the
//! projector is killed with SIGKILL again and again, every read of a row
//! holds at least the records of any earlier read of it, and the positions
//! an answer reports never go back. (A change becomes visible only once its
//! batch is durable, so a restart resumes from at least what was shown.)

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::support::orders::{Orders, order_events, orders};
use crate::support::projector::{Projector, produce, reference, row_totals, shop_view_yaml};
use crate::support::{TestEnv, kafka, unique_name};

/// What the readers saw: reads answered, and every step back found.
#[derive(Default)]
struct Seen {
    reads: usize,
    backwards: Vec<String>,
}

/// Reads `keys` round-robin until `stop`, checking each answer against the
/// most each key (records) and each partition (position) showed before.
async fn read_until(base: String, keys: Vec<String>, stop: Arc<AtomicBool>) -> Seen {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let mut seen = Seen::default();
    let mut most_records: BTreeMap<String, u64> = BTreeMap::new();
    let mut most_position: BTreeMap<i32, i64> = BTreeMap::new();
    for key in keys.iter().cycle() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        // Refused while the projector restarts: not an answer, so no step.
        let Ok(response) = http.get(format!("{base}/v1/rows/{key}")).send().await else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let positions = response
            .headers()
            .get("matview-positions")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let records = match response.status().as_u16() {
            200 => match response.json::<Value>().await {
                Ok(row) => row_totals(&row).values().map(|(count, _)| count).sum(),
                Err(_) => continue,
            },
            404 => 0,
            _ => continue,
        };
        seen.reads += 1;
        let most = most_records.entry(key.clone()).or_default();
        if records < *most {
            seen.backwards
                .push(format!("{key}: {records} records after {most}"));
        }
        *most = (*most).max(records);
        for pair in positions.split(',').filter(|p| !p.is_empty()) {
            let Some((p, o)) = pair.split_once(':') else {
                continue;
            };
            let (Ok(p), Ok(o)) = (p.parse::<i32>(), o.parse::<i64>()) else {
                continue;
            };
            let at = most_position.entry(p).or_insert(o);
            if o < *at {
                seen.backwards
                    .push(format!("partition {p}: position {o} after {at}"));
            }
            *at = (*at).max(o);
        }
    }
    seen
}

#[tokio::test]
async fn readers_never_see_a_row_go_back_across_kill_9() {
    let env = TestEnv::with_kafka();
    let topic = kafka::create_topic(env, "orders", 3).await;
    let dead_letter = kafka::create_topic(env, "orders-dlq", 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let view_file = dir.path().join("view.yaml");
    let yaml = shop_view_yaml(env, &unique_name("shop"), &topic, &dead_letter, 1);
    std::fs::write(&view_file, yaml).expect("write view");
    let values = orders(Orders {
        seed: 11,
        users: 10,
        count: 2000,
    });
    let events = order_events(&values);
    let expected = reference(&values);
    let mut projector = Projector::start(&view_file, 0, &dir.path().join("data"), dir.path());
    let producing = {
        let (topic, events) = (topic.clone(), events.clone());
        tokio::spawn(async move {
            for chunk in events.chunks(40) {
                produce(TestEnv::get(), &topic, chunk).await;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let keys: Vec<String> = expected.keys().cloned().collect();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            tokio::spawn(read_until(
                projector.base.clone(),
                keys.clone(),
                stop.clone(),
            ))
        })
        .collect();
    // Kill times from a seeded sequence: reproducible, spread over the run.
    let mut state: u64 = 0xbac4;
    for _ in 0..8 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        tokio::time::sleep(Duration::from_millis(200 + state % 400)).await;
        projector.crash_and_restart();
    }
    producing.await.expect("producer task");
    projector
        .wait_applied(events.len() as i64, Duration::from_secs(90))
        .await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Seen::default();
    for reader in readers {
        let one = reader.await.expect("reader task");
        seen.reads += one.reads;
        seen.backwards.extend(one.backwards);
    }
    assert!(seen.reads >= 100, "only {} reads were answered", seen.reads);
    assert!(
        seen.backwards.is_empty(),
        "reads went back in time:\n{}\n{}",
        seen.backwards.join("\n"),
        projector.logs()
    );
    assert_eq!(projector.rows(expected.keys()).await, expected);
}
