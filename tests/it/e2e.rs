//! End to end: the operator, the real control plane (API server, controller
//! manager), the process kubelet running projector pods, and the real broker.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use matview::crd::{MaterializedView, Phase};
use matview::engine::revision;
use matview::operator::desired::{LABEL_REVISION, LABEL_VIEW};
use serde_json::{Value, json};

use crate::support::operator::OperatorFixture;
use crate::support::orders::{Orders, order_events, orders};
use crate::support::projector::produce;
use crate::support::{eventually, kafka, ready_with_rows, run_ok, unique_name};

/// Users with at least one item, computed from the orders.
fn users(orders: &[Value]) -> std::collections::BTreeSet<String> {
    orders
        .iter()
        .filter(|o| o["items"].as_array().is_some_and(|i| !i.is_empty()))
        .map(|o| o["userId"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Cheap items per user under a given threshold, from the orders.
fn cheap_counts(orders: &[Value], below: f64) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for o in orders {
        for item in o["items"].as_array().into_iter().flatten() {
            if item["price"].as_f64().unwrap_or(0.0) < below {
                *out.entry(o["userId"].as_str().unwrap_or_default().to_string())
                    .or_insert(0) += 1;
            }
        }
    }
    out
}

/// Changes the shop rules so that "cheap" means below `cheap`; returns the new revision.
async fn cheap_below(views: &Api<MaterializedView>, cheap: f64) -> String {
    // The switch as it was before kept revisions (keepPrevious 0s): the old
    // revision goes right after it; rollouts.rs covers keeping it.
    let patch = json!({"spec": {"rollout": {"keepPrevious": "0s"}, "classify": {"field": "price", "rules": [
        {"group": "cheap", "lt": cheap}, {"group": "affordable", "gte": cheap, "lte": 50}, {"group": "expensive", "gt": 50}]}}});
    views
        .patch(
            "items-by-price",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("rules changed");
    revision(&views.get("items-by-price").await.expect("view").spec)
}

async fn wait_phase(
    views: &Api<MaterializedView>,
    name: &str,
    phase: Phase,
    what: &str,
    timeout: Duration,
) -> MaterializedView {
    eventually(what, timeout, || {
        let views = views.clone();
        let name = name.to_string();
        async move {
            let v = views.get(&name).await.ok()?;
            (v.status.as_ref()?.phase == Some(phase)).then_some(v)
        }
    })
    .await
}

/// The shop example Ready on its own control plane, process kubelet and
/// topic: the start of every scenario here.
struct ReadyShop {
    fixture: OperatorFixture,
    views: Api<MaterializedView>,
    orders: Vec<Value>,
    rev1: String,
}

async fn ready_shop(prefix: &str) -> ReadyShop {
    let fixture = OperatorFixture::start(prefix, &[], true).await;
    let (env, client, ns) = (fixture.env, fixture.client.clone(), &fixture.ns);

    let topic = kafka::create_topic(env, "orders", 4).await;
    let orders = orders(Orders {
        seed: 11,
        users: 60,
        count: 600,
    });
    let events = order_events(&orders);
    produce(env, &topic, &events).await;

    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/items-by-price.yaml"
    ))
    .expect("example");
    let mut view: MaterializedView = serde_yaml_ng::from_str(&text).expect("parses");
    view.metadata.namespace = None;
    view.spec.source.kafka.bootstrap_servers = Some(env.kafka_bootstrap.clone());
    view.spec.source.kafka.topic = topic.clone();
    view.spec.dead_letter = Some(matview::crd::DeadLetter {
        topic: Some(unique_name("e2e-dlq")),
    });
    view.spec.replicas_per_shard = 1;
    let views: Api<MaterializedView> = Api::namespaced(client.clone(), &ns.name);
    let started = std::time::Instant::now();
    views
        .create(&PostParams::default(), &view)
        .await
        .expect("created");

    // Ready, with the right number of rows.
    let expected_rows = users(&orders).len() as i64;
    let ready = eventually("Ready with every row", Duration::from_secs(90), || {
        let views = views.clone();
        async move {
            let v = views.get("items-by-price").await.ok()?;
            ready_with_rows(v.status.as_ref()?, expected_rows).then_some(v)
        }
    })
    .await;
    eprintln!(
        "time to Ready for the shop example (600 orders, 2 shards): {:?}",
        started.elapsed()
    );
    let rev1 = revision(&view.spec);
    assert_eq!(
        ready
            .status
            .as_ref()
            .and_then(|s| s.active_revision.clone()),
        Some(rev1.clone())
    );
    assert_eq!(ready.status.as_ref().and_then(|s| s.lag), Some(0));
    let out = run_ok(env.kubectl().args([
        "get",
        "mv",
        "items-by-price",
        "-n",
        &ns.name,
        "--no-headers",
    ]));
    assert!(
        out.contains("True") && out.contains("Ready") && out.contains(&rev1),
        "{out}"
    );
    ReadyShop {
        fixture,
        views,
        orders,
        rev1,
    }
}

#[tokio::test]
async fn shop_view_goes_ready_heals_and_scales() {
    let shop = ready_shop("e2e-heal").await;
    let (client, ns) = (shop.fixture.client.clone(), &shop.fixture.ns);
    let kubelet = shop.fixture.kubelet();
    let (views, rev1) = (&shop.views, &shop.rev1);
    // Kill a projector: Degraded (or Building), then Ready again after the restart.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    for pod in pods.list(&ListParams::default()).await.expect("pods").items {
        assert_eq!(
            pod.spec.and_then(|s| s.node_name).as_deref(),
            Some(kubelet.node.as_str())
        );
    }
    let victim = pods
        .list(&ListParams::default().labels(&format!("{LABEL_VIEW}=items-by-price")))
        .await
        .expect("pods")
        .items[0]
        .metadata
        .name
        .clone()
        .expect("named");
    assert!(kubelet.kill(&victim), "no process for {victim}");
    eventually(
        "not Ready after a projector died",
        Duration::from_secs(30),
        || {
            let views = views.clone();
            async move {
                let v = views.get("items-by-price").await.ok()?;
                matches!(v.status?.phase, Some(Phase::Degraded | Phase::Building)).then_some(())
            }
        },
    )
    .await;
    wait_phase(
        views,
        "items-by-price",
        Phase::Ready,
        "Ready again after the restart",
        Duration::from_secs(60),
    )
    .await;

    // Scale 1 → 2 replicas per shard: same revision, more pods.
    let patch = json!({"spec": {"replicasPerShard": 2}});
    views
        .patch(
            "items-by-price",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("scaled");
    eventually("4 ready projectors", Duration::from_secs(60), || {
        let views = views.clone();
        async move {
            let s = views.get("items-by-price").await.ok()?.status?;
            (s.ready_replicas == Some(4) && s.phase == Some(Phase::Ready)).then_some(())
        }
    })
    .await;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns.name);
    let revisions = |list: Vec<StatefulSet>| {
        list.iter()
            .filter_map(|s| s.metadata.labels.as_ref()?.get(LABEL_REVISION).cloned())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        revisions(sets.list(&ListParams::default()).await.expect("sets").items),
        [rev1.clone()].into()
    );
}

#[tokio::test]
async fn rule_changes_switch_without_downtime_and_deletion_collects_everything() {
    let shop = ready_shop("e2e-rules").await;
    let (client, ns) = (shop.fixture.client.clone(), &shop.fixture.ns);
    let kubelet = shop.fixture.kubelet();
    let (views, rev1) = (&shop.views, &shop.rev1);
    let orders = &shop.orders;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns.name);
    let revisions = |list: Vec<StatefulSet>| {
        list.iter()
            .filter_map(|s| s.metadata.labels.as_ref()?.get(LABEL_REVISION).cloned())
            .collect::<std::collections::BTreeSet<_>>()
    };
    // Change the rules: the old revision serves until the new one caught up.
    let rev2 = cheap_below(views, 10.0).await;
    assert_ne!(&rev2, rev1);
    let mut saw_both = false;
    let mut switched = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let v = views.get("items-by-price").await.expect("view");
        let s = v.status.clone().unwrap_or_default();
        let live = revisions(sets.list(&ListParams::default()).await.expect("sets").items);
        // After the switch the old revision lingers one reconcile (readers
        // learn the switch before its pods go); the switch never goes back.
        if switched {
            assert_eq!(s.active_revision.as_deref(), Some(rev2.as_str()));
        }
        switched |= s.active_revision.as_deref() == Some(rev2.as_str());
        if live.len() == 2 && !switched {
            saw_both = true;
            assert_eq!(
                s.active_revision.as_deref(),
                Some(rev1.as_str()),
                "the old revision serves while the new one builds"
            );
        }
        if s.active_revision.as_deref() == Some(rev2.as_str())
            && s.phase == Some(Phase::Ready)
            && live == [rev2.clone()].into()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no switch to {rev2}: {s:?}, live {live:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        saw_both,
        "both revisions should exist while the new one builds"
    );
    // The new rows follow the new rules (asked of a projector of the new revision).
    let new_pod = pods
        .list(&ListParams::default().labels(&format!("{LABEL_REVISION}={rev2}")))
        .await
        .expect("pods")
        .items
        .into_iter()
        .find_map(|p| p.metadata.name)
        .expect("a new pod");
    let ip = kubelet.address(&new_pod).expect("running");
    let expected = cheap_counts(orders, 10.0);
    let mut checked = 0;
    for (user, cheap) in expected.iter().take(10) {
        // Partial rows: a user's items span both shards, so sum the shards.
        let mut total = 0;
        for p in pods
            .list(&ListParams::default().labels(&format!("{LABEL_REVISION}={rev2}")))
            .await
            .expect("pods")
            .items
        {
            let Some(addr) = p.metadata.name.as_deref().and_then(|n| kubelet.address(n)) else {
                continue;
            };
            if p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("apps.kubernetes.io/pod-index"))
                .map(String::as_str)
                != Some("0")
            {
                continue; // one replica per shard
            }
            if let Ok(r) = reqwest::get(format!("http://{addr}:8080/v1/rows/{user}")).await
                && r.status() == 200
            {
                let row: Value = r.json().await.expect("json");
                total += row["groups"]["cheap"]["count"].as_u64().unwrap_or(0);
            }
        }
        assert_eq!(total, *cheap, "user {user}");
        checked += 1;
    }
    assert!(checked > 0 && !ip.is_empty());

    // Two changes in a row: the second replaces the pending target; the
    // active revision serves until the last one is ready.
    let rev3 = cheap_below(views, 3.0).await;
    let rev4 = cheap_below(views, 4.0).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let s = views
            .get("items-by-price")
            .await
            .expect("view")
            .status
            .unwrap_or_default();
        let active = s.active_revision.clone().unwrap_or_default();
        assert!(
            active == rev2 || active == rev4,
            "only the last change may become active, got {active} (rev3 {rev3})"
        );
        let live = revisions(sets.list(&ListParams::default()).await.expect("sets").items);
        if active == rev4 && s.phase == Some(Phase::Ready) && live == [rev4.clone()].into() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no switch to {rev4}: {s:?}, live {live:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Delete: the garbage collector removes the owned objects.
    views
        .delete("items-by-price", &DeleteParams::default())
        .await
        .expect("deleted");
    eventually(
        "owned StatefulSets garbage-collected",
        Duration::from_secs(60),
        || {
            let sets = sets.clone();
            async move {
                sets.list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .is_empty()
                    .then_some(())
            }
        },
    )
    .await;
}
