//! Avro and Protobuf through a real schema registry: events serialized by
//! confluent-kafka (registering schemas as a producer does, one type
//! referenced from another subject or file), the schema evolving mid-stream
//! and back, decimals of 24 digits, and every kind of bad frame. The view must equal the reference computed
//! from the orders without matview, and each bad message must be a dead
//! letter once, with its reason.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::message::Message;
use serde_json::json;

use crate::support::changelog::{changelog, expected, order, users};
use crate::support::formats::{
    AvroMessage, Produced, avro_order, protobuf_order, serialize, serialize_protobuf, serialized,
};
use crate::support::orders::{Orders, orders};
use crate::support::own_registry::OwnRegistry;
use crate::support::projector::{Projector, metric, reference, shop_view_yaml};
use crate::support::{TestEnv, eventually, kafka, unique_name};

/// The JSON tests' shop view, on Avro events.
fn avro_view(registry: &str, name: &str, topic: &str, dead_letter: &str) -> String {
    shop_view_yaml(TestEnv::get(), name, topic, dead_letter, 1).replace(
        "  records:\n",
        &format!("    format: avro\n    schemaRegistry: {{url: \"{registry}\"}}\n  records:\n"),
    )
}

/// Orders in v1, then v2 (new optional fields), then v1 again.
fn evolving(which: Orders) -> (Vec<serde_json::Value>, Vec<AvroMessage>) {
    let orders = orders(which);
    let third = orders.len() / 3;
    let messages = orders
        .iter()
        .enumerate()
        .map(|(i, o)| avro_order(o, if i / third == 1 { "v2" } else { "v1" }))
        .collect();
    (orders, messages)
}

/// One order whose price has 24 significant digits: exact or wrong.
const WHALE_PRICE: &str = "12345678901234567890.1234";

fn whale() -> AvroMessage {
    AvroMessage {
        key: "whale-o1".into(),
        schema: "v2",
        value: json!({
            "orderId": "whale-o1", "userId": "whale", "placedAt": 1_767_225_600_000u64,
            "items": [{"itemId": "whale-i1", "name": "island", "price": WHALE_PRICE}],
            "coupon": "VIP"
        }),
        avro_key: None,
    }
}

#[tokio::test]
async fn avro_through_a_registry_ends_exact_across_schema_versions_and_bad_frames() {
    let env = TestEnv::with_registry();
    let topic = kafka::create_topic(env, "avro-orders", 3).await;
    let dead_letter = kafka::create_topic(env, "avro-orders-dlq", 1).await;
    let (orders, mut messages) = evolving(Orders {
        seed: 0x0a70,
        users: 40,
        count: 450,
    });
    messages.push(whale());
    let framed = serialize(&env.serdes_python, &env.schema_registry, &topic, &messages);
    assert_eq!(framed.len(), messages.len());

    // Bad messages, each unique, with the reason each must get.
    let good = framed[0].1.clone().expect("a value");
    let mut bad: BTreeMap<Vec<u8>, &'static str> = BTreeMap::new();
    bad.insert(br#"{"orderId":"plain-json"}"#.to_vec(), "bad-encoding");
    bad.insert(good[..good.len() - 1].to_vec(), "bad-encoding");
    bad.insert(vec![0, 0, 7], "bad-encoding");
    let mut unknown = vec![0, 0x7f, 0xff, 0xff, 0xf0];
    unknown.extend_from_slice(&good[5..]);
    bad.insert(unknown, "unknown-schema");
    let mut produced: Vec<Produced> = Vec::new();
    let mut bad_iter = bad.keys();
    for (i, (key, value)) in framed.into_iter().enumerate() {
        produced.push((Some(key), value));
        if i % 100 == 50
            && let Some(b) = bad_iter.next()
        {
            produced.push((Some(format!("bad-{i}").into_bytes()), Some(b.clone())));
        }
    }
    produced.extend(bad_iter.map(|b| (Some(b"bad-end".to_vec()), Some(b.clone()))));
    let view = |name: &str| avro_view(&env.schema_registry, name, &topic, &dead_letter);
    let run = Run {
        topic: &topic,
        dead_letter: &dead_letter,
        produced: &produced,
        bad: &bad,
    };
    run.projects_exactly(view(&unique_name("avro")), &orders)
        .await;
}

/// Produced messages, some bad, and the topics a view of them uses.
struct Run<'a> {
    topic: &'a str,
    dead_letter: &'a str,
    produced: &'a [Produced],
    /// Each bad message's payload and the reason its dead letter must give.
    bad: &'a BTreeMap<Vec<u8>, &'static str>,
}

impl Run<'_> {
    /// Produces the messages and projects them with `view`: every row
    /// equals the reference computed from `orders`, the whale's 24 digits
    /// arrive exact, and each bad message is a dead letter once.
    async fn projects_exactly(&self, view_yaml: String, orders: &[serde_json::Value]) {
        let env = TestEnv::get();
        kafka::produce_raw(env, self.topic, self.produced).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let view = dir.path().join("view.yaml");
        std::fs::write(&view, view_yaml).expect("write view");
        let projector = Projector::start(&view, 0, &dir.path().join("data"), dir.path());
        projector
            .wait_applied(self.produced.len() as i64, Duration::from_secs(120))
            .await;
        let want = reference(orders);
        let users: Vec<String> = want.keys().cloned().collect();
        assert_eq!(
            projector.rows(&users).await,
            want,
            "rows\n{}",
            projector.logs()
        );
        // 24 digits, exact from the producer's string to the served sum.
        let whale = projector
            .get_text("/v1/rows/whale")
            .await
            .expect("whale row");
        assert!(
            whale.contains(&format!("\"price\":{WHALE_PRICE}")),
            "the whale's price is not exact: {whale}"
        );
        assert_letters(env, self.dead_letter, self.bad);
    }
}

/// The projector's own account of itself (`GET /v1/stats`).
async fn stats(projector: &Projector) -> serde_json::Value {
    let (status, body) = projector.get("/v1/stats").await.expect("stats answer");
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn a_registry_outage_holds_the_shard_skips_nothing_and_heals_by_itself() {
    let env = TestEnv::with_kafka();
    let registry = OwnRegistry::start("registry-outage");
    let topic = kafka::create_topic(env, "avro-outage", 2).await;
    let dead_letter = kafka::create_topic(env, "avro-outage-dlq", 1).await;
    let orders = orders(Orders {
        seed: 0x0a77,
        users: 30,
        count: 240,
    });
    // The first part in v1; the rest in v2, a schema id the projector
    // has not seen when the registry goes away.
    let messages: Vec<AvroMessage> = orders
        .iter()
        .enumerate()
        .map(|(i, o)| avro_order(o, if i < 80 { "v1" } else { "v2" }))
        .collect();
    let framed = serialized(&env.serdes_python, &registry.url, &topic, &messages);
    let (before, during) = framed.split_at(80);
    kafka::produce_raw(env, &topic, before).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let view = dir.path().join("view.yaml");
    let name = unique_name("avro-outage");
    std::fs::write(&view, avro_view(&registry.url, &name, &topic, &dead_letter))
        .expect("write view");
    let projector = Projector::start(&view, 0, &dir.path().join("data"), dir.path());
    projector.wait_applied(80, Duration::from_secs(120)).await;

    registry.stop();
    kafka::produce_raw(env, &topic, during).await;
    let said = eventually(
        "the projector to report the registry",
        Duration::from_secs(60),
        || async {
            stats(&projector).await["schemaRegistryError"]
                .as_str()
                .map(str::to_string)
        },
    )
    .await;
    assert!(
        said.contains(&registry.url),
        "the error names the registry: {said}"
    );
    let (_, ready) = projector.get("/readyz").await.expect("readyz answers");
    assert_eq!(ready["schemaRegistry"]["reachable"], false, "{ready}");
    assert_eq!(
        metric(
            &projector.metrics().await,
            "matview_schema_registry_reachable"
        ),
        0.0
    );
    // The outage lasts 20 s, as an operator's restart of the registry
    // might; the shard holds all the while: nothing applied, nothing
    // dead-lettered.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(
        stats(&projector).await["eventsConsumed"],
        80,
        "nothing skipped while held"
    );
    assert_letters(env, &dead_letter, &BTreeMap::new());

    registry.start_again();
    projector
        .wait_applied(framed.len() as i64, Duration::from_secs(120))
        .await;
    // No dead letter (one would name its reason here), then every row.
    assert_letters(env, &dead_letter, &BTreeMap::new());
    let want = reference(&orders);
    let users: Vec<String> = want.keys().cloned().collect();
    assert_eq!(
        projector.rows(&users).await,
        want,
        "rows\n{}",
        projector.logs()
    );
    assert!(stats(&projector).await.get("schemaRegistryError").is_none());
}

fn protobuf_view(registry: &str, name: &str, topic: &str, dead_letter: &str) -> String {
    avro_view(registry, name, topic, dead_letter)
        .replace("format: avro", "format: protobuf")
        .replace("key: ^/userId", "key: ^/user_id")
        .replace("id: /itemId", "id: /item_id")
        .replace("orderId: ^/orderId", "orderId: ^/order_id")
}

#[tokio::test]
async fn protobuf_through_a_registry_ends_exact_across_versions_imports_and_bad_frames() {
    let env = TestEnv::with_registry();
    let topic = kafka::create_topic(env, "proto-orders", 3).await;
    let dead_letter = kafka::create_topic(env, "proto-orders-dlq", 1).await;
    let orders = orders(Orders {
        seed: 0x0b07,
        users: 40,
        count: 450,
    });
    // Version 1, then 2 (a oneof and a nested message added), then 1 again:
    // each run of the serializer is a producer of one version.
    let mut framed = Vec::new();
    for (part, version) in orders.chunks(150).zip([1, 2, 1]) {
        let messages: Vec<_> = part.iter().map(|o| protobuf_order(o, version)).collect();
        framed.extend(serialize_protobuf(
            &env.serdes_python,
            &env.schema_registry,
            &topic,
            version,
            &messages,
        ));
    }
    let whale = json!({
        "order_id": "whale-o1", "user_id": "whale", "voucher": "VIP",
        "items": [{"item_id": "whale-i1", "name": "island", "price": {"value": WHALE_PRICE}}]
    });
    framed.extend(serialize_protobuf(
        &env.serdes_python,
        &env.schema_registry,
        &topic,
        2,
        &[("whale-o1".to_string(), whale)],
    ));

    let good = framed[0].1.clone().expect("a value");
    let mut bad: BTreeMap<Vec<u8>, &'static str> = BTreeMap::new();
    // Message indexes naming a fourth message of a file with one.
    let mut wrong_index = good[..5].to_vec();
    wrong_index.extend([2, 6]);
    wrong_index.extend_from_slice(&good[6..]);
    bad.insert(wrong_index, "bad-encoding");
    // A field whose length runs past the end.
    let mut cut = good[..6].to_vec();
    cut.extend([0x0a, 0x7f, b'o']);
    bad.insert(cut, "bad-encoding");
    bad.insert(b"order o-1, as text".to_vec(), "bad-encoding");
    let mut unknown = vec![0, 0x7f, 0xff, 0xff, 0xf1];
    unknown.extend_from_slice(&good[5..]);
    bad.insert(unknown, "unknown-schema");
    let mut produced: Vec<Produced> = framed.into_iter().map(|(k, v)| (Some(k), v)).collect();
    for (i, b) in bad.keys().enumerate() {
        produced.insert(
            40 + i * 90,
            (Some(format!("bad-{i}").into_bytes()), Some(b.clone())),
        );
    }
    let view = protobuf_view(
        &env.schema_registry,
        &unique_name("proto"),
        &topic,
        &dead_letter,
    );
    let run = Run {
        topic: &topic,
        dead_letter: &dead_letter,
        produced: &produced,
        bad: &bad,
    };
    run.projects_exactly(view, &orders).await;
}

/// Each bad message is a dead letter once, with its reason.
fn assert_letters(env: &TestEnv, dead_letter: &str, bad: &BTreeMap<Vec<u8>, &str>) {
    let letters = kafka::read_topic(env, dead_letter);
    let mut seen = BTreeMap::new();
    for letter in &letters {
        let payload = letter.payload().unwrap_or_default().to_vec();
        let reason = kafka::header(letter, "matview.reason");
        assert_eq!(
            bad.get(&payload).copied(),
            Some(reason.as_str()),
            "letter {:?}: {}",
            String::from_utf8_lossy(&payload),
            kafka::header(letter, "matview.error")
        );
        assert!(
            seen.insert(payload, reason).is_none(),
            "a dead letter twice"
        );
    }
    assert_eq!(seen.len(), bad.len(), "every bad message is a dead letter");
}

#[tokio::test]
async fn avro_keys_name_entities_by_content_across_key_schema_versions() {
    let env = TestEnv::with_registry();
    // One partition: a key in other bytes hashes to another partition, and
    // Kafka orders a key's messages only within one.
    let topic = kafka::create_topic(env, "avro-table", 1).await;
    let dead_letter = kafka::create_topic(env, "avro-table-dlq", 1).await;
    let changes = changelog(0xa7e5, 200, 30, 1500);
    // Every other message of a key is written with the second key schema:
    // other bytes, the same key. Compared as bytes, updates would not
    // replace and deletes would not delete (this test fails with
    // `keyFormat: string`).
    let messages: Vec<AvroMessage> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let value = match &c.state {
                Some(state) => {
                    let mut order = order(&c.key, state);
                    order["placedAt"] = json!(0);
                    avro_order(&order, "v1").value
                }
                None => serde_json::Value::Null,
            };
            let key_schema = if i % 2 == 0 { "k1" } else { "k2" };
            AvroMessage {
                key: c.key.clone(),
                schema: "v1",
                value,
                avro_key: Some((key_schema, json!({"orderId": c.key}))),
            }
        })
        .collect();
    let framed = serialize(&env.serdes_python, &env.schema_registry, &topic, &messages);
    let produced: Vec<Produced> = framed.into_iter().map(|(k, v)| (Some(k), v)).collect();
    kafka::produce_raw(env, &topic, &produced).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let view = dir.path().join("view.yaml");
    let name = unique_name("avro-table");
    let yaml = avro_view(&env.schema_registry, &name, &topic, &dead_letter).replace(
        "    format: avro\n",
        "    format: avro\n    keyFormat: avro\n    envelope: upsert\n",
    );
    std::fs::write(&view, yaml).expect("write view");
    let projector = Projector::start(&view, 0, &dir.path().join("data"), dir.path());
    projector
        .wait_applied(produced.len() as i64, Duration::from_secs(120))
        .await;
    assert_letters(env, &dead_letter, &BTreeMap::new());
    let want = expected(&changes);
    assert!(!want.is_empty());
    assert_eq!(
        projector.rows(&users(&changes)).await,
        want,
        "rows\n{}",
        projector.logs()
    );
}
