//! The broker killed mid-stream (kill -9), kept down 20 s, started again: the
//! projector keeps serving every read from its store, says the broker is
//! unreachable in `/readyz`, `/v1/stats` and metrics, resumes by itself, and
//! the view ends exactly as computed from the orders.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use matview::workload::OrderGenerator;
use serde_json::Value;

use crate::support::own_broker::OwnBroker;
use crate::support::projector::{Projector, metric, produce_orders_at, reference, shop_view_yaml};
use crate::support::{TestEnv, kafka, unique_name};

/// How long the broker stays down.
const OUTAGE: Duration = Duration::from_secs(20);

/// Reads every user's row, over and over, until `stop`: (reads, failures).
fn spawn_reader(
    base: String,
    users: Vec<String>,
    stop: Arc<AtomicBool>,
) -> (
    Arc<AtomicU64>,
    Arc<AtomicU64>,
    tokio::task::JoinHandle<Vec<String>>,
) {
    let (reads, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (r, f) = (reads.clone(), failures.clone());
    let task = tokio::spawn(async move {
        let started = Instant::now();
        let client = reqwest::Client::new();
        let mut failed = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            for user in &users {
                let sent = started.elapsed();
                let answer = client
                    .get(format!("{base}/v1/rows/{user}"))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                r.fetch_add(1, Ordering::Relaxed);
                match answer {
                    Ok(a) if a.status() == 200 => {}
                    other => {
                        f.fetch_add(1, Ordering::Relaxed);
                        failed.push(format!(
                            "{user}, sent {sent:?} after the reader started: {other:?}"
                        ));
                    }
                }
            }
        }
        failed
    });
    (reads, failures, task)
}

// Two workers: starting and killing the broker block one, readers go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_for_twenty_seconds_costs_no_read_and_no_event() {
    let env = TestEnv::get();
    let broker = tokio::task::block_in_place(|| OwnBroker::start("bounce"));
    let servers = broker.bootstrap.clone();
    let topic = kafka::create_topic_at(&servers, "orders", 2).await;
    let dead_letter = kafka::create_topic_at(&servers, "orders-dlq", 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let view_file = dir.path().join("view.yaml");
    let yaml = shop_view_yaml(env, &unique_name("bounce"), &topic, &dead_letter, 1)
        .replace(&env.kafka_bootstrap, &servers);
    std::fs::write(&view_file, yaml).expect("write view");
    let mut generator = OrderGenerator::new(61, 40);
    let orders: Vec<Value> = (0..3_000).map(|_| generator.next_order()).collect();
    let projector = Projector::start(&view_file, 0, &dir.path().join("data"), dir.path());
    // Orders stream in throughout; the kill falls in the middle of it (the
    // producer's sends wait for the broker to come back).
    let producing = {
        let (servers, topic, orders) = (servers.clone(), topic.clone(), orders.clone());
        tokio::spawn(async move {
            for chunk in orders.chunks(100) {
                produce_orders_at(&servers, &topic, chunk).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    projector.wait_applied(1_000, Duration::from_secs(90)).await;
    let served_before = reference(&orders[..1_000]);

    let stop = Arc::new(AtomicBool::new(false));
    let users: Vec<String> = served_before.keys().cloned().collect();
    let (reads, failures, reader) = spawn_reader(projector.base.clone(), users, stop.clone());

    let killed = Instant::now();
    tokio::task::block_in_place(|| broker.kill9());
    let noticed = projector
        .wait_readyz("the broker outage", Duration::from_secs(90), |body| {
            body["source"]["reachable"] == false && body["source"]["error"].is_string()
        })
        .await;
    let (_, stats) = projector.get("/v1/stats").await.expect("stats");
    assert!(stats["sourceError"].is_string(), "{stats}");
    let text = projector.metrics().await;
    assert_eq!(metric(&text, "matview_source_reachable"), 0.0);
    let reads_during = reads.load(Ordering::Relaxed);
    // The fault itself: the broker stays down this long whatever happens.
    tokio::time::sleep(OUTAGE.saturating_sub(killed.elapsed())).await;
    let reads_during = reads.load(Ordering::Relaxed) - reads_during;

    tokio::task::block_in_place(|| broker.start_again());
    let restarted = Instant::now();
    let recovered = projector
        .wait_readyz("the broker back", Duration::from_secs(90), |body| {
            body.get("source").is_none()
        })
        .await;
    producing.await.expect("producer");
    projector
        .wait_applied(orders.len() as i64, Duration::from_secs(120))
        .await;
    let applied_after = restarted.elapsed();

    stop.store(true, Ordering::Relaxed);
    let failed = reader.await.expect("reader");
    let expected = reference(&orders);
    assert_eq!(projector.rows(expected.keys()).await, expected);
    assert_eq!(
        metric(&projector.metrics().await, "matview_source_reachable"),
        1.0
    );
    println!(
        "broker bounce: outage noticed after {noticed:?}, {reads_during} reads while down, \
         {} reads in all, {} failed; readyz clear {recovered:?} after the restart; \
         all {} orders applied {applied_after:?} after it",
        reads.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
        orders.len()
    );
    assert!(
        reads_during > 0,
        "reads continued while the broker was down"
    );
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "failed reads: {failed:?}"
    );
}

/// The same fault under the whole system: the operator, the process kubelet
/// and the gateway. Readers through the gateway lose nothing; the view's
/// status says the source is unavailable while the broker is down (kept down
/// at least 20 s, and until the status said so), then Ready again with
/// every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_gateway_a_broker_outage_fails_no_read_and_shows_in_status() {
    use crate::support::orders::{Orders, orders};
    use crate::support::stack::{Readers, stack};
    use matview::crd::{ConditionStatus, ConditionType, Phase};

    let broker = tokio::task::block_in_place(|| OwnBroker::start("gwbounce"));
    let servers = broker.bootstrap.clone();
    let st = stack("gwbounce", "kubernetes").await;
    let reader = st.reader().await;
    let topic = kafka::create_topic_at(&servers, "orders", 2).await;
    let all = orders(Orders {
        seed: 91,
        users: 30,
        count: 1_000,
    });
    let (before, after) = all.split_at(500);
    produce_orders_at(&servers, &topic, before).await;
    st.create_view_on(&servers, "load", &topic, 1, 1, false)
        .await;
    let expected_before = reference(before);
    st.ready("load", expected_before.len() as i64).await;
    let users: Vec<String> = expected_before.keys().cloned().collect();
    let first = format!("/v1/namespaces/{}/views/load/rows/{}", st.ns.name, users[0]);
    st.serving(&first, Some(&reader)).await;
    let readers = Readers::spawn(&st, &users, &reader, 4);

    let killed = Instant::now();
    tokio::task::block_in_place(|| broker.kill9());
    let status = loop {
        let s = st.views.get("load").await.ok().and_then(|v| v.status);
        let source_down = s.as_ref().is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.type_ == ConditionType::SourceReady && c.status == ConditionStatus::False
            })
        });
        if let (true, Some(s)) = (source_down, s.clone()) {
            break s;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(120),
            "no SourceReady=False in status within 120 s: {s:?}\noperator log:\n{}",
            st.operator_log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let reported = killed.elapsed();
    assert_eq!(status.phase, Some(Phase::Degraded), "{status:?}");
    tokio::time::sleep(OUTAGE.saturating_sub(killed.elapsed())).await;
    let down_for = killed.elapsed();
    tokio::task::block_in_place(|| broker.start_again());
    produce_orders_at(&servers, &topic, after).await;
    let expected = reference(&all);
    let back = Instant::now();
    st.ready("load", expected.len() as i64).await;
    st.serves("load", &expected, &reader).await;
    let recovered = back.elapsed();

    let (total, _) = readers.stop().await;
    println!(
        "broker bounce through the gateway: status said so after {reported:?}, down {down_for:?}, \
         {} reads, {} failed, Ready with every row {recovered:?} after the restart",
        total.reads,
        total.failures.len()
    );
    total.assert_none_failed(&st.gateway_log());
    assert_eq!(st.rows("load", expected.keys(), &reader).await, expected);
}
