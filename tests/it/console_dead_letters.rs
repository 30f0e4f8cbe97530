//! Dead letters, through the gateway and in the console: `matview dev` on
//! the test broker reads a topic with good orders and malformed events made
//! to fail in known ways (one is a script tag). The gateway lists each
//! letter once with the reason it was made for and its source position (as
//! Kafka acknowledged the produce); the page lists them all, the hostile
//! payload as text (checked in the DOM), and charts them per reason.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

use crate::console::{browse, shots_dir};
use crate::dev::{Broker, start_dev};
use crate::support::projector::shop_view_yaml;
use crate::support::{TestEnv, eventually, kafka, unique_name};

const HOSTILE: &str =
    r#"<script>window.__pwned = true</script><img src="x" onerror="window.__pwned = true">"#;

/// Malformed events and the reason each must be dead-lettered with, by the
/// view's spec (records explode `/items`, the row key is `^/userId`).
fn malformed() -> Vec<(&'static str, String)> {
    let mut events = vec![
        ("not-json", HOSTILE.to_string()),
        ("not-json", "{\"orderId\": \"cut-short\", ".to_string()),
        (
            "missing-field",
            json!({"orderId": "no-user", "items": [{"itemId": "i", "name": "pen", "price": 1}]})
                .to_string(),
        ),
        (
            "explode-not-array",
            json!({"orderId": "o", "userId": "u1", "items": "pen"}).to_string(),
        ),
        (
            "empty-key",
            json!({"orderId": "o", "userId": "", "items": [{"itemId": "i", "name": "pen", "price": 1}]})
                .to_string(),
        ),
    ];
    // A long event: shown cut, its length said.
    let long = "x".repeat(5_000);
    events.push(("not-json", long));
    events
}

#[tokio::test]
async fn dead_letters_are_listed_with_their_reasons_and_payloads_stay_text() {
    let env = TestEnv::with_kafka();
    let work = tempfile::tempdir().expect("tempdir");
    let topic = kafka::create_topic(env, "dl-orders", 2).await;
    let view = work.path().join("view.yaml");
    let dead_letter_topic = unique_name("dl-letters");
    std::fs::write(
        &view,
        shop_view_yaml(env, "dl-shop", &topic, &dead_letter_topic, 1),
    )
    .expect("write view");

    let producer: FutureProducer = kafka::client_config(env).create().expect("producer");
    let mut expected: BTreeMap<(i32, i64), (&str, String)> = BTreeMap::new();
    let good = json!({"orderId": "good", "userId": "u1",
        "items": [{"itemId": "i1", "name": "pen", "price": 1.5}]})
    .to_string();
    for (i, (reason, payload)) in malformed().into_iter().enumerate() {
        let key = format!("k{i}");
        for bytes in [good.as_str(), payload.as_str()] {
            let delivered = producer
                .send(
                    FutureRecord::to(&topic).key(&key).payload(bytes),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| e)
                .expect("produced");
            if bytes == payload {
                expected.insert(
                    (delivered.partition, delivered.offset),
                    (reason, payload.clone()),
                );
            }
        }
    }

    let view_arg = view.display().to_string();
    let args = ["-f", view_arg.as_str(), "--demo-rate", "0"];
    let log = work.path().join("dev.log");
    let dev = start_dev(
        &Broker::At(env.kafka_bootstrap.clone()),
        &args,
        &work.path().join("data"),
        &log,
    );
    let url = format!(
        "{}/v1/namespaces/tests/views/dl-shop/dead-letters?limit=50",
        dev.url
    );
    let letters = eventually(
        "every malformed event in the gateway's dead letters",
        Duration::from_secs(90),
        || async {
            let body: Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
            (body["letters"].as_array()?.len() == expected.len()).then_some(body)
        },
    )
    .await;
    assert_eq!(letters["topic"], dead_letter_topic.as_str());
    let mut seen = BTreeMap::new();
    for letter in letters["letters"].as_array().expect("letters") {
        let source = &letter["source"];
        assert_eq!(source["topic"], topic.as_str(), "{letter}");
        let at = (
            source["partition"].as_i64().expect("partition") as i32,
            source["offset"].as_i64().expect("offset"),
        );
        let value = &letter["value"];
        let shown = value["text"].as_str().expect("text").to_string();
        seen.insert(at, (letter["reason"].as_str().expect("reason"), shown));
        let (_, payload) = &expected[&at];
        assert_eq!(value["bytes"], payload.len(), "{letter}");
        assert_eq!(
            value["truncated"],
            payload.len() > 1024,
            "values over 1 KiB are cut: {letter}"
        );
    }
    let cut = |p: &str| p.chars().take(1024).collect::<String>();
    let expected_shown: BTreeMap<(i32, i64), (&str, String)> = expected
        .iter()
        .map(|(at, (reason, payload))| (*at, (*reason, cut(payload))))
        .collect();
    assert_eq!(seen, expected_shown, "each letter once, with its reason");
    let mut per_reason: BTreeMap<&str, u64> = BTreeMap::new();
    for (reason, _) in expected.values() {
        *per_reason.entry(reason).or_default() += 1;
    }
    assert_eq!(letters["byReason"], json!(per_reason));

    let shown = browse(
        "dead_letters.mjs",
        &[
            format!("{}/", dev.url),
            expected.len().to_string(),
            shots_dir().display().to_string(),
        ],
        &log,
    )
    .await;
    assert_eq!(shown["problems"], json!([]), "{shown}");
    assert_eq!(shown["pwned"], false, "a payload ran: {shown}");
    assert_eq!(
        shown["elementsInPayloads"], 0,
        "a payload became markup: {shown}"
    );
    let rows = shown["rows"].as_array().expect("rows");
    let mut page_reasons: Vec<&str> = rows
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or_default())
        .collect();
    page_reasons.sort_unstable();
    let mut want_reasons: Vec<&str> = expected.values().map(|(r, _)| *r).collect();
    want_reasons.sort_unstable();
    assert_eq!(page_reasons, want_reasons, "{shown}");
    assert!(
        rows.iter().any(|r| r["event"] == HOSTILE),
        "the script tag is shown as its text: {shown}"
    );
    assert_eq!(
        shown["charted"],
        json!(per_reason),
        "the last five minutes' letters per reason: {shown}"
    );
    for reason in per_reason.keys() {
        assert!(
            shown["legend"]
                .as_str()
                .unwrap_or_default()
                .contains(reason),
            "the chart has a line for {reason}: {shown}"
        );
    }
}
