//! Group scans through the gateway: pages equal to the independent view,
//! and pages served from the gateway's row cache that follow changes.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

use crate::support::kafka;
use crate::support::projector::{Reference, reference, row_totals};
use crate::support::stack::Stack;

/// Every group scanned in pages of 7 lists exactly the reference's users of
/// that group, each row whole (all groups), in key order, without repeats.
pub async fn check_scans(st: &Stack, view: &str, expected: &Reference, token: &str) {
    for group in GROUPS {
        let wanted: BTreeSet<&String> = expected
            .iter()
            .filter(|(_, g)| g.contains_key(group))
            .map(|(u, _)| u)
            .collect();
        let rows = scan_group(st, view, group, token)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut seen: Vec<String> = Vec::new();
        for row in &rows {
            let key = row["key"].as_str().expect("key").to_string();
            assert_eq!(row_totals(row), expected[&key], "{view} scan row {key}");
            seen.push(key);
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(seen, sorted, "{view}/{group}: in key order, no repeats");
        let seen: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(seen, wanted, "{view}/{group}: exactly the group's rows");
    }
}

const GROUPS: [&str; 3] = ["cheap", "affordable", "expensive"];

/// A group's rows as the gateway pages them (7 a page, cursor to cursor),
/// or why not.
async fn scan_group(
    st: &Stack,
    view: &str,
    group: &str,
    token: &str,
) -> Result<Vec<Value>, String> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!(
            "/v1/namespaces/{}/views/{view}/groups/{group}/rows?limit=7",
            st.ns.name
        );
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = st
            .gateway
            .get(&path, Some(token))
            .await
            .ok_or("no answer")?;
        if page.status != 200 {
            return Err(format!("{path}: {} {}", page.status, page.body));
        }
        rows.extend(page.body["rows"].as_array().into_iter().flatten().cloned());
        match page.body["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return Ok(rows),
        }
    }
}

/// The gateway's row cache hit count so far.
pub async fn cache_hits(st: &Stack) -> f64 {
    let text = reqwest::get(format!("{}/metrics", st.gateway.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    crate::support::projector::metric(&text, "matview_gateway_row_cache_hits_total")
}

/// Every group's rows as scanned in pages of 7: key → totals, or why not.
async fn scanned(st: &Stack, view: &str, token: &str) -> Result<Reference, String> {
    let mut rows = Reference::new();
    for group in GROUPS {
        for row in scan_group(st, view, group, token).await? {
            let key = row["key"].as_str().unwrap_or_default().to_string();
            rows.insert(key, row_totals(&row));
        }
    }
    Ok(rows)
}

/// Scans of rows the gateway holds are served from its row cache; then
/// orders move five users into `expensive` (and add to their totals), and
/// scans show exactly the new view — a cached row is never served past a
/// change. `placed` is what the view was built from; `topic` is keyed by
/// order when the view is "spread", by user otherwise.
pub async fn cached_scans_follow_changes(
    st: &Stack,
    view: &str,
    placed: &[Value],
    topic: &str,
    token: &str,
) {
    let before = reference(placed);
    let listed: usize = before.values().map(|groups| groups.len()).sum();
    let hits_before = cache_hits(st).await;
    assert_eq!(scanned(st, view, token).await, Ok(before.clone()));
    let hits = cache_hits(st).await - hits_before;
    assert!(
        hits >= listed as f64,
        "{view}: rows read before are scanned from the cache: {hits} hits for {listed} rows"
    );
    let moves: Vec<Value> = before
        .keys()
        .take(5)
        .enumerate()
        .map(|(i, user)| {
            json!({"orderId": format!("move-{view}-{i}"), "userId": user,
                "items": [{"itemId": format!("move-{view}-item-{i}"), "name": "lamp", "price": 80.0}]})
        })
        .collect();
    // Kafka's default partitioner, as the view's keyed-by-row-key promise assumes.
    let producer: FutureProducer = kafka::client_config(st.env)
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer");
    for order in &moves {
        let key = if view == "spread" {
            &order["orderId"]
        } else {
            &order["userId"]
        };
        let (key, payload) = (key.as_str().unwrap_or_default(), order.to_string());
        producer
            .send(
                FutureRecord::to(topic).key(key).payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produced");
    }
    let after = reference(&[placed, moves.as_slice()].concat());
    assert_ne!(after, before, "the orders change the view");
    let mut last = Err(String::new());
    let settled = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            last = scanned(st, view, token).await;
            if last.as_ref() == Ok(&after) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    if settled.is_err() {
        assert_eq!(last, Ok(after), "{view}: scans after the changes, 120 s on");
    }
}
