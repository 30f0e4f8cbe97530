//! The API server, etcd and the controller manager stopped for 20 s under a
//! running operator, gateway and projectors: reads through the gateway go
//! on (0 failed), projectors keep applying events, nothing exits or
//! restarts, and once the control plane is back the operator leads again
//! and the view's status catches up with every row.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::orders::{Orders, orders};
use crate::support::projector::reference;
use crate::support::stack::{Readers, stack};
use crate::support::{eventually, kafka, ready_with_rows};

/// How long the control plane stays down.
const OUTAGE: Duration = Duration::from_secs(20);

fn testenv(command: &str) {
    crate::support::testenv(&[command]);
}

/// The control plane is started again when this is dropped, whatever
/// happened: later tests need it.
struct ControlPlaneDown(bool);

impl ControlPlaneDown {
    fn start(&mut self) {
        if std::mem::take(&mut self.0) {
            testenv("start-control-plane");
        }
    }
}

impl Drop for ControlPlaneDown {
    fn drop(&mut self) {
        self.start();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_away_for_twenty_seconds_fails_no_read_and_stops_no_view() {
    let _alone = crate::ONE_AT_A_TIME.lock().await;
    let mut st = stack("apibounce", "kubernetes").await;
    let reader = st.reader().await;
    let topic = kafka::create_topic(st.env, "orders", 2).await;
    let all: Vec<Value> = orders(Orders {
        seed: 101,
        users: 40,
        count: 1_000,
    });
    let (before, after) = all.split_at(500);
    st.produce_by_order(&topic, before).await;
    st.create_view("load", &topic, 1, 2, false).await;
    let expected_before = reference(before);
    let revision = st.ready("load", expected_before.len() as i64).await;
    let users: Vec<String> = reference(&all).keys().cloned().collect();
    let first = format!("/v1/namespaces/{}/views/load/rows/{}", st.ns.name, users[0]);
    st.serving(&first, Some(&reader)).await;
    let known: Vec<String> = expected_before.keys().cloned().collect();
    let readers = Readers::spawn(&st, &known, &reader, 4);

    tokio::task::block_in_place(|| testenv("stop-control-plane"));
    let mut control_plane = ControlPlaneDown(true);
    let down = Instant::now();
    // Events keep flowing into the view without the API server.
    st.produce_by_order(&topic, after).await;
    let expected = reference(&all);
    let mut applied_without_api = Duration::ZERO;
    while down.elapsed() < OUTAGE {
        if applied_without_api.is_zero() && st.rows("load", &users, &reader).await == expected {
            applied_without_api = down.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if applied_without_api.is_zero() {
        let path = format!("/v1/namespaces/{}/views/load/rows/{}", st.ns.name, users[0]);
        let answer = st.gateway.get(&path, Some(&reader)).await;
        let got = st.rows("load", &users, &reader).await;
        let differ: Vec<_> = expected
            .iter()
            .filter(|(k, v)| got.get(*k) != Some(*v))
            .take(3)
            .collect();
        let set = matview::operator::desired::object_name("load", &revision, "-s0");
        let logs: String = (0..2)
            .map(|r| {
                let log = st
                    .work
                    .path()
                    .join("pods")
                    .join(format!("{set}-{r}"))
                    .join("container.log");
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                format!(
                    "{}:\n{}\n",
                    log.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect();
        let mut positions = String::new();
        for r in 0..2 {
            let pod = format!("{set}-{r}");
            if let Some(ip) = st.kubelet().address(&pod) {
                let text = reqwest::get(format!("http://{ip}:8080/v1/positions"))
                    .await
                    .ok();
                let text = match text {
                    Some(t) => t.text().await.unwrap_or_default(),
                    None => "unreachable".into(),
                };
                positions.push_str(&format!("{pod}: {text}\n"));
            }
        }
        let marks: Vec<_> = (0..2)
            .map(|p| {
                use rdkafka::consumer::{BaseConsumer, Consumer};
                let c: BaseConsumer = kafka::client_config(st.env).create().expect("consumer");
                c.fetch_watermarks(&topic, p, Duration::from_secs(5))
            })
            .collect();
        panic!(
            "{positions}topic marks {marks:?}\nthe new orders did not reach the rows served while the API server was away: \
             {:?}; differing rows {differ:?} (of {} served)\n{logs}",
            answer.map(|a| a.positions),
            got.len(),
        );
    }
    let back = Instant::now();
    tokio::task::block_in_place(|| control_plane.start());
    eventually(
        "the view's status with every row",
        Duration::from_secs(180),
        || async {
            let s = st.views.get("load").await.ok()?.status?;
            ready_with_rows(&s, expected.len() as i64).then_some(())
        },
    )
    .await;
    let caught_up = back.elapsed();

    let (total, _) = readers.stop().await;
    // The 3 s lease ran out while the API server was away: the operator
    // stepped down and led again, in the same process.
    let terms_lost = st.operator_log().matches("leadership lost").count();
    println!(
        "control plane away {OUTAGE:?}: {} reads through the gateway, {} failed; new orders \
         served {applied_without_api:?} into the outage; status caught up {caught_up:?} after \
         the restart began; leadership lost and regained {terms_lost} time(s)",
        total.reads,
        total.failures.len()
    );
    assert!(terms_lost >= 1, "{}", st.operator_log());
    total.assert_none_failed(&st.gateway_log());
    assert!(st.operator.is_running(), "{}", st.operator_log());
    assert!(st.gateway.is_running(), "{}", st.gateway_log());
    for replica in 0..2 {
        let set = matview::operator::desired::object_name("load", &revision, "-s0");
        let pod = format!("{set}-{replica}");
        assert_eq!(st.kubelet().restarts(&pod), Some(0), "{pod} restarted");
    }
    assert_eq!(st.rows("load", &users, &reader).await, expected);
}
