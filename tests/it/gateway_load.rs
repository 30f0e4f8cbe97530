//! The gateway under load: replicas killed and rules changed while readers
//! hammer it and a stream client mirrors the view; no read may fail.

use std::collections::BTreeMap;
use std::time::Duration;

use matview::crd::Phase;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

use crate::support::orders::{Orders, orders};
use crate::support::projector::{Reference, reference, reference_with, row_totals};
use crate::support::stack::{Readers, Stack, stack};
use crate::support::{TestEnv, eventually, kafka};

#[tokio::test]
async fn killing_replicas_and_changing_rules_under_load_fails_no_read() {
    let st = stack("gwload", "kubernetes").await;
    let reader = st.reader().await;
    let topic = kafka::create_topic(st.env, "orders", 4).await;
    // One generator: the live orders continue the ids of the first 400.
    let all_orders = orders(Orders {
        seed: 31,
        users: 50,
        count: 1000,
    });
    let (placed, live) = all_orders.split_at(400);
    st.produce_by_order(&topic, placed).await;
    st.create_view("load", &topic, 2, 2, false).await;
    let expected = reference(placed);
    let rev1 = st.ready("load", expected.len() as i64).await;
    let users: Vec<String> = expected.keys().cloned().collect();
    let first = format!("/v1/namespaces/{}/views/load/rows/{}", st.ns.name, users[0]);
    st.serving(&first, Some(&reader)).await;

    // A stream client mirrors the whole view: snapshot, then changes from
    // the snapshot's positions.
    let (snapshot, positions) = load_view(&st, "load", &reader).await;
    let stream = st
        .gateway
        .open_stream(
            &format!("/v1/namespaces/{}/views/load/watch", st.ns.name),
            Some(&reader),
            Some(&positions),
        )
        .await;
    let mirror = tokio::spawn(mirror_view(
        st.gateway.url.clone(),
        st.ns.name.clone(),
        reader.clone(),
        snapshot,
        stream,
    ));

    let readers = Readers::spawn(&st, &users, &reader, 16);
    let producing = tokio::spawn(produce_slowly(st.env, topic.clone(), live.to_vec()));
    let started = std::time::Instant::now();

    // Kill one replica of each shard while the readers run, and read on
    // until both are back: restarted and ready again.
    readers.read_more(500, "the readers' first reads").await;
    let killed: Vec<String> = (0..2)
        .map(|shard| {
            let set = matview::operator::desired::object_name("load", &rev1, &format!("-s{shard}"));
            format!("{set}-0")
        })
        .collect();
    for pod in &killed {
        assert!(st.kubelet().kill(pod), "no process for {pod}");
    }
    for pod in &killed {
        st.wait_pod_back(pod).await;
    }
    readers
        .read_more(500, "reads after the replicas came back")
        .await;
    let kill_phase = started.elapsed();

    // Change the rules while they still run: cheap now means below 10.
    let patch = json!({"spec": {"classify": {"field": "price", "rules": [
        {"group": "cheap", "lt": 10}, {"group": "affordable", "gte": 10, "lte": 50},
        {"group": "expensive", "gt": 50}]}}});
    st.views
        .patch(
            "load",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("rules changed");
    let rev2 = matview::engine::revision(&st.views.get("load").await.expect("view").spec);
    eventually(
        "the switch to the new revision",
        Duration::from_secs(180),
        || {
            let views = st.views.clone();
            let rev2 = rev2.clone();
            async move {
                let s = views.get("load").await.ok()?.status?;
                (s.active_revision == Some(rev2) && s.phase == Some(Phase::Ready)).then_some(())
            }
        },
    )
    .await;
    producing.await.expect("producer task");
    // Reads after the switch: they carry the new revision.
    readers.read_more(500, "reads after the switch").await;
    let (total, sequences) = readers.stop().await;
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "gateway under load: {} reads in {elapsed:.1} s ({:.0}/s; kill phase {:?}), {} failed",
        total.reads,
        total.reads as f64 / elapsed,
        kill_phase,
        total.failures.len()
    );
    total.assert_none_failed(&st.gateway_log());
    for seq in &sequences {
        assert!(
            *seq == [rev1.clone(), rev2.clone()]
                || *seq == [rev2.clone()]
                || *seq == [rev1.clone()],
            "answers switch from {rev1} to {rev2} once and never back: {seq:?}"
        );
    }
    assert!(
        sequences.iter().any(|s| s.last() == Some(&rev2)),
        "readers saw the new revision"
    );

    // The stream stayed connected and mirrors exactly the final view.
    let expected_final = reference_with(&all_orders, 10.0);
    // Generous: on a loaded machine the stream settles late, but it must settle.
    let mirror = tokio::time::timeout(Duration::from_secs(240), mirror)
        .await
        .expect("the mirror reaches the final view")
        .expect("mirror task");
    assert_eq!(mirror.disconnects, 0, "the stream stayed connected");
    assert!(mirror.events > 0, "changes were streamed");
    assert_eq!(mirror.revisions.first(), Some(&rev1));
    assert_eq!(mirror.revisions.last(), Some(&rev2));
    let mirrored: Reference = mirror
        .rows
        .iter()
        .map(|(k, row)| (k.clone(), row_totals(row)))
        .filter(|(_, g)| !g.is_empty())
        .collect();
    assert_eq!(mirrored, expected_final);
    eprintln!(
        "stream: {} events, {} resets, revisions {:?}",
        mirror.events, mirror.resets, mirror.revisions
    );

    // The new revision's rows follow the new rules.
    for user in users.iter().take(10) {
        let cheap: u64 = all_orders
            .iter()
            .filter(|o| o["userId"] == json!(user))
            .flat_map(|o| o["items"].as_array().cloned().unwrap_or_default())
            .filter(|i| i["price"].as_f64().unwrap_or(0.0) < 10.0)
            .count() as u64;
        let path = format!("/v1/namespaces/{}/views/load/rows/{user}", st.ns.name);
        let answer = st.gateway.get(&path, Some(&reader)).await.expect("answers");
        assert_eq!(answer.revision.as_deref(), Some(rev2.as_str()));
        assert_eq!(
            answer.body["groups"]["cheap"]["count"],
            json!(cheap),
            "{user}"
        );
    }
}

/// Produces (up to 600 of) `orders` at about 20 per second, keyed by order.
async fn produce_slowly(env: &'static TestEnv, topic: String, mut orders: Vec<Value>) {
    orders.truncate(600);
    produce_paced(env, topic, orders, Duration::from_millis(50)).await;
}

/// Every row of a view, by scanning each group; and the positions of the
/// first answer (to resume a stream from).
async fn load_view(st: &Stack, view: &str, token: &str) -> (BTreeMap<String, Value>, String) {
    let loaded = load_view_at(&st.gateway.url, &st.ns.name, view, token).await;
    (loaded.rows, loaded.positions)
}

async fn load_view_at(url: &str, ns: &str, view: &str, token: &str) -> LoadedView {
    let http = reqwest::Client::new();
    let mut rows = BTreeMap::new();
    let mut positions = None;
    let mut revision = None;
    for group in ["cheap", "affordable", "expensive"] {
        let mut cursor: Option<String> = None;
        loop {
            let mut path =
                format!("{url}/v1/namespaces/{ns}/views/{view}/groups/{group}/rows?limit=500");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let response = http
                .get(&path)
                .bearer_auth(token)
                .send()
                .await
                .expect("scan");
            if response.status().as_u16() != 200 {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                panic!("{path}: {status} {body}");
            }
            if revision.is_none() {
                revision = response
                    .headers()
                    .get(matview::api::projector::REVISION_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
            }
            if positions.is_none() {
                positions = response
                    .headers()
                    .get("matview-positions")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
            }
            let page: Value = response.json().await.expect("page");
            for row in page["rows"].as_array().into_iter().flatten() {
                rows.insert(
                    row["key"].as_str().unwrap_or_default().to_string(),
                    row.clone(),
                );
            }
            match page["next"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
    }
    LoadedView {
        rows,
        positions: positions.expect("a positions header"),
        revision: revision.expect("a revision header"),
    }
}

/// A whole view read by scanning every group, and where it was read.
struct LoadedView {
    rows: BTreeMap<String, Value>,
    positions: String,
    revision: String,
}

/// A stream client's view of the view.
#[derive(Debug, Default)]
struct Mirror {
    rows: BTreeMap<String, Value>,
    revisions: Vec<String>,
    events: usize,
    resets: usize,
    disconnects: usize,
}

/// Applies stream events to a snapshot; on `reset` reloads. Returns once the
/// mirror matches the final expected view of the test (checked by the caller)
/// — here: when the stream has been quiet for 8 s after the revision changed.
async fn mirror_view(
    url: String,
    ns: String,
    token: String,
    snapshot: BTreeMap<String, Value>,
    mut stream: crate::support::gateway::EventReceiver,
) -> Mirror {
    let mut mirror = Mirror {
        rows: snapshot,
        ..Default::default()
    };
    loop {
        let next = tokio::time::timeout(Duration::from_secs(8), stream.recv()).await;
        let event = match next {
            Ok(Some(event)) => event,
            Ok(None) => {
                mirror.disconnects += 1;
                return mirror;
            }
            // Quiet: done once the switch happened.
            Err(_) if mirror.revisions.len() >= 2 => return mirror,
            Err(_) => continue,
        };
        if let Some(rev) = event.data["revision"].as_str()
            && mirror.revisions.last().map(String::as_str) != Some(rev)
        {
            mirror.revisions.push(rev.to_string());
        }
        match event.event.as_str() {
            "rows" => {
                mirror.events += 1;
                for row in event.data["rows"].as_array().into_iter().flatten() {
                    mirror.rows.insert(
                        row["key"].as_str().unwrap_or_default().to_string(),
                        row.clone(),
                    );
                }
            }
            "reset" => {
                mirror.resets += 1;
                // A reset names the revision that stopped; the reload says
                // which one serves now (no row may change after a switch).
                let loaded = load_view_at(&url, &ns, "load", &token).await;
                if mirror.revisions.last() != Some(&loaded.revision) {
                    mirror.revisions.push(loaded.revision);
                }
                mirror.rows = loaded.rows;
            }
            _ => {}
        }
    }
}

/// Whether the API server says the pod is Ready.
async fn pod_ready(pods: &kube::Api<k8s_openapi::api::core::v1::Pod>, name: &str) -> bool {
    pods.get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|p| p.status?.conditions)
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Twenty kill -9s of projector replicas at seeded random moments while
/// orders stream in and sixteen readers read through the gateway. Each
/// victim's partner replica is ready first (two replicas per shard is the
/// promise; both down at once is an outage by design): no read fails, no
/// event is lost or doubled in the view.
#[tokio::test]
async fn twenty_kills_under_load_fail_no_read_and_lose_nothing() {
    let st = stack("gwkills", "kubernetes").await;
    let reader = st.reader().await;
    let topic = kafka::create_topic(st.env, "orders", 4).await;
    let all_orders = orders(Orders {
        seed: 71,
        users: 50,
        count: 1200,
    });
    let (placed, live) = all_orders.split_at(400);
    st.produce_by_order(&topic, placed).await;
    st.create_view("load", &topic, 2, 2, false).await;
    let expected = reference(placed);
    let revision = st.ready("load", expected.len() as i64).await;
    let users: Vec<String> = expected.keys().cloned().collect();
    let first = format!("/v1/namespaces/{}/views/load/rows/{}", st.ns.name, users[0]);
    st.serving(&first, Some(&reader)).await;

    let readers = Readers::spawn(&st, &users, &reader, 16);
    let producing = {
        let (env, topic, live) = (st.env, topic.clone(), live.to_vec());
        tokio::spawn(
            async move { produce_paced(env, topic, live, Duration::from_millis(75)).await },
        )
    };
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(st.client.clone(), &st.ns.name);
    let started = std::time::Instant::now();
    let mut state: u64 = 0x0dd_5eed;
    let mut kills = 0;
    while kills < 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        tokio::time::sleep(Duration::from_millis(200 + state % 1000)).await;
        let shard = state % 2;
        let victim = (state >> 8) % 2;
        let set = matview::operator::desired::object_name("load", &revision, &format!("-s{shard}"));
        let (pod, partner) = (format!("{set}-{victim}"), format!("{set}-{}", 1 - victim));
        // Both running, the partner ready for a while (so that the gateway
        // routes to it too): each kill is one crash of a live process.
        eventually(
            &format!("{partner} and {pod} ready before {pod} is killed"),
            Duration::from_secs(120),
            || async {
                let since = std::time::Instant::now();
                while since.elapsed() < Duration::from_secs(2) {
                    if !pod_ready(&pods, &partner).await || !pod_ready(&pods, &pod).await {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Some(())
            },
        )
        .await;
        if st.kubelet().kill(&pod) {
            kills += 1;
        }
    }
    let kill_phase = started.elapsed();
    producing.await.expect("producer task");
    let expected_final = reference(&all_orders);
    st.ready("load", expected_final.len() as i64).await;
    st.serves("load", &expected_final, &reader).await;
    let (total, _) = readers.stop().await;
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "twenty kills: {} reads in {elapsed:.1} s ({:.0}/s), kills over {kill_phase:?}, {} failed",
        total.reads,
        total.reads as f64 / elapsed,
        total.failures.len()
    );
    total.assert_none_failed(&st.gateway_log());
    // Each kill was one restart (the last one may still be pausing), and
    // nothing else went down.
    let restarts = || {
        (0..2)
            .flat_map(|shard| (0..2).map(move |replica| (shard, replica)))
            .map(|(shard, replica)| {
                let set = matview::operator::desired::object_name(
                    "load",
                    &revision,
                    &format!("-s{shard}"),
                );
                st.kubelet()
                    .restarts(&format!("{set}-{replica}"))
                    .unwrap_or(0)
            })
            .sum::<i32>()
    };
    eventually("a restart per kill", Duration::from_secs(60), || async {
        (restarts() >= kills).then_some(())
    })
    .await;
    assert_eq!(restarts(), kills, "restarts of the four projectors");
    let mut st = st;
    assert!(st.operator.is_running(), "{}", st.operator_log());
    assert!(st.gateway.is_running(), "{}", st.gateway_log());
    // Every row through the gateway: exact, nothing lost or doubled.
    assert_eq!(
        st.rows("load", expected_final.keys(), &reader).await,
        expected_final
    );
}

/// Produces `orders` keyed by order, one every `pause`.
async fn produce_paced(env: &'static TestEnv, topic: String, orders: Vec<Value>, pause: Duration) {
    let producer: FutureProducer = kafka::client_config(env).create().expect("producer");
    for order in &orders {
        let key = order["orderId"].as_str().unwrap_or_default().to_string();
        let payload = order.to_string();
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produced");
        tokio::time::sleep(pause).await;
    }
}
