//! The projector against the real broker: expected views computed without
//! the engine, dead letters, restarts, shards, SIGTERM and kill -9.

use std::collections::BTreeMap;
use std::time::Duration;

use matview::crd::MaterializedView;
use matview::engine::{RowView, compile};
use rdkafka::message::Message;
use serde_json::{Value, json};

use crate::support::orders::{Orders, order_events, orders};
use crate::support::projector::{
    Projector, metric, produce, reference, row_totals, shop_view_yaml,
};
use crate::support::{TestEnv, kafka, unique_name};

struct Setup {
    topic: String,
    dead_letter: String,
    view_file: std::path::PathBuf,
    dir: tempfile::TempDir,
}

async fn setup(env: &TestEnv, partitions: i32, shards: u32) -> Setup {
    let topic = kafka::create_topic(env, "orders", partitions).await;
    let dead_letter = kafka::create_topic(env, "orders-dlq", 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let view_file = dir.path().join("view.yaml");
    let name = unique_name("shop");
    std::fs::write(
        &view_file,
        shop_view_yaml(env, &name, &topic, &dead_letter, shards),
    )
    .expect("write view");
    Setup {
        topic,
        dead_letter,
        view_file,
        dir,
    }
}

#[tokio::test]
async fn a_seeded_stream_becomes_the_expected_view() {
    let env = TestEnv::with_kafka();
    let s = setup(env, 3, 1).await;
    let values = orders(Orders {
        seed: 1,
        users: 40,
        count: 1500,
    });
    let events = order_events(&values);
    produce(env, &s.topic, &events).await;
    let projector = Projector::start(&s.view_file, 0, &s.dir.path().join("data"), s.dir.path());
    projector
        .wait_applied(events.len() as i64, Duration::from_secs(60))
        .await;

    let expected = reference(&values);
    assert_eq!(projector.rows(expected.keys()).await, expected);
    let (status, missing) = projector.get("/v1/rows/nobody").await.expect("reachable");
    assert_eq!(status, 404);
    assert_eq!(missing["title"], "no such row");
    let (status, ready) = projector.get("/readyz").await.expect("reachable");
    assert_eq!((status, &ready["status"]), (200, &json!("ready")));

    // Scan a group page by page: every user with an expensive item, once.
    let mut scanned = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/groups/expensive/rows?limit=7&after={a}"),
            None => "/v1/groups/expensive/rows?limit=7".into(),
        };
        let (status, page) = projector.get(&path).await.expect("reachable");
        assert_eq!(status, 200, "{page}");
        for row in page["rows"].as_array().expect("rows") {
            scanned.push(row["key"].as_str().expect("key").to_string());
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    let want: Vec<_> = expected
        .iter()
        .filter(|(_, g)| g.contains_key("expensive"))
        .map(|(u, _)| u.clone())
        .collect();
    assert_eq!(scanned, want);
    let (status, problem) = projector
        .get("/v1/groups/expensive/rows?limit=0")
        .await
        .expect("reachable");
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["title"], "bad limit");
    let (status, _) = projector
        .get("/v1/groups/nope/rows")
        .await
        .expect("reachable");
    assert_eq!(status, 404);

    let text = projector.metrics().await;
    assert_eq!(
        metric(&text, "matview_events_consumed_total"),
        events.len() as f64
    );
    let items: usize = values
        .iter()
        .map(|o| o["items"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(metric(&text, "matview_records_applied_total"), items as f64);
    assert_eq!(metric(&text, "matview_rows"), expected.len() as f64);
}

#[tokio::test]
async fn malformed_events_go_to_the_dead_letter_topic_with_the_reason() {
    let env = TestEnv::with_kafka();
    let s = setup(env, 1, 1).await;
    let good = |n: u32| json!({"orderId": format!("g{n}"), "userId": "u1", "items": [{"itemId": format!("g{n}"), "name": "pen", "price": 2}]});
    let oversized = json!({"orderId": "big", "userId": "u1", "items": [{"itemId": "big", "name": "x".repeat(1_100_000), "price": 1}]});
    let sequence: Vec<(Vec<u8>, Option<&str>)> = vec![
        (good(1).to_string().into_bytes(), None),
        (b"{this is not json".to_vec(), Some("not-json")),
        (good(2).to_string().into_bytes(), None),
        (json!({"orderId": "o", "userId": "u1", "items": [{"itemId": "m", "name": "pen"}]}).to_string().into_bytes(), Some("missing-field")),
        (json!({"orderId": "o", "userId": "u1", "items": [{"itemId": "t", "name": "pen", "price": "cheap"}]}).to_string().into_bytes(), Some("wrong-type")),
        (json!({"orderId": "o", "userId": "u1", "items": "none"}).to_string().into_bytes(), Some("explode-not-array")),
        (oversized.to_string().into_bytes(), Some("too-large")),
        (json!({"orderId": "e", "userId": "", "items": [{"itemId": "e", "name": "pen", "price": 1}]}).to_string().into_bytes(), Some("empty-key")),
        // Numbers: exact when the decimal holds them, refused when it cannot.
        (br#"{"orderId": "n1", "userId": "u2", "items": [{"itemId": "big", "name": "pen", "price": 12345678901234567890.123456789}]}"#.to_vec(), None),
        (br#"{"orderId": "n2", "userId": "u2", "items": [{"itemId": "huge", "name": "pen", "price": 1e400}]}"#.to_vec(), Some("bad-number")),
        (br#"{"orderId": "n3", "userId": "u2", "items": [{"itemId": "fine", "name": "pen", "price": 0.1234567891}]}"#.to_vec(), Some("bad-number")),
        (json!({"orderId": "dots", "userId": "..", "items": [{"itemId": "d", "name": "pen", "price": 1}]}).to_string().into_bytes(), Some("unaddressable-key")),
        (good(3).to_string().into_bytes(), None),
    ];
    // Keys a URL must encode: each is read back by key below.
    let awkward = ["a/b", "x y", "é?#%", "~", "...", "%2F"];
    let mut sequence = sequence;
    for (i, key) in awkward.iter().enumerate() {
        let event = json!({"orderId": format!("w{i}"), "userId": key, "items": [{"itemId": format!("w{i}"), "name": "pen", "price": 3}]});
        sequence.push((event.to_string().into_bytes(), None));
    }
    let events: Vec<(String, Vec<u8>)> = sequence
        .iter()
        .enumerate()
        .map(|(i, (b, _))| (format!("k{i}"), b.clone()))
        .collect();
    produce(env, &s.topic, &events).await;
    let projector = Projector::start(&s.view_file, 0, &s.dir.path().join("data"), s.dir.path());
    projector
        .wait_applied(events.len() as i64, Duration::from_secs(60))
        .await;

    let (_, row) = projector.get("/v1/rows/u1").await.expect("row");
    assert_eq!(
        row["groups"]["cheap"]["count"], 3,
        "the valid events around the bad ones: {row}"
    );
    // Served with every digit, as the sum and as the item's price.
    let text = projector.get_text("/v1/rows/u2").await.expect("row u2");
    for exact in [
        r#""sum":{"price":12345678901234567890.123456789}"#,
        r#""price":12345678901234567890.123456789"#,
    ] {
        assert!(text.contains(exact), "{exact} in {text}");
    }
    assert!(!text.contains("huge") && !text.contains("fine"), "{text}");
    for key in awkward {
        let encoded: String = key
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (status, row) = projector
            .get(&format!("/v1/rows/{encoded}"))
            .await
            .expect("row");
        assert_eq!(
            (status, &row["key"]),
            (200, &json!(key)),
            "{key} as {encoded}"
        );
    }

    let wanted: Vec<(i64, &str)> = sequence
        .iter()
        .enumerate()
        .filter_map(|(i, (_, r))| r.map(|r| (i as i64, r)))
        .collect();
    let mut got = Vec::new();
    for m in kafka::read_topic(env, &s.dead_letter) {
        let header = |name: &str| kafka::header(&m, name);
        assert_eq!(header("matview.source.topic"), s.topic);
        assert_eq!(header("matview.source.partition"), "0");
        let offset: i64 = header("matview.source.offset").parse().expect("offset");
        assert_eq!(
            m.payload().map(<[u8]>::to_vec),
            Some(sequence[offset as usize].0.clone()),
            "payload kept as sent"
        );
        assert!(!header("matview.error").is_empty());
        got.push((offset, header("matview.reason")));
    }
    let got: Vec<(i64, &str)> = got.iter().map(|(o, r)| (*o, r.as_str())).collect();
    assert_eq!(got, wanted);
    let text = projector.metrics().await;
    assert_eq!(
        metric(&text, "matview_dead_lettered_total{reason=\"not-json\"}"),
        1.0
    );
}

#[tokio::test]
async fn restart_resumes_from_the_store_and_sigterm_exits_cleanly() {
    let env = TestEnv::with_kafka();
    let s = setup(env, 2, 1).await;
    let first_values = orders(Orders {
        seed: 3,
        users: 20,
        count: 800,
    });
    let first = order_events(&first_values);
    produce(env, &s.topic, &first).await;
    let data = s.dir.path().join("data");
    let mut projector = Projector::start(&s.view_file, 0, &data, s.dir.path());
    projector
        .wait_applied(first.len() as i64, Duration::from_secs(60))
        .await;

    let (status, took) = projector.terminate();
    assert!(
        status.success(),
        "SIGTERM exit status {status:?}; log:\n{}",
        projector.logs()
    );
    assert!(took < Duration::from_secs(1), "SIGTERM took {took:?}");

    let all_values = orders(Orders {
        seed: 3,
        users: 20,
        count: 1300,
    });
    assert_eq!(
        &all_values[..800],
        &first_values[..],
        "same seed, same orders"
    );
    let second = order_events(&all_values[800..]);
    produce(env, &s.topic, &second).await;
    projector.restart();
    projector.wait_applied(1300, Duration::from_secs(60)).await;
    // Everything committed before the exit: the restarted process read only the new events.
    let text = projector.metrics().await;
    assert_eq!(
        metric(&text, "matview_events_consumed_total"),
        second.len() as f64
    );
    let expected = reference(&all_values);
    assert_eq!(projector.rows(expected.keys()).await, expected);

    // A store of another revision is refused, not mixed in.
    let other = s.dir.path().join("other.yaml");
    let text = std::fs::read_to_string(&s.view_file)
        .expect("view")
        .replace("lt: 5}", "lt: 6}");
    std::fs::write(&other, text).expect("write");
    drop(projector);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_matview"))
        .args(["projector", "--view"])
        .arg(&other)
        .args(["--shard", "0", "--data-dir"])
        .arg(&data)
        .args(["--listen", "127.0.0.1:0", "--log-format", "text"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to mix states"), "{stderr}");
}

#[tokio::test]
async fn two_shards_hold_their_partitions_and_merge_to_the_expected_view() {
    let env = TestEnv::with_kafka();
    let s = setup(env, 4, 2).await;
    let values = orders(Orders {
        seed: 5,
        users: 30,
        count: 1200,
    });
    let events = order_events(&values);
    produce(env, &s.topic, &events).await;
    let shard0 = Projector::start(&s.view_file, 0, &s.dir.path().join("data0"), s.dir.path());
    let shard1 = Projector::start(&s.view_file, 1, &s.dir.path().join("data1"), s.dir.path());
    for (shard, p) in [(0, &shard0), (1, &shard1)] {
        p.wait_readyz(
            &format!("shard {shard} ready"),
            Duration::from_secs(60),
            |_| true,
        )
        .await;
        let (_, positions) = p.get("/v1/positions").await.expect("positions");
        let parts: Vec<i64> = positions["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .map(|x| x["partition"].as_i64().unwrap_or(-1))
            .collect();
        assert_eq!(parts, if shard == 0 { [0, 2] } else { [1, 3] });
    }
    let text = std::fs::read_to_string(&s.view_file).expect("view");
    let view = compile(
        &serde_yaml_ng::from_str::<MaterializedView>(&text)
            .expect("view")
            .spec,
    )
    .expect("compiles");
    let expected = reference(&values);
    let mut merged = BTreeMap::new();
    let mut both_shards_hold_part_of_a_row = false;
    for user in expected.keys() {
        let mut parts = Vec::new();
        for p in [&shard0, &shard1] {
            if let Some((200, row)) = p.get(&format!("/v1/rows/{user}")).await {
                parts.push(serde_json::from_value::<RowView>(row).expect("row view"));
            }
        }
        both_shards_hold_part_of_a_row |= parts.len() == 2;
        let row = parts
            .into_iter()
            .reduce(|a, b| view.merge_views(a, b))
            .expect("some shard holds the user");
        merged.insert(
            user.clone(),
            row_totals(&serde_json::to_value(row).expect("json")),
        );
    }
    assert!(
        both_shards_hold_part_of_a_row,
        "keyed by order, a user's items should span shards"
    );
    assert_eq!(merged, expected);
}

#[tokio::test]
async fn kill_9_at_random_moments_loses_and_doubles_nothing() {
    let env = TestEnv::with_kafka();
    let s = setup(env, 3, 1).await;
    let values = orders(Orders {
        seed: 9,
        users: 25,
        count: 3000,
    });
    let orders = order_events(&values);
    // One malformed event (each unique) after every fifth order: their dead
    // letters must be in the topic once each, however the kills fall.
    let mut events = Vec::new();
    let mut malformed = BTreeMap::new();
    for (i, order) in orders.into_iter().enumerate() {
        events.push(order);
        if i % 5 == 4 {
            let payload = format!("{{not json {i}").into_bytes();
            malformed.insert(payload.clone(), 0usize);
            events.push((format!("bad-{i}"), payload));
        }
    }
    let mut projector = Projector::start(&s.view_file, 0, &s.dir.path().join("data"), s.dir.path());
    let topic = s.topic.clone();
    let producing = {
        let events = events.clone();
        tokio::spawn(async move {
            for chunk in events.chunks(150) {
                produce(TestEnv::get(), &topic, chunk).await;
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
        })
    };
    // Kill times from a seeded sequence: reproducible, spread over the run.
    let mut state: u64 = 0x5eed;
    for _ in 0..12 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        tokio::time::sleep(Duration::from_millis(150 + state % 400)).await;
        projector.crash_and_restart();
    }
    producing.await.expect("producer task");
    projector
        .wait_applied(events.len() as i64, Duration::from_secs(90))
        .await;
    let expected = reference(&values);
    assert_eq!(projector.rows(expected.keys()).await, expected);
    let letters = kafka::read_topic(env, &s.dead_letter);
    for letter in &letters {
        let payload = letter.payload().unwrap_or_default();
        let Some(count) = malformed.get_mut(payload) else {
            panic!("a letter for an event never sent: {payload:?}");
        };
        *count += 1;
    }
    let doubled: Vec<_> = malformed.values().filter(|n| **n > 1).collect();
    let missing = malformed.values().filter(|n| **n == 0).count();
    assert_eq!(
        (letters.len(), doubled.len(), missing),
        (malformed.len(), 0, 0),
        "dead letters: each malformed event once\n{}",
        projector.logs()
    );
}

/// Reads server-sent events until one of kind `rows` arrives; returns (id, data).
async fn next_rows_event(response: &mut reqwest::Response, buffer: &mut String) -> (u64, Value) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            };
            if field("event:").as_deref() == Some("rows") {
                let id = field("id:").and_then(|v| v.parse().ok()).expect("event id");
                let data = serde_json::from_str(&field("data:").expect("data")).expect("JSON data");
                return (id, data);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no rows event within 30 s"
        );
        match tokio::time::timeout(Duration::from_secs(30), response.chunk()).await {
            Ok(Ok(Some(bytes))) => buffer.push_str(&String::from_utf8_lossy(&bytes)),
            other => panic!("watch stream ended: {other:?}"),
        }
    }
}

#[tokio::test]
async fn watch_streams_row_changes_and_resumes_from_an_event_id() {
    let env = TestEnv::with_kafka();
    let s = setup(env, 1, 1).await;
    let projector = Projector::start(&s.view_file, 0, &s.dir.path().join("data"), s.dir.path());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !matches!(projector.get("/readyz").await, Some((200, _))) {
        assert!(
            std::time::Instant::now() < deadline,
            "not ready:\n{}",
            projector.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let order = |user: &str, item: &str, price: f64| {
        (item.to_string(), json!({"orderId": item, "userId": user, "items": [{"itemId": item, "name": "x", "price": price}]}).to_string().into_bytes())
    };
    let client = reqwest::Client::new();
    let mut stream = client
        .get(format!("{}/v1/watch", projector.base))
        .send()
        .await
        .expect("watch");
    assert_eq!(stream.status(), 200);
    let mut buffer = String::new();
    produce(env, &s.topic, &[order("u1", "i1", 70.0)]).await;
    let (first_id, first) = next_rows_event(&mut stream, &mut buffer).await;
    assert_eq!(first["rows"][0]["key"], "u1");
    assert_eq!(first["rows"][0]["groups"]["expensive"]["count"], 1);

    produce(env, &s.topic, &[order("u2", "i2", 1.0)]).await;
    let (second_id, second) = next_rows_event(&mut stream, &mut buffer).await;
    assert!(second_id > first_id);
    assert_eq!(second["rows"][0]["key"], "u2");
    drop(stream);

    // A client that saw only the first event resumes and gets the second.
    let mut resumed = client
        .get(format!("{}/v1/watch", projector.base))
        .header("Last-Event-ID", first_id.to_string())
        .send()
        .await
        .expect("resume");
    let mut buffer = String::new();
    let (replayed_id, replayed) = next_rows_event(&mut resumed, &mut buffer).await;
    assert_eq!(replayed_id, second_id);
    assert_eq!(replayed["rows"][0]["key"], "u2");

    let bad = client
        .get(format!("{}/v1/watch", projector.base))
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .expect("request");
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");
}
