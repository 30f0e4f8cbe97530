//! Kafka helpers for tests: unique topics on the test broker.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use super::{TestEnv, unique_name};

/// Client properties that point at the test broker.
pub fn client_config(env: &TestEnv) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &env.kafka_bootstrap);
    config
}

pub fn admin(env: &TestEnv) -> AdminClient<DefaultClientContext> {
    client_config(env)
        .create()
        .expect("cannot create a Kafka admin client")
}

/// Creates a topic with a unique name and `partitions` partitions; returns its name.
pub async fn create_topic(env: &TestEnv, prefix: &str, partitions: i32) -> String {
    create_topic_at(&env.kafka_bootstrap, prefix, partitions).await
}

/// [`create_topic`] on the broker at `servers`.
pub async fn create_topic_at(servers: &str, prefix: &str, partitions: i32) -> String {
    create_topic_configured(servers, prefix, partitions, &[]).await
}

/// A new topic with these topic configs (`cleanup.policy`, `segment.ms`, …).
pub async fn create_topic_configured(
    servers: &str,
    prefix: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> String {
    create_topic_replicated(servers, prefix, partitions, 1, configs).await
}

/// A new topic with `replication` replicas of each partition.
pub async fn create_topic_replicated(
    servers: &str,
    prefix: &str,
    partitions: i32,
    replication: i32,
    configs: &[(&str, &str)],
) -> String {
    let name = unique_name(prefix);
    let mut topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(replication));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", servers);
    let admin: AdminClient<DefaultClientContext> =
        config.create().expect("cannot create a Kafka admin client");
    let results = admin
        .create_topics([&topic], &options)
        .await
        .expect("the create-topics request failed");
    for result in results {
        if let Err((topic, code)) = result {
            panic!("cannot create topic {topic}: {code}");
        }
    }
    name
}

/// A message's header as text; panics naming it when it is missing.
pub fn header(message: &impl rdkafka::message::Message, name: &str) -> String {
    use rdkafka::message::Headers;
    message
        .headers()
        .and_then(|h| h.iter().find(|x| x.key == name))
        .and_then(|x| x.value.map(|v| String::from_utf8_lossy(v).into_owned()))
        .unwrap_or_else(|| panic!("message without header {name}"))
}

/// Every message of `topic` from its start to its end as of this call, in
/// partition and offset order. Panics if the broker does not hand them over
/// within a minute.
pub fn read_topic(env: &TestEnv, topic: &str) -> Vec<rdkafka::message::OwnedMessage> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = client_config(env)
        .set("group.id", unique_name("topic-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("cannot create a Kafka consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .expect("topic metadata");
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut remaining = std::collections::BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(30))
            .expect("watermarks");
        if low < high {
            remaining.insert(p, high);
            assignment
                .add_partition_offset(topic, p, Offset::Offset(low))
                .expect("assignment");
        }
    }
    let mut messages = Vec::new();
    if remaining.is_empty() {
        return messages;
    }
    consumer.assign(&assignment).expect("assign");
    let highs = remaining.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !remaining.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{topic}: partitions {remaining:?} not read to their end within 60 s"
        );
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.expect("consume").detach();
        let (partition, offset) = (message.partition(), message.offset());
        if highs.get(&partition).is_some_and(|high| offset < *high) {
            messages.push(message);
        }
        if highs
            .get(&partition)
            .is_some_and(|high| offset + 1 >= *high)
        {
            remaining.remove(&partition);
        }
    }
    messages.sort_by_key(|m| (m.partition(), m.offset()));
    messages
}

/// Produces messages in order, waiting for every delivery.
pub async fn produce_raw<K: AsRef<[u8]>>(
    env: &TestEnv,
    topic: &str,
    messages: &[(Option<K>, Option<Vec<u8>>)],
) {
    produce_raw_at(&env.kafka_bootstrap, topic, messages).await;
}

/// [`produce_raw`] to the given Kafka.
pub async fn produce_raw_at<K: AsRef<[u8]>>(
    servers: &str,
    topic: &str,
    messages: &[(Option<K>, Option<Vec<u8>>)],
) {
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("linger.ms", "10")
        // One request in flight keeps a key's messages in order, retried
        // or not (the embedded broker has no idempotent producers).
        .set("max.in.flight.requests.per.connection", "1")
        .create()
        .expect("producer");
    let sends = messages.iter().map(|(key, value)| {
        let mut record = rdkafka::producer::FutureRecord::<[u8], Vec<u8>>::to(topic);
        if let Some(key) = key {
            record = record.key(key.as_ref());
        }
        if let Some(value) = value {
            record = record.payload(value);
        }
        producer.send(record, Duration::from_secs(30))
    });
    for sent in futures::future::join_all(sends).await {
        sent.map_err(|(e, _)| e).expect("produce failed");
    }
}
