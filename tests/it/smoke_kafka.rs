//! The broker is a real Apache Kafka: topics, keyed produce, consumer groups,
//! committed offsets.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::support::{TestEnv, kafka, unique_name};

const MESSAGES: usize = 1_000;
const PARTITIONS: i32 = 3;

#[tokio::test]
async fn produce_consume_commit_and_read_committed_offsets() {
    let env = TestEnv::with_kafka();
    let topic = kafka::create_topic(env, "smoke", PARTITIONS).await;

    let producer: FutureProducer = kafka::client_config(env)
        .set("linger.ms", "5")
        .create()
        .expect("cannot create producer");
    let sends = (0..MESSAGES).map(|i| {
        let key = format!("user-{}", i % 37);
        let payload = format!("{{\"seq\":{i}}}");
        let producer = producer.clone();
        let topic = topic.clone();
        async move {
            let record = FutureRecord::to(&topic).key(&key).payload(&payload);
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map(|delivery| (key, delivery.partition))
                .map_err(|(e, _)| e)
        }
    });
    let mut partition_of_key: HashMap<String, i32> = HashMap::new();
    for sent in join_all(sends).await {
        let (key, partition) = sent.expect("a produce failed");
        let first = *partition_of_key.entry(key.clone()).or_insert(partition);
        assert_eq!(first, partition, "key {key} landed in two partitions");
    }

    let group = unique_name("smoke-group");
    let consumer: BaseConsumer = kafka::client_config(env)
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("cannot create consumer");
    consumer.subscribe(&[&topic]).expect("cannot subscribe");

    let mut seen = vec![false; MESSAGES];
    let mut next_offset: BTreeMap<i32, i64> = BTreeMap::new();
    let mut received = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while received < MESSAGES {
        assert!(
            std::time::Instant::now() < deadline,
            "received only {received} of {MESSAGES} messages within 60 s"
        );
        let Some(result) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let msg = result.expect("consume error");
        let payload: serde_json::Value =
            serde_json::from_slice(msg.payload().expect("empty payload")).expect("not JSON");
        let seq = payload["seq"].as_u64().expect("no seq") as usize;
        assert!(!seen[seq], "message {seq} delivered twice");
        seen[seq] = true;
        let key = std::str::from_utf8(msg.key().expect("no key")).expect("key not UTF-8");
        assert_eq!(partition_of_key[key], msg.partition());
        next_offset.insert(msg.partition(), msg.offset() + 1);
        received += 1;
    }
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit failed");
    drop(consumer);

    // A fresh member of the same group reads the committed offsets back.
    let reader: BaseConsumer = kafka::client_config(env)
        .set("group.id", &group)
        .create()
        .expect("cannot create reader");
    let mut wanted = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        wanted.add_partition(&topic, p);
    }
    let committed = reader
        .committed_offsets(wanted, Duration::from_secs(10))
        .expect("cannot read committed offsets");
    let mut total = 0;
    for p in 0..PARTITIONS {
        let (low, high) = reader
            .fetch_watermarks(&topic, p, Duration::from_secs(10))
            .expect("cannot fetch watermarks");
        let element = committed
            .find_partition(&topic, p)
            .expect("partition missing from committed offsets");
        let offset = match element.offset() {
            Offset::Offset(o) => o,
            Offset::Invalid if high == low => 0,
            other => panic!("partition {p}: no committed offset ({other:?})"),
        };
        assert_eq!(
            offset, high,
            "partition {p}: committed offset != high watermark"
        );
        assert_eq!(offset, next_offset.get(&p).copied().unwrap_or(0));
        total += offset;
    }
    assert_eq!(total as usize, MESSAGES);
    assert!(
        next_offset.len() > 1,
        "37 keys over {PARTITIONS} partitions should use more than one partition"
    );
}
