//! The dead-letter topic's leader killed while malformed events arrive: each
//! malformed event is in the dead-letter topic exactly once once the node is
//! back, and the good orders around them are all in the view.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::scenario::{Scenario, VIEW};

/// Letters in `topic` per (source partition, source offset), read to its end.
fn letters(servers: &str, topic: &str) -> BTreeMap<(i32, i64), u32> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", "faults-dead-letter-check")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .expect("metadata");
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut ends = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for &p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(30))
            .expect("watermarks");
        if high > low {
            ends.insert(p, high);
            assignment
                .add_partition_offset(topic, p, Offset::Offset(low))
                .expect("assignment");
        }
    }
    let mut found = BTreeMap::new();
    if ends.is_empty() {
        return found;
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() {
        assert!(
            Instant::now() < deadline,
            "could not read {topic} to its end"
        );
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.expect("a letter");
        let header = |name: &str| {
            message
                .headers()
                .and_then(|h| h.iter().find(|x| x.key == name))
                .and_then(|x| x.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let at = (
            header("matview.source.partition").and_then(|p| p.parse().ok()),
            header("matview.source.offset").and_then(|o| o.parse().ok()),
        );
        if let (Some(p), Some(o)) = at {
            *found.entry((p, o)).or_insert(0) += 1;
        }
        if ends
            .get(&message.partition())
            .is_some_and(|h| message.offset() + 1 >= *h)
        {
            ends.remove(&message.partition());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letter_topics_leader_lost_while_bad_events_arrive_loses_and_doubles_none() {
    let _one = crate::ONE_AT_A_TIME.lock().await;
    let sc = Scenario::start("dlq", 1).await;
    let servers = sc.cluster.bootstrap.clone();
    let view = sc.st.views.get(VIEW).await.expect("the view");
    let dead_letter_topic = matview::api::view::dead_letter_topic(&view);
    let leader = tokio::task::block_in_place(|| sc.cluster.leader(&dead_letter_topic, 0))
        .expect("the dead-letter topic has a leader");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "180000")
        .create()
        .expect("producer");
    let mut sent = Vec::new();
    let mut send_bad = async |i: usize| {
        let payload = format!("not json {i}");
        let delivered = producer
            .send(
                FutureRecord::to(&sc.topic).key("bad").payload(&payload),
                Duration::from_secs(180),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("a bad event acknowledged");
        sent.push((delivered.partition, delivered.offset));
    };
    for i in 0..10 {
        send_bad(i).await;
    }
    sc.fault_begins();
    tokio::task::block_in_place(|| sc.cluster.kill(leader));
    let killed = Instant::now();
    for i in 10..30 {
        send_bad(i).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sc.status_says(
        "UnderReplicated",
        &[&dead_letter_topic, &format!("node {leader}")],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(killed.elapsed())).await;
    tokio::task::block_in_place(|| sc.cluster.start_node(leader));
    sc.fault_ends();
    let _cluster = sc.finish("the dead-letter topic's leader killed").await;

    let expected: BTreeMap<(i32, i64), u32> = sent.iter().map(|&at| (at, 1)).collect();
    let found = crate::support::eventually(
        "every bad event in the dead-letter topic",
        Duration::from_secs(120),
        || async {
            let found = tokio::task::block_in_place(|| letters(&servers, &dead_letter_topic));
            (found.len() >= expected.len()).then_some(found)
        },
    )
    .await;
    assert_eq!(found, expected, "each bad event exactly once");
}
