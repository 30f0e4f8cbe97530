//! `matview dev` with the Avro example: its built-in schema registry takes
//! the registrations of confluent-kafka's Avro serializer (an independent
//! producer; the order's item type is a reference to another subject), and
//! the view built from what that serializer framed is exact. With demo
//! orders on, Avro orders flow by themselves.

use std::time::Duration;

use serde_json::Value;

use crate::dev::{Broker, start_dev};
use crate::support::formats::{AvroMessage, avro_order, serialized};
use crate::support::orders::{Orders, orders};
use crate::support::projector::{reference, row_totals};
use crate::support::{TestEnv, eventually, kafka, unique_name};

const VIEW_PATH: &str = "/v1/namespaces/shop/views/items-by-price-avro";

/// The Avro example on a topic of this test's own.
fn example_on(topic: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let text = include_str!("../../examples/items-by-price-avro.yaml");
    assert!(text.contains("topic: orders-avro\n"), "{text}");
    let file = dir.join(format!("{topic}.yaml"));
    std::fs::write(
        &file,
        text.replace("topic: orders-avro\n", &format!("topic: {topic}\n")),
    )
    .expect("write view");
    file
}

async fn get(url: &str) -> Option<(u16, Value)> {
    let r = reqwest::get(url).await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.unwrap_or(Value::Null)))
}

async fn serving(dev_url: &str) {
    let views = format!("{dev_url}/v1/views");
    eventually("the Avro view serves", Duration::from_secs(90), || async {
        let (_, list) = get(&views).await?;
        let all = list["views"].as_array()?;
        all.iter().all(|v| v["serving"] == true).then_some(())
    })
    .await;
}

#[tokio::test]
async fn dev_mode_runs_the_avro_example_through_its_built_in_registry() {
    let env = TestEnv::with_registry();
    let work = tempfile::tempdir().expect("tempdir");
    let topic = unique_name("dev-avro");
    let view = example_on(&topic, work.path());
    let kafka_at = Broker::At(env.kafka_bootstrap.clone());
    let args = ["-f", view.to_str().expect("utf-8"), "--demo-rate", "0"];
    let data = work.path().join("data");
    let mut dev = start_dev(&kafka_at, &args, &data, &work.path().join("dev.log"));
    serving(&dev.url).await;

    let orders = orders(Orders {
        seed: 0xde7a,
        users: 15,
        count: 120,
    });
    let messages: Vec<AvroMessage> = orders.iter().map(|o| avro_order(o, "v1")).collect();
    let registry = format!("{}/schema-registry", dev.url);
    let framed = serialized(&env.serdes_python, &registry, &topic, &messages);
    kafka::produce_raw(env, &topic, &framed).await;
    for (user, groups) in &reference(&orders) {
        let url = format!("{}{VIEW_PATH}/rows/{user}", dev.url);
        eventually(&format!("row {user}"), Duration::from_secs(90), || async {
            let (status, row) = get(&url).await?;
            (status == 200 && row_totals(&row) == *groups).then_some(())
        })
        .await;
    }
    // The registry answers in the API's own words.
    let (status, subjects) = get(&format!("{registry}/subjects"))
        .await
        .expect("subjects");
    assert_eq!(status, 200, "{subjects}");
    assert!(
        subjects.as_array().is_some_and(|s| s
            .iter()
            .any(|s| *s == Value::String(format!("{topic}-value")))),
        "{subjects}"
    );
    let (status, missing) = get(&format!("{registry}/schemas/ids/9999"))
        .await
        .expect("answer");
    assert_eq!(
        (status, &missing["error_code"]),
        (404, &Value::from(40403)),
        "{missing}"
    );
    let (status, _) = dev.terminate();
    assert!(status.success(), "{}", dev.log());

    // Demo orders on: Avro orders registered and written by matview dev
    // itself fill the view.
    let demo_topic = unique_name("dev-avro-demo");
    let demo_view = example_on(&demo_topic, work.path());
    let args = [
        "-f",
        demo_view.to_str().expect("utf-8"),
        "--demo-rate",
        "40",
    ];
    let dev = start_dev(&kafka_at, &args, &data, &work.path().join("demo.log"));
    serving(&dev.url).await;
    let page = format!("{}{VIEW_PATH}/groups/affordable/rows", dev.url);
    eventually("demo rows", Duration::from_secs(90), || async {
        let (status, body) = get(&page).await?;
        (status == 200 && body["rows"].as_array().is_some_and(|r| !r.is_empty())).then_some(())
    })
    .await;
}
