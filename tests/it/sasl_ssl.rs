//! A source on Kafka with SASL_SSL (SCRAM-SHA-512, TLS with the test
//! environment's CA): the projector connects with the client properties a
//! mounted Secret gives it and builds the exact view; with a wrong password
//! it says authentication failed, and never writes the password anywhere.

use std::time::Duration;

use matview::workload::OrderGenerator;
use serde_json::Value;

use crate::support::own_broker::OwnBroker;
use crate::support::projector::{Projector, produce_orders_at, reference, shop_view_yaml};
use crate::support::{TestEnv, kafka, unique_name};

/// librdkafka properties for the SASL_SSL listener, as a Secret's file.
fn client_properties(broker: &OwnBroker, password: &str) -> String {
    format!(
        "security.protocol=SASL_SSL\nsasl.mechanisms=SCRAM-SHA-512\nsasl.username=matview\n\
         sasl.password={password}\nssl.ca.location={}\n",
        broker.ca_pem().display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sasl_ssl_source_builds_the_view_and_a_wrong_password_is_named_not_logged() {
    let env = TestEnv::get();
    let broker = tokio::task::block_in_place(|| OwnBroker::start_sasl_ssl("sasl"));
    let secured = broker.sasl_ssl_bootstrap();
    let topic = kafka::create_topic_at(&broker.bootstrap, "orders", 2).await;
    let dead_letter = kafka::create_topic_at(&broker.bootstrap, "orders-dlq", 1).await;
    let mut generator = OrderGenerator::new(111, 30);
    let orders: Vec<Value> = (0..500).map(|_| generator.next_order()).collect();
    produce_orders_at(&broker.bootstrap, &topic, &orders).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let view_file = dir.path().join("view.yaml");
    let yaml = shop_view_yaml(env, &unique_name("sasl"), &topic, &dead_letter, 1)
        .replace(&env.kafka_bootstrap, &secured);
    std::fs::write(&view_file, yaml).expect("write view");
    let good = dir.path().join("good.properties");
    std::fs::write(&good, client_properties(&broker, &broker.sasl_password())).expect("write");
    let projector = Projector::start_with(
        &view_file,
        0,
        &dir.path().join("good-data"),
        dir.path(),
        &[
            "--kafka-properties-file",
            good.to_str().expect("utf-8 path"),
        ],
    );
    projector
        .wait_applied(orders.len() as i64, Duration::from_secs(90))
        .await;
    let expected = reference(&orders);
    assert_eq!(projector.rows(expected.keys()).await, expected);

    // A wrong password: refused by the broker, said, and kept secret.
    let wrong_password = format!("wrong-{}", unique_name("pw"));
    let bad = dir.path().join("bad.properties");
    std::fs::write(&bad, client_properties(&broker, &wrong_password)).expect("write");
    let mut refused = Projector::start_with(
        &view_file,
        0,
        &dir.path().join("bad-data"),
        dir.path(),
        &["--kafka-properties-file", bad.to_str().expect("utf-8 path")],
    );
    let status = refused.wait_exit(Duration::from_secs(120)).await;
    let log = refused.logs();
    assert!(!status.success(), "{log}");
    assert!(
        log.to_lowercase().contains("authentication"),
        "the log says authentication failed: {log}"
    );
    assert!(
        !log.contains(&wrong_password),
        "the password is not logged: {log}"
    );
    assert!(
        !projector.logs().contains(&broker.sasl_password()),
        "the password is not logged"
    );
}
