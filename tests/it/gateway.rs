//! The query gateway end to end: the real API server and broker, the
//! operator, the process kubelet running projector pods, and `matview
//! gateway` under its own least-privilege ServiceAccount. Expected answers are
//! computed from the produced orders, not by the engine.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kube::api::{Api, PostParams};
use matview::crd::{MaterializedView, Phase};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

use crate::support::gateway::{self, GatewayProcess};
use crate::support::kube::{
    TestNamespace, admin_client, component_identity, install_matview_crd, operator_identity,
    service_account_token,
};
use crate::support::kubelet::ProcessKubelet;
use crate::support::operator::{self, OperatorProcess};
use crate::support::projector::{Reference, reference, reference_with, row_totals};
use crate::support::{TestEnv, eventually, kafka, unique_name};

/// Everything a gateway test runs against.
struct Stack {
    env: &'static TestEnv,
    client: kube::Client,
    ns: TestNamespace,
    work: tempfile::TempDir,
    kubelet: ProcessKubelet,
    _operator: OperatorProcess,
    gateway: GatewayProcess,
    /// The gateway's own identity (config/rbac/gateway.yaml).
    gateway_user: String,
    views: Api<MaterializedView>,
}

async fn stack(prefix: &str, auth: &str) -> Stack {
    let env = TestEnv::with_kafka();
    let client = admin_client(env).await;
    install_matview_crd(&client).await;
    let ns = TestNamespace::create(&client, prefix).await;
    let work = tempfile::tempdir().expect("tempdir");
    let kubelet = ProcessKubelet::start(
        client.clone(),
        &ns.name,
        env!("CARGO_BIN_EXE_matview").into(),
        work.path().to_path_buf(),
    )
    .await;
    let (operator_config, _) = operator_identity(env, &client, &ns.name, work.path()).await;
    let operator = operator::start(
        &operator_config,
        &ns.name,
        &work.path().join("operator.log"),
        "operator-0",
    );
    let (gateway_config, gateway_user) =
        component_identity(env, &client, &ns.name, work.path(), "gateway").await;
    let gateway = gateway::start(
        &gateway_config,
        &ns.name,
        auth,
        &work.path().join("gateway.log"),
    );
    let views = Api::namespaced(client.clone(), &ns.name);
    Stack {
        env,
        client,
        ns,
        work,
        kubelet,
        _operator: operator,
        gateway,
        gateway_user,
        views,
    }
}

impl Stack {
    fn gateway_log(&self) -> String {
        std::fs::read_to_string(self.work.path().join("gateway.log")).unwrap_or_default()
    }

    /// The shop example on `topic`, `shards` × `replicas`.
    async fn create_view(&self, name: &str, topic: &str, shards: i32, replicas: i32, keyed: bool) {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/items-by-price.yaml"
        ))
        .expect("example");
        let mut view: MaterializedView = serde_yaml::from_str(&text).expect("parses");
        view.metadata.name = Some(name.into());
        view.metadata.namespace = None;
        view.spec.source.kafka.bootstrap_servers = Some(self.env.kafka_bootstrap.clone());
        view.spec.source.kafka.topic = topic.into();
        view.spec.source.keyed_by_row_key = keyed;
        view.spec.dead_letter = Some(matview::crd::DeadLetter {
            topic: Some(unique_name("gw-dlq")),
        });
        view.spec.shards = shards;
        view.spec.replicas_per_shard = replicas;
        self.views
            .create(&PostParams::default(), &view)
            .await
            .expect("view created");
    }

    /// Waits until the view is Ready with `rows` rows; returns its active revision.
    async fn ready(&self, name: &str, rows: i64) -> String {
        eventually(
            &format!("{name} Ready with {rows} rows"),
            Duration::from_secs(120),
            || {
                let views = self.views.clone();
                let name = name.to_string();
                async move {
                    let s = views.get(&name).await.ok()?.status?;
                    (s.phase == Some(Phase::Ready) && s.rows == Some(rows))
                        .then_some(s.active_revision)
                        .flatten()
                }
            },
        )
        .await
    }

    /// Waits until the gateway answers `path` with 200 (routes are learned).
    async fn serving(&self, path: &str, token: Option<&str>) -> gateway::Answer {
        eventually(
            &format!("the gateway to serve {path}"),
            Duration::from_secs(60),
            || async {
                self.gateway
                    .get(path, token)
                    .await
                    .filter(|a| a.status == 200)
            },
        )
        .await
    }

    /// A ServiceAccount's token, with `role` bound in the namespace (if any).
    async fn account(&self, name: &str, role: Option<(&str, &str)>) -> String {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &self.ns.name);
        let account: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": name}})).expect("literal");
        accounts
            .create(&PostParams::default(), &account)
            .await
            .expect("ServiceAccount");
        if let Some((kind, role)) = role {
            let binding: RoleBinding = serde_json::from_value(json!({
                "metadata": {"name": format!("{name}-reads")},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": self.ns.name}],
            }))
            .expect("literal");
            Api::<RoleBinding>::namespaced(self.client.clone(), &self.ns.name)
                .create(&PostParams::default(), &binding)
                .await
                .expect("RoleBinding");
        }
        service_account_token(&self.client, &self.ns.name, name).await
    }

    /// A ServiceAccount bound to the reader ClusterRole; its token.
    async fn reader(&self) -> String {
        let role = self.reader_role().await;
        self.account("reader", Some(("ClusterRole", &role))).await
    }

    /// Produces orders keyed by order id to `topic`.
    async fn produce_by_order(&self, topic: &str, orders: &[Value]) {
        crate::support::projector::produce_orders(self.env, topic, orders).await;
    }

    /// The reader ClusterRole of config/rbac/view-reader.yaml, under a unique name.
    async fn reader_role(&self) -> String {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/rbac/view-reader.yaml"
        ))
        .expect("manifest");
        let mut role: ClusterRole = serde_yaml::from_str(&text).expect("ClusterRole");
        let name = format!("matview-view-reader-{}", self.ns.name);
        role.metadata.name = Some(name.clone());
        Api::<ClusterRole>::all(self.client.clone())
            .create(&PostParams::default(), &role)
            .await
            .expect("ClusterRole");
        name
    }
}

/// Orders keyed by user with Kafka's default (murmur2) partitioner, as a
/// Java producer would: the topic is keyed by the row key.
async fn produce_keyed_by_user(env: &TestEnv, topic: &str, orders: &[Value]) {
    let producer: FutureProducer = kafka::client_config(env)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "10")
        .create()
        .expect("producer");
    let sends = orders.iter().map(|o| {
        let payload = o.to_string();
        let key = o["userId"].as_str().unwrap_or_default().to_string();
        let producer = producer.clone();
        async move {
            producer
                .send(
                    FutureRecord::to(topic).key(&key).payload(&payload),
                    Duration::from_secs(30),
                )
                .await
        }
    });
    for sent in futures::future::join_all(sends).await {
        sent.map_err(|(e, _)| e).expect("produce failed");
    }
}

fn orders(seed: u64, users: u64, n: usize) -> Vec<Value> {
    let mut g = matview::workload::OrderGenerator::new(seed, users);
    (0..n).map(|_| g.next_order()).collect()
}

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

/// Every group scanned in pages of 7 lists exactly the reference's users of
/// that group, each row whole (all groups), in key order, without repeats.
async fn check_scans(st: &Stack, view: &str, expected: &Reference, token: &str) {
    for group in ["cheap", "affordable", "expensive"] {
        let wanted: BTreeSet<&String> = expected
            .iter()
            .filter(|(_, g)| g.contains_key(group))
            .map(|(u, _)| u)
            .collect();
        let mut seen: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!(
                "/v1/namespaces/{}/views/{view}/groups/{group}/rows?limit=7",
                st.ns.name
            );
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = st.gateway.get(&path, Some(token)).await.expect("answers");
            assert_eq!(page.status, 200, "{path}: {}", page.body);
            for row in page.body["rows"].as_array().expect("rows") {
                let key = row["key"].as_str().expect("key").to_string();
                assert_eq!(row_totals(row), expected[&key], "{view} scan row {key}");
                seen.push(key);
            }
            match page.body["next"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(seen, sorted, "{view}/{group}: in key order, no repeats");
        let seen: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(seen, wanted, "{view}/{group}: exactly the group's rows");
    }
}

#[tokio::test]
async fn the_gateway_serves_rows_and_scans_equal_to_the_independent_view() {
    let st = stack("gateway", "kubernetes").await;
    let env = st.env;
    let reader = st.reader().await;

    // Keyed by order: a user's items spread over both shards.
    let by_order = kafka::create_topic(env, "orders", 4).await;
    let spread = orders(21, 40, 300);
    st.produce_by_order(&by_order, &spread).await;
    st.create_view("spread", &by_order, 2, 1, false).await;
    // Keyed by user: each row on one shard, and the gateway asks only it.
    let by_user = kafka::create_topic(env, "orders-by-user", 4).await;
    let keyed = orders(22, 40, 300);
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
    authorization(&st, &reader).await;
    bad_requests(&st, &reader).await;
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

/// What the readers saw.
#[derive(Debug, Default)]
struct ReadLog {
    reads: u64,
    failures: Vec<String>,
    /// Revisions in the order answers carried them, repeats collapsed.
    revisions: Vec<String>,
}

/// `readers` tasks read rows of `users` as fast as they can until `stop`.
fn spawn_readers(
    st: &Stack,
    users: &[String],
    token: &str,
    readers: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<ReadLog>> {
    (0..readers)
        .map(|r| {
            let (http, url) = (st.gateway.http.clone(), st.gateway.url.clone());
            let (users, token, stop) = (users.to_vec(), token.to_string(), stop.clone());
            let ns = st.ns.name.clone();
            tokio::spawn(async move {
                let mut log = ReadLog::default();
                let mut i = r;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let user = &users[i % users.len()];
                    i += readers;
                    let path = format!("{url}/v1/namespaces/{ns}/views/load/rows/{user}");
                    log.reads += 1;
                    match http.get(&path).bearer_auth(&token).send().await {
                        Ok(r) if r.status() == 200 => {
                            let revision = r
                                .headers()
                                .get(matview::api::projector::REVISION_HEADER)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("none")
                                .to_string();
                            if log.revisions.last() != Some(&revision) {
                                log.revisions.push(revision);
                            }
                        }
                        Ok(r) => {
                            let status = r.status();
                            let body = r.text().await.unwrap_or_default();
                            log.failures.push(format!("{status}: {body}"));
                        }
                        Err(e) => log.failures.push(e.to_string()),
                    }
                }
                log
            })
        })
        .collect()
}

#[tokio::test]
async fn killing_replicas_and_changing_rules_under_load_fails_no_read() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let st = stack("gwload", "kubernetes").await;
    let reader = st.reader().await;
    let topic = kafka::create_topic(st.env, "orders", 4).await;
    // One generator: the live orders continue the ids of the first 400.
    let all_orders = orders(31, 50, 1000);
    let (placed, live) = all_orders.split_at(400);
    st.produce_by_order(&topic, placed).await;
    st.create_view("load", &topic, 2, 2, false).await;
    let expected = reference(placed);
    let rev1 = st.ready("load", expected.len() as i64).await;
    let users: Vec<String> = expected.keys().cloned().collect();
    let first = format!("/v1/namespaces/{}/views/load/rows/{}", st.ns.name, users[0]);
    st.serving(&first, Some(&reader)).await;

    // A stream client mirrors the whole view: snapshot, then changes from
    // the snapshot's positions.
    let (snapshot, positions) = load_view(&st, "load", &reader).await;
    let stream = st
        .gateway
        .open_stream(
            &format!("/v1/namespaces/{}/views/load/watch", st.ns.name),
            Some(&reader),
            Some(&positions),
        )
        .await;
    let mirror = tokio::spawn(mirror_view(
        st.gateway.url.clone(),
        st.ns.name.clone(),
        reader.clone(),
        snapshot,
        stream,
    ));

    let stop = Arc::new(AtomicBool::new(false));
    let readers = spawn_readers(&st, &users, &reader, 16, stop.clone());
    let producing = tokio::spawn(produce_slowly(st.env, topic.clone(), live.to_vec()));
    let started = std::time::Instant::now();

    // Kill one replica of each shard while the readers run.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for shard in 0..2 {
        let set = matview::operator::desired::object_name("load", &rev1, &format!("-s{shard}"));
        let pod = format!("{set}-0");
        assert!(st.kubelet.kill(&pod), "no process for {pod}");
    }
    tokio::time::sleep(Duration::from_secs(25)).await;
    let kill_phase = started.elapsed();

    // Change the rules while they still run: cheap now means below 10.
    let patch = json!({"spec": {"classify": {"field": "price", "rules": [
        {"group": "cheap", "lt": 10}, {"group": "affordable", "gte": 10, "lte": 50},
        {"group": "expensive", "gt": 50}]}}});
    st.views
        .patch(
            "load",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("rules changed");
    let rev2 = matview::engine::revision(&st.views.get("load").await.expect("view").spec);
    eventually(
        "the switch to the new revision",
        Duration::from_secs(180),
        || {
            let views = st.views.clone();
            let rev2 = rev2.clone();
            async move {
                let s = views.get("load").await.ok()?.status?;
                (s.active_revision == Some(rev2) && s.phase == Some(Phase::Ready)).then_some(())
            }
        },
    )
    .await;
    producing.await.expect("producer task");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = ReadLog::default();
    let mut sequences = Vec::new();
    for reader in readers {
        let log = reader.await.expect("reader task");
        total.reads += log.reads;
        total.failures.extend(log.failures);
        sequences.push(log.revisions);
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "gateway under load: {} reads in {elapsed:.1} s ({:.0}/s; kill phase {:?}), {} failed",
        total.reads,
        total.reads as f64 / elapsed,
        kill_phase,
        total.failures.len()
    );
    assert!(
        total.failures.is_empty(),
        "{} failed reads, first: {:?}\n{}",
        total.failures.len(),
        total.failures.iter().take(5).collect::<Vec<_>>(),
        st.gateway_log()
    );
    for seq in &sequences {
        assert!(
            *seq == [rev1.clone(), rev2.clone()]
                || *seq == [rev2.clone()]
                || *seq == [rev1.clone()],
            "answers switch from {rev1} to {rev2} once and never back: {seq:?}"
        );
    }
    assert!(
        sequences.iter().any(|s| s.last() == Some(&rev2)),
        "readers saw the new revision"
    );

    // The stream stayed connected and mirrors exactly the final view.
    let expected_final = reference_with(&all_orders, 10.0);
    // Generous: on a loaded machine the stream settles late, but it must settle.
    let mirror = tokio::time::timeout(Duration::from_secs(240), mirror)
        .await
        .expect("the mirror reaches the final view")
        .expect("mirror task");
    assert_eq!(mirror.disconnects, 0, "the stream stayed connected");
    assert!(mirror.events > 0, "changes were streamed");
    assert_eq!(mirror.revisions.first(), Some(&rev1));
    assert_eq!(mirror.revisions.last(), Some(&rev2));
    let mirrored: Reference = mirror
        .rows
        .iter()
        .map(|(k, row)| (k.clone(), row_totals(row)))
        .filter(|(_, g)| !g.is_empty())
        .collect();
    assert_eq!(mirrored, expected_final);
    eprintln!(
        "stream: {} events, {} resets, revisions {:?}",
        mirror.events, mirror.resets, mirror.revisions
    );

    // The new revision's rows follow the new rules.
    for user in users.iter().take(10) {
        let cheap: u64 = all_orders
            .iter()
            .filter(|o| o["userId"] == json!(user))
            .flat_map(|o| o["items"].as_array().cloned().unwrap_or_default())
            .filter(|i| i["price"].as_f64().unwrap_or(0.0) < 10.0)
            .count() as u64;
        let path = format!("/v1/namespaces/{}/views/load/rows/{user}", st.ns.name);
        let answer = st.gateway.get(&path, Some(&reader)).await.expect("answers");
        assert_eq!(answer.revision.as_deref(), Some(rev2.as_str()));
        assert_eq!(
            answer.body["groups"]["cheap"]["count"],
            json!(cheap),
            "{user}"
        );
    }
}

/// Produces `orders` at about 20 per second, keyed by order.
async fn produce_slowly(env: &'static TestEnv, topic: String, orders: Vec<Value>) {
    let producer: FutureProducer = kafka::client_config(env).create().expect("producer");
    for order in orders.iter().take(600) {
        let key = order["orderId"].as_str().unwrap_or_default().to_string();
        let payload = order.to_string();
        producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every row of a view, by scanning each group; and the positions of the
/// first answer (to resume a stream from).
async fn load_view(st: &Stack, view: &str, token: &str) -> (BTreeMap<String, Value>, String) {
    let loaded = load_view_at(&st.gateway.url, &st.ns.name, view, token).await;
    (loaded.rows, loaded.positions)
}

async fn load_view_at(url: &str, ns: &str, view: &str, token: &str) -> LoadedView {
    let http = reqwest::Client::new();
    let mut rows = BTreeMap::new();
    let mut positions = None;
    let mut revision = None;
    for group in ["cheap", "affordable", "expensive"] {
        let mut cursor: Option<String> = None;
        loop {
            let mut path =
                format!("{url}/v1/namespaces/{ns}/views/{view}/groups/{group}/rows?limit=500");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let response = http
                .get(&path)
                .bearer_auth(token)
                .send()
                .await
                .expect("scan");
            assert_eq!(response.status().as_u16(), 200, "{path}");
            if revision.is_none() {
                revision = response
                    .headers()
                    .get(matview::api::projector::REVISION_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
            }
            if positions.is_none() {
                positions = response
                    .headers()
                    .get("matview-positions")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
            }
            let page: Value = response.json().await.expect("page");
            for row in page["rows"].as_array().into_iter().flatten() {
                rows.insert(
                    row["key"].as_str().unwrap_or_default().to_string(),
                    row.clone(),
                );
            }
            match page["next"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
    }
    LoadedView {
        rows,
        positions: positions.expect("a positions header"),
        revision: revision.expect("a revision header"),
    }
}

/// A whole view read by scanning every group, and where it was read.
struct LoadedView {
    rows: BTreeMap<String, Value>,
    positions: String,
    revision: String,
}

/// A stream client's view of the view.
#[derive(Debug, Default)]
struct Mirror {
    rows: BTreeMap<String, Value>,
    revisions: Vec<String>,
    events: usize,
    resets: usize,
    disconnects: usize,
}

/// Applies stream events to a snapshot; on `reset` reloads. Returns once the
/// mirror matches the final expected view of the test (checked by the caller)
/// — here: when the stream has been quiet for 8 s after the revision changed.
async fn mirror_view(
    url: String,
    ns: String,
    token: String,
    snapshot: BTreeMap<String, Value>,
    mut stream: crate::support::gateway::EventReceiver,
) -> Mirror {
    let mut mirror = Mirror {
        rows: snapshot,
        ..Default::default()
    };
    loop {
        let next = tokio::time::timeout(Duration::from_secs(8), stream.recv()).await;
        let event = match next {
            Ok(Some(event)) => event,
            Ok(None) => {
                mirror.disconnects += 1;
                return mirror;
            }
            // Quiet: done once the switch happened.
            Err(_) if mirror.revisions.len() >= 2 => return mirror,
            Err(_) => continue,
        };
        if let Some(rev) = event.data["revision"].as_str()
            && mirror.revisions.last().map(String::as_str) != Some(rev)
        {
            mirror.revisions.push(rev.to_string());
        }
        match event.event.as_str() {
            "rows" => {
                mirror.events += 1;
                for row in event.data["rows"].as_array().into_iter().flatten() {
                    mirror.rows.insert(
                        row["key"].as_str().unwrap_or_default().to_string(),
                        row.clone(),
                    );
                }
            }
            "reset" => {
                mirror.resets += 1;
                // A reset names the revision that stopped; the reload says
                // which one serves now (no row may change after a switch).
                let loaded = load_view_at(&url, &ns, "load", &token).await;
                if mirror.revisions.last() != Some(&loaded.revision) {
                    mirror.revisions.push(loaded.revision);
                }
                mirror.rows = loaded.rows;
            }
            _ => {}
        }
    }
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
    let placed = orders(41, 20, 100);
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
