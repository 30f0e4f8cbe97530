//! A store damaged on disk between two runs: the projector detects it at
//! start and rebuilds the view from the topic (the default), or exits naming
//! the damage with `--damaged-store refuse`. It never serves rows from it.

use std::time::Duration;

use matview::workload::OrderGenerator;
use serde_json::Value;

use crate::support::projector::{Projector, metric, produce_orders, reference, shop_view_yaml};
use crate::support::{TestEnv, kafka, unique_name};

/// XORs 64 KiB in the middle of the file: committed pages, not just free space.
fn garble(file: &std::path::Path) {
    let mut bytes = std::fs::read(file).expect("read the store");
    let middle = bytes.len() / 2;
    let end = (middle + 64 * 1024).min(bytes.len());
    for b in &mut bytes[middle..end] {
        *b ^= 0xa5;
    }
    std::fs::write(file, bytes).expect("write the store");
}

#[tokio::test]
async fn a_damaged_store_is_refused_on_request_or_rebuilt_from_the_topic() {
    let env = TestEnv::with_kafka();
    let topic = kafka::create_topic(env, "orders", 2).await;
    let dead_letter = kafka::create_topic(env, "orders-dlq", 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let view_file = dir.path().join("view.yaml");
    let yaml = shop_view_yaml(env, &unique_name("damaged"), &topic, &dead_letter, 1);
    std::fs::write(&view_file, yaml).expect("write view");
    let mut generator = OrderGenerator::new(41, 60);
    let orders: Vec<Value> = (0..4_000).map(|_| generator.next_order()).collect();
    produce_orders(env, &topic, &orders).await;
    let data = dir.path().join("data");
    let mut projector = Projector::start(&view_file, 0, &data, dir.path());
    projector
        .wait_applied(orders.len() as i64, Duration::from_secs(90))
        .await;
    let (status, _) = projector.terminate();
    assert!(status.success(), "{}", projector.logs());
    let store = data.join("view.redb");
    garble(&store);

    // Refused: exits non-zero, says so, leaves the file for inspection.
    projector.restart_with(&["--damaged-store", "refuse"]);
    let status = projector.wait_exit(Duration::from_secs(60)).await;
    assert!(!status.success(), "{}", projector.logs());
    assert!(
        projector.logs().contains("is damaged"),
        "{}",
        projector.logs()
    );
    assert!(store.exists(), "a refused store is kept");

    // Rebuilt (the default, named explicitly here): the exact view again.
    projector.restart_with(&["--damaged-store", "rebuild"]);
    projector
        .wait_applied(orders.len() as i64, Duration::from_secs(90))
        .await;
    let expected = reference(&orders);
    assert_eq!(projector.rows(expected.keys()).await, expected);
    let text = projector.metrics().await;
    assert_eq!(metric(&text, "matview_store_rebuilt_from_damage"), 1.0);
    assert!(
        projector.logs().contains("rebuilding from the topic"),
        "{}",
        projector.logs()
    );
}
