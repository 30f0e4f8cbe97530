//! A source on Kafka with SASL_SSL (SCRAM-SHA-512, TLS with the test
//! environment's CA): the projector connects with the client properties a
//! mounted Secret gives it and builds the exact view; with a wrong password
//! it says authentication failed, and never writes the password anywhere.
//! Through the operator: a view whose `configFrom` names the Secret becomes
//! Ready; a wrong password is `SourceReady=False`/`AuthenticationFailed`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use matview::crd::MaterializedView;
use matview::workload::OrderGenerator;
use serde_json::Value;

use crate::support::own_broker::OwnBroker;
use crate::support::projector::{Projector, produce_orders_at, reference, shop_view_yaml};
use crate::support::stack::{Stack, shop_view, source_refused, stack};
use crate::support::{TestEnv, eventually, kafka, run_ok, unique_name};

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

/// The client properties of the SASL_SSL listener as a Secret: what a
/// platform team would write, the CA as PEM text (`ssl.ca.pem`), since a
/// file path means nothing inside the operator's or a projector's pod.
async fn client_secret(st: &Stack, name: &str, broker: &OwnBroker, password: &str) {
    let ca = std::fs::read_to_string(broker.ca_pem()).expect("the environment's CA");
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "stringData": {
            "bootstrap.servers": broker.sasl_ssl_bootstrap(),
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": "matview",
            "sasl.password": password,
            "ssl.ca.pem": ca,
        },
    }))
    .expect("secret literal");
    let secrets: Api<Secret> = Api::namespaced(st.client.clone(), &st.ns.name);
    secrets
        .patch(
            name,
            &PatchParams::apply("matview-tests").force(),
            &Patch::Apply(&secret),
        )
        .await
        .expect("secret applied");
}

/// The shop view reading `topic` with its connection from `secret` alone.
fn view_from_secret(name: &str, topic: &str, secret: &str) -> MaterializedView {
    let mut view = shop_view(name, topic, 1, 1, false);
    view.spec.source.kafka.bootstrap_servers = None;
    view.spec.source.kafka.config_from = Some(matview::crd::ConfigFrom {
        secret_name: Some(secret.into()),
        config_map_name: None,
    });
    view
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_operator_a_sasl_ssl_view_is_ready_and_a_wrong_password_is_a_status() {
    let broker = tokio::task::block_in_place(|| OwnBroker::start_sasl_ssl("sasl-op"));
    let st = stack("saslop", "kubernetes").await;
    let topic = kafka::create_topic_at(&broker.bootstrap, "orders", 2).await;
    let mut generator = OrderGenerator::new(112, 40);
    let orders: Vec<Value> = (0..400).map(|_| generator.next_order()).collect();
    produce_orders_at(&broker.bootstrap, &topic, &orders).await;
    let expected = reference(&orders);

    // The right password: Ready through the operator, every row served.
    client_secret(&st, "kafka-good", &broker, &broker.sasl_password()).await;
    let mut secured = view_from_secret("secured", &topic, "kafka-good");
    secured.spec.deletion_policy = matview::crd::DeletionPolicy::Delete;
    st.views
        .create(&PostParams::default(), &secured)
        .await
        .expect("view");
    st.ready("secured", expected.len() as i64).await;
    let token = st.reader().await;
    assert_eq!(st.rows("secured", expected.keys(), &token).await, expected);

    // A wrong password: a status that says so, no workload, no secret in
    // logs, status or Events.
    let wrong_password = format!("wrong-{}", unique_name("pw"));
    client_secret(&st, "kafka-bad", &broker, &wrong_password).await;
    st.views
        .create(
            &PostParams::default(),
            &view_from_secret("refused", &topic, "kafka-bad"),
        )
        .await
        .expect("view");
    let refused = source_refused(&st.views, "refused").await;
    eprintln!(
        "SourceReady: {:?} {}: {}",
        refused.status, refused.reason, refused.message
    );
    assert_eq!(refused.reason, "AuthenticationFailed", "{refused:?}");
    assert!(
        refused.message.contains("SASL authentication error")
            && refused.message.contains("sasl.password"),
        "names the failure and what to check: {}",
        refused.message
    );
    let view = st.views.get("refused").await.expect("view");
    let status = view.status.expect("status");
    assert_eq!(status.phase, Some(matview::crd::Phase::Pending));
    let events = run_ok(
        st.env
            .kubectl()
            .args(["get", "events", "-n", &st.ns.name, "-o", "yaml"]),
    );
    assert!(
        events.contains("SourceUnavailable"),
        "a Warning Event: {events}"
    );
    for (what, text) in [
        ("operator log", st.operator_log()),
        ("events", events),
        ("status", format!("{status:?}")),
    ] {
        assert!(!text.contains(&wrong_password), "{what} holds the password");
        assert!(
            !text.contains(&broker.sasl_password()),
            "{what} holds the password"
        );
    }

    // Fixing the Secret is enough: the next retry finds it.
    client_secret(&st, "kafka-bad", &broker, &broker.sasl_password()).await;
    let fixed = std::time::Instant::now();
    st.ready("refused", expected.len() as i64).await;
    eprintln!("Ready {:?} after the Secret was fixed", fixed.elapsed());
    assert_eq!(st.rows("refused", expected.keys(), &token).await, expected);

    // The Secret deleted first (as a namespace deletion may): deleting the
    // view does not wait forever to clean Kafka up; it says what is left.
    let secrets: Api<Secret> = Api::namespaced(st.client.clone(), &st.ns.name);
    secrets
        .delete("kafka-good", &Default::default())
        .await
        .expect("secret deleted");
    st.views
        .delete("secured", &Default::default())
        .await
        .expect("view deleted");
    eventually("the view gone", Duration::from_secs(60), || async {
        matches!(
            st.views.get("secured").await,
            Err(kube::Error::Api(e)) if e.code == 404
        )
        .then_some(())
    })
    .await;
    let events = run_ok(
        st.env
            .kubectl()
            .args(["get", "events", "-n", &st.ns.name, "-o", "yaml"]),
    );
    assert!(
        events.contains("KafkaResourcesLeft") && events.contains("Secret kafka-good"),
        "{events}"
    );
}
