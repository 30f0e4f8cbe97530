//! Hostile input through a running projector: a thousand malformed events
//! of eight kinds, made by this test from templates (not by the engine),
//! shuffled among a thousand valid orders. Every malformed one lands in the
//! dead-letter topic once, with the reason of its kind; every valid one is
//! applied; the projector never restarts.

use std::collections::BTreeMap;
use std::time::Duration;

use matview::workload::OrderGenerator;
use rdkafka::message::Message;
use serde_json::{Value, json};

use crate::support::projector::{Projector, Reference, metric, produce, reference, shop_view_yaml};
use crate::support::{TestEnv, kafka, unique_name};

/// Every reason an append view's event can be refused for (the envelope
/// reasons, missing-key, bad-envelope and truncate, are the tables test's);
/// `every_append_reason_is_a_kind_here` keeps the list whole.
const KINDS: [&str; 8] = [
    "not-json",
    "too-large",
    "missing-field",
    "wrong-type",
    "explode-not-array",
    "bad-number",
    "empty-key",
    "unaddressable-key",
];
const PER_KIND: usize = 125;
/// The view's `maxEventBytes` here, so that "too large" stays small.
const MAX_EVENT_BYTES: usize = 4096;

/// A small deterministic generator (xorshift), independent of the code under test.
struct Dice(u64);

impl Dice {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as usize
    }
}

/// One malformed event of `kind`, varied by the dice.
fn malformed(kind: &str, n: usize, dice: &mut Dice) -> Vec<u8> {
    let item = |price: Value| json!({"itemId": format!("bad{n}"), "name": "pen", "price": price});
    let order = |user: Value, items: Value| {
        json!({"orderId": format!("bad{n}"), "userId": user, "items": items}).to_string()
    };
    let text = match kind {
        "not-json" => {
            let whole = order(json!("u1"), json!([item(json!(1))]));
            // Cut before the closing brace: never a complete document.
            let cut = 1 + dice.next(whole.len() - 2);
            whole[..cut].to_string()
        }
        "too-large" => order(
            json!("u1"),
            json!([{"itemId": format!("bad{n}"), "name": "x".repeat(MAX_EVENT_BYTES + dice.next(500)), "price": 1}]),
        ),
        "missing-field" => order(
            json!("u1"),
            json!([{"itemId": format!("bad{n}"), "name": "pen"}]),
        ),
        "wrong-type" => {
            let price = [
                json!("cheap"),
                json!(true),
                json!({"amount": 1}),
                json!([1]),
            ];
            order(json!("u1"), json!([item(price[dice.next(4)].clone())]))
        }
        "explode-not-array" => {
            let items = [json!("none"), json!(3), json!({"itemId": "x"}), json!(true)];
            order(json!("u1"), items[dice.next(4)].clone())
        }
        "bad-number" => {
            let price = [
                "1e400",
                "-1e400",
                "0.1234567891",
                "1234567890123456789012345678901234567890",
            ];
            format!(
                r#"{{"orderId":"bad{n}","userId":"u1","items":[{{"itemId":"bad{n}","name":"pen","price":{}}}]}}"#,
                price[dice.next(4)]
            )
        }
        "empty-key" => order(json!(""), json!([item(json!(1))])),
        "unaddressable-key" => order(json!([".", ".."][dice.next(2)]), json!([item(json!(1))])),
        other => panic!("no template for {other}"),
    };
    text.into_bytes()
}

#[tokio::test]
async fn a_thousand_malformed_events_of_eight_kinds_are_dead_lettered_once_and_the_rest_applied() {
    let env = TestEnv::with_kafka();
    let topic = kafka::create_topic(env, "hostile", 1).await;
    let dead_letter = kafka::create_topic(env, "hostile-dlq", 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let view_file = dir.path().join("view.yaml");
    let yaml = shop_view_yaml(env, &unique_name("hostile"), &topic, &dead_letter, 1).replace(
        "  source:\n",
        &format!("  source:\n    maxEventBytes: {MAX_EVENT_BYTES}\n"),
    );
    std::fs::write(&view_file, yaml).expect("write view");

    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    let mut generator = OrderGenerator::new(77, 60);
    let valid: Vec<Value> = (0..1000).map(|_| generator.next_order()).collect();
    // (payload, the reason it must be dead-lettered with, if any)
    let mut sequence: Vec<(Vec<u8>, Option<&str>)> = valid
        .iter()
        .map(|o| (o.to_string().into_bytes(), None))
        .collect();
    for kind in KINDS {
        for n in 0..PER_KIND {
            sequence.push((malformed(kind, sequence.len() + n, &mut dice), Some(kind)));
        }
    }
    for i in (1..sequence.len()).rev() {
        let j = dice.next(i + 1);
        sequence.swap(i, j);
    }
    let events: Vec<(String, Vec<u8>)> = sequence
        .iter()
        .enumerate()
        .map(|(i, (payload, _))| (format!("e{i}"), payload.clone()))
        .collect();
    produce(env, &topic, &events).await;

    let mut projector = Projector::start(&view_file, 0, &dir.path().join("data"), dir.path());
    projector
        .wait_applied(events.len() as i64, Duration::from_secs(120))
        .await;
    assert!(projector.is_running(), "no restart:\n{}", projector.logs());

    // Every valid order applied, as computed without the engine.
    let expected: Reference = reference(&valid);
    assert_eq!(projector.rows(expected.keys()).await, expected);

    // Every malformed event once in the dead-letter topic, with its reason.
    let mut got: BTreeMap<i64, String> = BTreeMap::new();
    let letters = kafka::read_topic(env, &dead_letter);
    for m in &letters {
        let header = |name: &str| kafka::header(m, name);
        let offset: i64 = header("matview.source.offset").parse().expect("offset");
        assert_eq!(
            m.payload().map(<[u8]>::to_vec),
            Some(sequence[offset as usize].0.clone()),
            "payload kept as sent"
        );
        assert!(!header("matview.error").is_empty());
        got.insert(offset, header("matview.reason"));
    }
    let expected_letters: BTreeMap<i64, String> = sequence
        .iter()
        .enumerate()
        .filter_map(|(i, (_, reason))| reason.map(|r| (i as i64, r.to_string())))
        .collect();
    assert_eq!(got, expected_letters);
    assert_eq!(
        letters.len(),
        expected_letters.len(),
        "each dead letter once"
    );

    let text = projector.metrics().await;
    for kind in KINDS {
        let series = format!("matview_dead_lettered_total{{reason=\"{kind}\"}}");
        assert_eq!(metric(&text, &series), PER_KIND as f64, "{series}");
    }
    assert!(projector.is_running(), "no restart:\n{}", projector.logs());
}

#[test]
fn every_append_reason_is_a_kind_here() {
    // The envelope reasons are the tables test's; the encoding reasons the
    // formats test's (they need a registry).
    let envelope_only = [
        "missing-key",
        "bad-envelope",
        "truncate",
        "bad-encoding",
        "unknown-schema",
    ];
    let append: Vec<&str> = matview::engine::EventError::REASONS
        .into_iter()
        .filter(|r| !envelope_only.contains(r))
        .collect();
    assert_eq!(append, KINDS);
}
