//! Tables, not only streams: upsert and Debezium changelogs through a
//! projector on the real broker, killed -9 at seeded moments while updates
//! and deletes are in flight. The expected view is the last state of each
//! key folded without the engine; every row, every scan page and the dead
//! letters must match it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::support::changelog::{
    changelog, debezium_messages, expected, expected_rows, upsert_messages, users,
};
use crate::support::projector::{Projector, Reference, row_totals};
use crate::support::{TestEnv, kafka, unique_name};
use rdkafka::message::Message;

/// A message as produced: key and value, each possibly Kafka's null.
type Raw = (Option<String>, Option<Vec<u8>>);

/// The upsert view: the shop's items by price, one source key per order.
fn upsert_view(env: &TestEnv, name: &str, topic: &str, dead_letter: &str) -> String {
    format!(
        r#"apiVersion: matview.dev/v1alpha1
kind: MaterializedView
metadata: {{name: {name}, namespace: tests}}
spec:
  source:
    kafka: {{bootstrapServers: "{bootstrap}", topic: {topic}}}
    envelope: upsert
  records:
    explode: /items
    key: ^/userId
    id: /itemId
    fields: {{price: /price}}
  classify:
    field: price
    rules:
      - {{group: cheap, lt: 5}}
      - {{group: affordable, gte: 5, lte: 50}}
      - {{group: expensive, gt: 50}}
  aggregate: {{count: true, sum: [price], items: {{limit: 5}}}}
  deadLetter: {{topic: {dead_letter}}}
"#,
        bootstrap = env.kafka_bootstrap
    )
}

/// The Debezium view of table public.orders: one record per order row.
fn debezium_view(env: &TestEnv, name: &str, topic: &str, dead_letter: &str) -> String {
    format!(
        r#"apiVersion: matview.dev/v1alpha1
kind: MaterializedView
metadata: {{name: {name}, namespace: tests}}
spec:
  source:
    kafka: {{bootstrapServers: "{bootstrap}", topic: {topic}}}
    envelope: debezium
  records:
    key: /customer_id
    id: /id
    fields: {{price: /total}}
    types: {{price: numericString}}
  classify:
    field: price
    rules:
      - {{group: cheap, lt: 5}}
      - {{group: affordable, gte: 5, lte: 50}}
      - {{group: expensive, gt: 50}}
  aggregate: {{count: true, sum: [price], items: {{limit: 5}}}}
  deadLetter: {{topic: {dead_letter}}}
"#,
        bootstrap = env.kafka_bootstrap
    )
}

/// After every `every`-th message, a bad one (each payload unique).
fn with_bad(
    messages: Vec<Raw>,
    every: usize,
    bad: impl Fn(usize) -> Raw,
) -> (Vec<Raw>, BTreeSet<Vec<u8>>) {
    let mut out = Vec::new();
    let mut payloads = BTreeSet::new();
    for (i, message) in messages.into_iter().enumerate() {
        out.push(message);
        if i % every == every - 1 {
            let bad = bad(i);
            payloads.insert(bad.1.clone().unwrap_or_default());
            out.push(bad);
        }
    }
    (out, payloads)
}

/// Produces `messages` in chunks while the projector is killed -9 at seeded
/// moments, then waits until it applied them all.
async fn produce_under_kills(projector: &mut Projector, topic: &str, messages: &[Raw], seed: u64) {
    let producing = {
        let (topic, messages) = (topic.to_string(), messages.to_vec());
        tokio::spawn(async move {
            for chunk in messages.chunks(200) {
                kafka::produce_raw(TestEnv::get(), &topic, chunk).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let mut state = seed | 1;
    for _ in 0..8 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        tokio::time::sleep(Duration::from_millis(150 + state % 400)).await;
        projector.crash_and_restart();
    }
    producing.await.expect("producer task");
    projector
        .wait_applied(messages.len() as i64, Duration::from_secs(120))
        .await;
}

/// Every row, lookups and scans, equals `want`; users without a row are 404.
async fn assert_view(projector: &Projector, all_users: &[String], want: &Reference) {
    let got = projector.rows(all_users).await;
    assert_eq!(&got, want, "rows by lookup\n{}", projector.logs());
    for group in ["cheap", "affordable", "expensive"] {
        let mut scanned = BTreeMap::new();
        let mut after: Option<String> = None;
        loop {
            let cursor = after
                .as_ref()
                .map(|a| format!("&after={a}"))
                .unwrap_or_default();
            let (status, page) = projector
                .get(&format!("/v1/groups/{group}/rows?limit=7{cursor}"))
                .await
                .expect("scan answers");
            assert_eq!(status, 200, "{page}");
            for row in page["rows"].as_array().expect("rows") {
                let key = row["key"].as_str().expect("key").to_string();
                scanned.insert(key, row_totals(row));
            }
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_string()),
                None => break,
            }
        }
        let in_group: BTreeMap<String, _> = want
            .iter()
            .filter(|(_, groups)| groups.contains_key(group))
            .map(|(k, g)| (k.clone(), g.clone()))
            .collect();
        assert_eq!(scanned, in_group, "scan of {group}");
    }
}

/// The dead-letter topic holds each bad payload once, with `reason`.
fn assert_letters(env: &TestEnv, topic: &str, bad: &BTreeSet<Vec<u8>>, reason: &str) {
    let letters = kafka::read_topic(env, topic);
    let mut seen = BTreeSet::new();
    for letter in &letters {
        assert_eq!(kafka::header(letter, "matview.reason"), reason);
        let payload = letter.payload().unwrap_or_default().to_vec();
        assert!(
            bad.contains(&payload),
            "a letter for a message never sent bad"
        );
        assert!(seen.insert(payload), "a dead letter twice");
    }
    assert_eq!(seen.len(), bad.len(), "every bad message is a dead letter");
}

#[tokio::test]
async fn upsert_changelog_under_kill_9_ends_in_the_latest_state_of_every_key() {
    let env = TestEnv::with_kafka();
    let topic = kafka::create_topic(env, "orders-table", 3).await;
    let dead_letter = kafka::create_topic(env, "orders-table-dlq", 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let view = dir.path().join("view.yaml");
    let name = unique_name("upsert");
    std::fs::write(&view, upsert_view(env, &name, &topic, &dead_letter)).expect("write view");

    let changes = changelog(0x7ab1e5, 300, 40, 4000);
    let messages = upsert_messages(&changes)
        .into_iter()
        .map(|(k, v)| (Some(k), v))
        .collect();
    // A value without a key cannot say which entity it replaces.
    let (messages, bad) = with_bad(messages, 97, |i| {
        (
            None,
            Some(format!(r#"{{"orderId":"keyless-{i}","userId":"u-1","items":[]}}"#).into_bytes()),
        )
    });
    let mut projector = Projector::start(&view, 0, &dir.path().join("data"), dir.path());
    produce_under_kills(&mut projector, &topic, &messages, 0x5eed).await;

    assert_view(&projector, &users(&changes), &expected(&changes)).await;
    assert_letters(env, &dead_letter, &bad, "missing-key");
}

#[tokio::test]
async fn debezium_changelogs_with_and_without_schemas_under_kill_9_end_exact() {
    let env = TestEnv::with_kafka();
    let changes = changelog(0xdeb2, 250, 30, 2500);
    let want = expected_rows(&changes);
    let everyone = users(&changes);
    let mut runs = Vec::new();
    for schemas in [false, true] {
        let topic = kafka::create_topic(env, "shop.public.orders", 3).await;
        let dead_letter = kafka::create_topic(env, "cdc-dlq", 1).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let view = dir.path().join("view.yaml");
        let name = unique_name("cdc");
        std::fs::write(&view, debezium_view(env, &name, &topic, &dead_letter)).expect("write view");
        let messages = debezium_messages(&changes, schemas)
            .into_iter()
            .map(|(k, v)| (Some(k), v))
            .collect();
        // An update without the row image it needs.
        let (messages, bad) = with_bad(messages, 89, |i| {
            let event = format!(r#"{{"before":null,"after":null,"op":"u","ts_ms":{i}}}"#);
            (
                Some(r#"{"id":"o-0"}"#.to_string()),
                Some(event.into_bytes()),
            )
        });
        runs.push((topic, dead_letter, dir, view, messages, bad, schemas));
    }
    let checks = runs
        .iter()
        .map(|(topic, dead_letter, dir, view, messages, bad, schemas)| {
            let (want, everyone) = (&want, &everyone);
            async move {
                let mut projector = Projector::start(view, 0, &dir.path().join("data"), dir.path());
                produce_under_kills(
                    &mut projector,
                    topic,
                    messages,
                    0xc0de + u64::from(*schemas),
                )
                .await;
                assert_view(&projector, everyone, want).await;
                assert_letters(env, dead_letter, bad, "bad-envelope");
            }
        });
    futures::future::join_all(checks).await;
}
