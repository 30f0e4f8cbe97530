//! The cluster upgraded as an operator of Kafka would: each node shut down
//! cleanly and started again, one at a time, the next only once every
//! partition has its three replicas in sync again.

use std::time::Duration;

use crate::scenario::Scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_every_node_costs_no_read_and_no_order() {
    let _one = crate::ONE_AT_A_TIME.lock().await;
    let sc = Scenario::start("rolling", 1).await;
    sc.fault_begins();
    for node in 1..=3 {
        tokio::task::block_in_place(|| sc.cluster.stop_node(node));
        sc.status_says("UnderReplicated", &[&sc.topic, &format!("node {node}")])
            .await;
        sc.produced_more(
            30,
            &format!("orders acknowledged while node {node} is down"),
        )
        .await;
        tokio::task::block_in_place(|| sc.cluster.start_node(node));
        crate::support::eventually(
            &format!("every replica in sync after node {node} came back"),
            Duration::from_secs(120),
            || async {
                tokio::task::block_in_place(|| sc.cluster.fully_replicated(&sc.topic)).then_some(())
            },
        )
        .await;
    }
    sc.fault_ends();
    sc.finish("a rolling restart of all three nodes").await;
}
