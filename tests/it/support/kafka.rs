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
    let name = unique_name(prefix);
    let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin(env)
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
