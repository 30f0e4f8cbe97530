//! The query gateway end to end: the real API server and broker, the
//! operator, the process kubelet running projector pods, and `matview
//! gateway` under its own least-privilege ServiceAccount. Expected answers are
//! computed from the produced orders, not by the engine.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::Role;
use kube::api::{Api, PostParams};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

use crate::gateway_scans::{cache_hits, cached_scans_follow_changes, check_scans};
use crate::support::gateway;
use crate::support::orders::{Orders, orders};
use crate::support::projector::{Reference, reference, row_totals};
use crate::support::stack::{Stack, produce_keyed_by_user, stack};
use crate::support::{eventually, kafka};

/// Every row through the gateway equals the reference, and carries the revision.
async fn check_rows(st: &Stack, view: &str, expected: &Reference, revision: &str, token: &str) {
    for (user, groups) in expected {
        let path = format!("/v1/namespaces/{}/views/{view}/rows/{user}", st.ns.name);
        let answer = st.gateway.get(&path, Some(token)).await.expect("answers");
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert_eq!(&row_totals(&answer.body), groups, "{view} row {user}");
        assert_eq!(answer.revision.as_deref(), Some(revision));
        assert!(answer.positions.is_some(), "positions header");
    }
}

#[tokio::test]
async fn the_gateway_serves_rows_and_scans_equal_to_the_independent_view() {
    let st = stack("gateway", "kubernetes").await;
    let env = st.env;
    let reader = st.reader().await;

    // Keyed by order: a user's items spread over both shards.
    let by_order = kafka::create_topic(env, "orders", 4).await;
    let spread = orders(Orders {
        seed: 21,
        users: 40,
        count: 300,
    });
    st.produce_by_order(&by_order, &spread).await;
    st.create_view("spread", &by_order, 2, 1, false).await;
    // Keyed by user: each row on one shard, and the gateway asks only it.
    let by_user = kafka::create_topic(env, "orders-by-user", 4).await;
    let keyed = orders(Orders {
        seed: 22,
        users: 40,
        count: 300,
    });
    produce_keyed_by_user(env, &by_user, &keyed).await;
    st.create_view("keyed", &by_user, 2, 1, true).await;

    let (spread_ref, keyed_ref) = (reference(&spread), reference(&keyed));
    let spread_rev = st.ready("spread", spread_ref.len() as i64).await;
    let keyed_rev = st.ready("keyed", keyed_ref.len() as i64).await;
    let first_user = spread_ref.keys().next().expect("a user");
    st.serving(
        &format!(
            "/v1/namespaces/{}/views/spread/rows/{first_user}",
            st.ns.name
        ),
        Some(&reader),
    )
    .await;
    st.serving(
        &format!(
            "/v1/namespaces/{}/views/keyed/rows/{first_user}",
            st.ns.name
        ),
        Some(&reader),
    )
    .await;
    check_rows(&st, "spread", &spread_ref, &spread_rev, &reader).await;
    check_rows(&st, "keyed", &keyed_ref, &keyed_rev, &reader).await;
    check_scans(&st, "spread", &spread_ref, &reader).await;
    check_scans(&st, "keyed", &keyed_ref, &reader).await;
    cached_scans_follow_changes(&st, "spread", &spread, &by_order, &reader).await;
    cached_scans_follow_changes(&st, "keyed", &keyed, &by_user, &reader).await;
    let metrics = reqwest::get(format!("{}/metrics", st.gateway.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("matview_gateway_fanout_shards_bucket{le=\"1.0\"}"),
        "{metrics}"
    );

    read_your_writes(&st, &by_order, &reader).await;
    cached_rows_follow_changes(&st, &by_order, &reader).await;
    authorization(&st, &reader).await;
    bad_requests(&st, &reader).await;
}

/// Plain reads (no `after=`) of a row the gateway keeps: an unchanged row is
/// served from the cache, and every change shows up all the same — the
/// cache is dropped by the change feed, never served stale for long.
async fn cached_rows_follow_changes(st: &Stack, topic: &str, token: &str) {
    let producer: FutureProducer = kafka::client_config(st.env).create().expect("producer");
    let path = format!("/v1/namespaces/{}/views/spread/rows/cache-user", st.ns.name);
    let hits_before = cache_hits(st).await;
    for i in 0..20 {
        let item = format!("cache-item-{i}");
        let order = json!({"orderId": format!("cache-{i}"), "userId": "cache-user",
            "items": [{"itemId": item, "name": "pen", "price": 1.5}]});
        let payload = order.to_string();
        producer
            .send(
                FutureRecord::to(topic).key(&item).payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produced");
        let seen = eventually(
            &format!("{item} on a plain read"),
            Duration::from_secs(60),
            || async {
                let answer = st.gateway.get(&path, Some(token)).await?;
                let items = answer.body["groups"]["cheap"]["items"].as_array()?.clone();
                (answer.status == 200 && items.iter().any(|it| it["id"] == json!(item)))
                    .then_some(items.len())
            },
        )
        .await;
        assert_eq!(seen, i + 1, "every item so far, once each");
        // Unchanged now: read again, from the cache once it holds the row.
        for _ in 0..5 {
            let again = st.gateway.get(&path, Some(token)).await.expect("answers");
            assert_eq!(again.status, 200);
            assert_eq!(again.body["groups"]["cheap"]["count"], json!(i + 1));
        }
    }
    let hits = cache_hits(st).await - hits_before;
    assert!(
        hits >= 20.0,
        "unchanged rows are served from the cache: {hits} hits"
    );
}

/// Produce an order, read its user's row with `after=` its position: the
/// answer includes it, every time.
async fn read_your_writes(st: &Stack, topic: &str, token: &str) {
    let producer: FutureProducer = kafka::client_config(st.env).create().expect("producer");
    for i in 0..200 {
        let user = format!("ryw-{}", i % 7);
        let item = format!("ryw-item-{i}");
        let order = json!({"orderId": format!("ryw-{i}"), "userId": user,
            "items": [{"itemId": item, "name": "pen", "price": 1.5}]});
        let payload = order.to_string();
        let delivery = producer
            .send(
                FutureRecord::to(topic).key(&user).payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produced");
        let path = format!(
            "/v1/namespaces/{}/views/spread/rows/{user}?after={topic}:{}:{}",
            st.ns.name, delivery.partition, delivery.offset
        );
        let answer = st.gateway.get(&path, Some(token)).await.expect("answers");
        assert_eq!(answer.status, 200, "read {i}: {}", answer.body);
        let items = answer.body["groups"]["cheap"]["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            items.iter().any(|it| it["id"] == json!(item)),
            "read {i}: {item} missing from {}",
            answer.body
        );
    }
}

async fn authorization(st: &Stack, reader: &str) {
    let ns = &st.ns.name;
    // The gateway's own rights: what it needs, and not more.
    for (verb, resource, expected) in [
        ("create", "tokenreviews.authentication.k8s.io", "yes"),
        ("create", "subjectaccessreviews.authorization.k8s.io", "yes"),
        ("watch", "pods", "yes"),
        ("list", "materializedviews.matview.dev", "yes"),
        ("patch", "materializedviews.matview.dev", "no"),
        ("get", "secrets", "no"),
        ("get", "configmaps", "no"),
        ("create", "pods", "no"),
    ] {
        let out = st
            .env
            .kubectl()
            .args([
                "auth",
                "can-i",
                verb,
                resource,
                "-n",
                ns,
                "--as",
                &st.gateway_user,
            ])
            .output()
            .expect("kubectl");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            expected,
            "may the gateway {verb} {resource}?"
        );
    }
    let row = format!("/v1/namespaces/{ns}/views/spread/rows/u-1");
    let none = st.gateway.get(&row, None).await.expect("answers");
    assert_eq!(none.status, 401, "{}", none.body);
    let stranger = st.account("stranger", None).await;
    let denied = st
        .gateway
        .get(&row, Some(&stranger))
        .await
        .expect("answers");
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(
        denied.content_type.as_deref(),
        Some("application/problem+json")
    );
    let listed = st
        .gateway
        .get("/v1/views", Some(&stranger))
        .await
        .expect("answers");
    assert_eq!(listed.body["views"], json!([]), "a stranger sees no view");

    // A Role for one view: the list shows that view only.
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "spread-only"},
        "rules": [{"apiGroups": ["matview.dev"], "resources": ["materializedviews/data"],
                   "resourceNames": ["spread"], "verbs": ["get", "list", "watch"]}],
    }))
    .expect("literal");
    Api::<Role>::namespaced(st.client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("Role");
    let partial = st.account("partial", Some(("Role", "spread-only"))).await;
    let names = |answer: gateway::Answer| -> Vec<String> {
        answer.body["views"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str().map(str::to_string))
            .collect()
    };
    let partial_list = st
        .gateway
        .get("/v1/views", Some(&partial))
        .await
        .expect("answers");
    assert_eq!(names(partial_list), ["spread"]);
    let full_list = st
        .gateway
        .get("/v1/views", Some(reader))
        .await
        .expect("answers");
    assert_eq!(names(full_list), ["keyed", "spread"]);
    let keyed = format!("/v1/namespaces/{ns}/views/keyed/rows/u-1");
    let other = st
        .gateway
        .get(&keyed, Some(&partial))
        .await
        .expect("answers");
    assert_eq!(other.status, 403);
}

async fn bad_requests(st: &Stack, token: &str) {
    let ns = &st.ns.name;
    let cases: BTreeMap<String, u16> = [
        (format!("/v1/namespaces/{ns}/views/missing/rows/u-1"), 404),
        (
            format!("/v1/namespaces/{ns}/views/spread/rows/nobody-has-this"),
            404,
        ),
        (
            format!("/v1/namespaces/{ns}/views/spread/groups/cheap/rows?cursor=xyz"),
            400,
        ),
        (
            format!("/v1/namespaces/{ns}/views/spread/groups/cheap/rows?limit=0"),
            400,
        ),
        (
            format!("/v1/namespaces/{ns}/views/spread/groups/cheap/rows?limit=5000"),
            400,
        ),
        (
            format!("/v1/namespaces/{ns}/views/spread/groups/pricey/rows"),
            404,
        ),
        (
            format!("/v1/namespaces/{ns}/views/spread/rows/u-1?after=other:0:1"),
            400,
        ),
        (
            format!("/v1/namespaces/{ns}/views/spread/rows/u-1?after=nonsense"),
            400,
        ),
        (
            format!("/v1/namespaces/{ns}/views/spread/rows/u-1?color=red"),
            400,
        ),
        ("/v2/nothing".to_string(), 404),
    ]
    .into_iter()
    .collect();
    for (path, status) in cases {
        let answer = st.gateway.get(&path, Some(token)).await.expect("answers");
        assert_eq!(answer.status, status, "{path}: {}", answer.body);
        assert_eq!(
            answer.content_type.as_deref(),
            Some("application/problem+json"),
            "{path}"
        );
        assert_eq!(answer.body["status"], json!(status), "{path}");
    }
    // A read-your-writes position far ahead times out with a clear 504.
    let ahead = format!(
        "/v1/namespaces/{ns}/views/spread/rows/u-1?after={}:0:999999999&waitMs=300",
        st.views
            .get("spread")
            .await
            .expect("view")
            .spec
            .source
            .kafka
            .topic
    );
    let late = st.gateway.get(&ahead, Some(token)).await.expect("answers");
    assert_eq!(late.status, 504, "{}\n{}", late.body, st.gateway_log());
    assert!(
        late.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("300 ms")
    );
}

/// Schemathesis (from PyPI, installed by the test environment) fuzzes every
/// operation of the OpenAPI document against a running gateway: no 5xx, and
/// every response conforms to the document (status, content type, schema,
/// headers). The live stream is left out: its 200 answer never ends.
#[tokio::test]
async fn the_openapi_document_holds_under_property_based_fuzzing() {
    let st = stack("gwfuzz", "kubernetes").await;
    let reader = st.reader().await;
    let topic = kafka::create_topic(st.env, "orders", 2).await;
    let placed = orders(Orders {
        seed: 41,
        users: 20,
        count: 100,
    });
    st.produce_by_order(&topic, &placed).await;
    st.create_view("fuzzed", &topic, 2, 1, false).await;
    let expected = reference(&placed);
    st.ready("fuzzed", expected.len() as i64).await;
    let user = expected.keys().next().expect("a user");
    st.serving(
        &format!("/v1/namespaces/{}/views/fuzzed/rows/{user}", st.ns.name),
        Some(&reader),
    )
    .await;
    let served = st
        .gateway
        .get("/openapi.json", None)
        .await
        .expect("document");
    assert_eq!(served.body, matview::api::openapi::gateway_document());

    let reports = st.work.path().join("schemathesis");
    let out = std::process::Command::new(st.env.schemathesis_bin.join("st"))
        // Its cache goes to the working directory: keep it out of the repository.
        .current_dir(st.work.path())
        .args(["run", &format!("{}/openapi.json", st.gateway.url)])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection"])
        .args(["--exclude-path-regex", "/watch$"])
        .args(["--header", &format!("Authorization: Bearer {reader}")])
        .args(["--max-examples", "25", "--seed", "20261128", "--workers", "2"])
        .args(["--generation-database", "none", "--request-timeout", "20", "--no-color"])
        .arg("--report-dir")
        .arg(&reports)
        .output()
        .expect("cannot run schemathesis");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{text}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        st.gateway_log()
    );
}
