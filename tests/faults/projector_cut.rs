//! One projector cut off from every Kafka node for 30 s while its partner
//! replica still reaches them (the projector's pod runs in a network
//! namespace of its own; the gateway still reaches it): no read fails, the
//! view's status names the projector that cannot reach Kafka while it
//! cannot, and everything is right again by itself.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};

use crate::scenario::{Scenario, VIEW};
use crate::support::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_cut_off_from_kafka_while_its_partner_is_not_costs_no_read() {
    let _one = crate::ONE_AT_A_TIME.lock().await;
    let sc = Scenario::start("pcut", 1).await;
    let (netns, ip) = tokio::task::block_in_place(|| sc.cluster.host("proj"));

    // The shard's second replica moves into the namespace: its pod is
    // deleted, and the StatefulSet's new one starts there.
    let pods: Api<Pod> = Api::namespaced(sc.st.client.clone(), &sc.st.ns.name);
    let label = format!("{}={VIEW}", matview::api::names::LABEL_VIEW);
    let listed = pods
        .list(&ListParams::default().labels(&label))
        .await
        .expect("pods");
    let moved = listed
        .items
        .iter()
        .map(|p| p.name_any())
        .find(|n| n.ends_with("-1"))
        .expect("a second replica");
    sc.st.kubelet().place(&moved, &netns, &ip);
    pods.delete(&moved, &DeleteParams::default())
        .await
        .expect("pod deleted");
    let readyz = format!("http://{ip}:{}/readyz", matview::api::names::HTTP_PORT);
    eventually(
        &format!("{moved} ready again in {netns}"),
        Duration::from_secs(120),
        || async {
            (sc.st.kubelet().address(&moved)? == ip).then_some(())?;
            let answer = reqwest::get(&readyz).await.ok()?;
            (answer.status() == 200).then_some(())
        },
    )
    .await;

    let cut = Instant::now();
    sc.fault_begins();
    tokio::task::block_in_place(|| sc.cluster.isolate("proj"));
    let (said, said_after) = sc.status_says("BrokerUnreachable", &[&moved]).await;
    assert!(
        !said.ok,
        "SourceReady=False while a projector cannot reach Kafka"
    );
    sc.produced_more(100, "orders acknowledged while a projector is cut off")
        .await;
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(cut.elapsed())).await;
    tokio::task::block_in_place(|| sc.cluster.heal("proj"));
    sc.fault_ends();
    println!(
        "projector cut off: status said after {said_after:?}: {}",
        said.message
    );
    sc.finish("a projector cut off from Kafka for 30 s").await;
}
