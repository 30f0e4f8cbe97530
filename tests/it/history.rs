//! Rebuilds and the topic's history on the real broker: a view rebuilt from
//! a topic the broker really compacted equals the view built before
//! compaction; a rebuild from a topic whose beginning the broker deleted
//! (DeleteRecords) is held, said in a condition and an Event, and switches
//! only with the user's consent.

use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use matview::crd::{ConditionStatus, ConditionType, MaterializedView};
use matview::engine::revision;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;

use crate::support::changelog::{changelog, expected, upsert_messages, users};
use crate::support::operator::OperatorFixture;
use crate::support::orders::{Orders, order_events, orders};
use crate::support::projector::{Projector, produce};
use crate::support::{TestEnv, eventually, kafka, ready_with_rows, unique_name};

fn upsert_view(env: &TestEnv, topic: &str) -> String {
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
  aggregate: {{count: true, sum: [price]}}
  deadLetter: {{topic: {dlq}}}
"#,
        name = unique_name("compacted"),
        bootstrap = env.kafka_bootstrap,
        dlq = unique_name("compacted-dlq"),
    )
}

#[tokio::test]
async fn a_view_rebuilt_from_a_compacted_topic_equals_the_view_built_before() {
    let env = TestEnv::with_kafka();
    // Small segments and a low dirty ratio: the broker's cleaner compacts
    // within its backoff (15 s by default) once a segment rolls.
    let topic = kafka::create_topic_configured(
        &env.kafka_bootstrap,
        "customers",
        2,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "200"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let view = dir.path().join("view.yaml");
    std::fs::write(&view, upsert_view(env, &topic)).expect("write view");
    let changes = changelog(0xc0ac7, 40, 15, 1200);
    let messages: Vec<_> = upsert_messages(&changes)
        .into_iter()
        .map(|(k, v)| (Some(k), v))
        .collect();
    kafka::produce_raw(env, &topic, &messages).await;
    let want = expected(&changes);
    let everyone = users(&changes);

    let before = Projector::start(&view, 0, &dir.path().join("before"), dir.path());
    before
        .wait_applied(messages.len() as i64, Duration::from_secs(60))
        .await;
    let built_before = before.rows(&everyone).await;
    assert_eq!(built_before, want, "the view before compaction");
    drop(before);

    // The last message again (the view does not change) rolls the segment
    // the cleaner may then compact; until the topic holds under half.
    let last = messages.last().cloned().expect("a message");
    let half = messages.len() / 2;
    let mut produced = messages.len() as i64;
    eventually(
        "the broker compacts the topic",
        Duration::from_secs(120),
        || {
            let (topic, last) = (topic.clone(), last.clone());
            produced += 1;
            async move {
                kafka::produce_raw(TestEnv::get(), &topic, &[last]).await;
                let held = kafka::read_topic(TestEnv::get(), &topic).len();
                tokio::time::sleep(Duration::from_millis(500)).await;
                (held < half).then_some(())
            }
        },
    )
    .await;

    // Offsets keep counting through compaction: the end is every message produced.
    let rebuilt = Projector::start(&view, 0, &dir.path().join("rebuilt"), dir.path());
    rebuilt
        .wait_applied(produced, Duration::from_secs(60))
        .await;
    assert_eq!(
        rebuilt.rows(&everyone).await,
        built_before,
        "rebuilt after compaction"
    );
}

/// Deletes the records of partition 0 of `topic` below `offset`.
async fn delete_records(env: &TestEnv, topic: &str, offset: i64) {
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &env.kafka_bootstrap)
        .create()
        .expect("admin client");
    let mut below = TopicPartitionList::new();
    below
        .add_partition_offset(topic, 0, Offset::Offset(offset))
        .expect("partition");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let result = admin
        .delete_records(&below, &options)
        .await
        .expect("DeleteRecords");
    let low = result
        .find_partition(topic, 0)
        .expect("partition 0")
        .offset();
    assert_eq!(
        low,
        Offset::Offset(offset),
        "the log now starts at {offset}"
    );
}

fn condition(
    view: &MaterializedView,
    type_: ConditionType,
) -> Option<(ConditionStatus, String, String)> {
    let c = view
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status, c.reason.clone(), c.message.clone()))
}

#[tokio::test]
async fn a_rebuild_missing_deleted_history_is_held_until_the_user_consents() {
    let fixture = OperatorFixture::start("history", &[], true).await;
    let (env, client, ns) = (fixture.env, fixture.client.clone(), &fixture.ns);
    let topic = kafka::create_topic(env, "orders", 2).await;
    let values = orders(Orders {
        seed: 31,
        users: 20,
        count: 200,
    });
    produce(env, &topic, &order_events(&values)).await;
    let mut view = crate::support::stack::example_view("items-by-price", &topic);
    view.spec.source.kafka.bootstrap_servers = Some(env.kafka_bootstrap.clone());
    view.spec.shards = 1;
    view.spec.replicas_per_shard = 1;
    let views: Api<MaterializedView> = Api::namespaced(client.clone(), &ns.name);
    views
        .create(&PostParams::default(), &view)
        .await
        .expect("created");
    let rows = crate::support::projector::reference(&values).len() as i64;
    let first = eventually("Ready with every row", Duration::from_secs(120), || {
        let views = views.clone();
        async move {
            let v = views.get("items-by-price").await.ok()?;
            let s = v.status.as_ref()?;
            ready_with_rows(s, rows)
                .then(|| s.active_revision.clone())
                .flatten()
        }
    })
    .await;

    delete_records(env, &topic, 40).await;
    let patch = json!({"spec": {"classify": {"field": "price", "rules": [
        {"group": "cheap", "lt": 10}, {"group": "affordable", "gte": 10, "lte": 50}, {"group": "expensive", "gt": 50}]}}});
    let params = PatchParams::default();
    views
        .patch("items-by-price", &params, &Patch::Merge(&patch))
        .await
        .expect("patched");
    let second = revision(&views.get("items-by-price").await.expect("view").spec);
    assert_ne!(second, first);

    let held = eventually("the rebuild is held", Duration::from_secs(120), || {
        let views = views.clone();
        async move {
            let v = views.get("items-by-price").await.ok()?;
            let progressing = condition(&v, ConditionType::Progressing)?;
            (progressing.1 == "HistoryIncomplete").then_some(v)
        }
    })
    .await;
    let (status, reason, message) =
        condition(&held, ConditionType::HistoryComplete).expect("HistoryComplete");
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::False, "RetentionDeletedEvents")
    );
    assert!(
        message.contains(&topic)
            && message.contains("40 offsets")
            && message.contains("partitions 0 (40)"),
        "{message}"
    );
    let status = held.status.as_ref().expect("status");
    assert_eq!(
        status.active_revision.as_deref(),
        Some(first.as_str()),
        "the old revision serves"
    );
    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let warned = eventually("a HistoryIncomplete Event", Duration::from_secs(30), || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("HistoryIncomplete"))
        }
    })
    .await;
    assert_eq!(warned.type_.as_deref(), Some("Warning"));
    assert!(warned.message.unwrap_or_default().contains(&topic));

    let consent = json!({"spec": {"source": {"acceptIncompleteHistory": true}}});
    views
        .patch("items-by-price", &params, &Patch::Merge(&consent))
        .await
        .expect("consented");
    eventually("the switch, with consent", Duration::from_secs(120), || {
        let views = views.clone();
        let second = second.clone();
        async move {
            let v = views.get("items-by-price").await.ok()?;
            (v.status.as_ref()?.active_revision.as_deref() == Some(second.as_str())).then_some(())
        }
    })
    .await;
}
