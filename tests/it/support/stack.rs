//! The whole system for gateway tests: the real API server and broker, the
//! operator, the process kubelet running projector pods, and `matview
//! gateway` under its own least-privilege ServiceAccount; plus readers that
//! hammer it and log what they saw.

use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::api::{Api, PostParams};
use matview::crd::{Condition, ConditionStatus, ConditionType, MaterializedView};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

use super::gateway::{self, GatewayProcess};
use super::kube::{component_identity, service_account_token};
use super::operator::OperatorFixture;
use super::{TestEnv, eventually, kafka, ready_with_rows, unique_name};

/// Everything a gateway test runs against: the operator fixture (API
/// server namespace, operator, process kubelet) and `matview gateway` under
/// its own least-privilege ServiceAccount.
pub struct Stack {
    pub gateway: GatewayProcess,
    /// The gateway's own identity (config/rbac/gateway.yaml).
    pub gateway_user: String,
    pub views: Api<MaterializedView>,
    /// Last: the gateway writes its log in the fixture's directory.
    base: OperatorFixture,
}

impl std::ops::Deref for Stack {
    type Target = OperatorFixture;

    fn deref(&self) -> &OperatorFixture {
        &self.base
    }
}

impl std::ops::DerefMut for Stack {
    fn deref_mut(&mut self) -> &mut OperatorFixture {
        &mut self.base
    }
}

pub async fn stack(prefix: &str, auth: &str) -> Stack {
    let base = OperatorFixture::start(prefix, &[], true).await;
    let (gateway_config, gateway_user) = component_identity(
        base.env,
        &base.client,
        &base.ns.name,
        base.work.path(),
        "gateway",
    )
    .await;
    let gateway = gateway::start(
        &gateway_config,
        &base.ns.name,
        auth,
        &base.work.path().join("gateway.log"),
    );
    let views = Api::namespaced(base.client.clone(), &base.ns.name);
    Stack {
        gateway,
        gateway_user,
        views,
        base,
    }
}

impl Stack {
    /// The rows of `keys` the gateway serves for `view` (a key without a
    /// row is left out); panics on any answer but 200 or 404.
    pub async fn rows(
        &self,
        view: &str,
        keys: impl IntoIterator<Item = &String>,
        token: &str,
    ) -> super::projector::Reference {
        self.rows_at(view, keys, token, None).await
    }

    /// [`Stack::rows`] of the named revision (`?revision=`), each answer
    /// checked to come from it.
    pub async fn rows_at(
        &self,
        view: &str,
        keys: impl IntoIterator<Item = &String>,
        token: &str,
        revision: Option<&str>,
    ) -> super::projector::Reference {
        let mut out = super::projector::Reference::new();
        for key in keys {
            let mut path = format!("/v1/namespaces/{}/views/{view}/rows/{key}", self.ns.name);
            if let Some(revision) = revision {
                path.push_str(&format!("?revision={revision}"));
            }
            let answer = self
                .gateway
                .get(&path, Some(token))
                .await
                .expect("the gateway answers");
            if answer.status == 200 && revision.is_some() {
                assert_eq!(answer.revision.as_deref(), revision, "GET {path}");
            }
            match answer.status {
                200 => {
                    out.insert(key.clone(), super::projector::row_totals(&answer.body));
                }
                404 => {}
                status => panic!("GET {path}: {status} {}", answer.body),
            }
        }
        out
    }

    /// Waits until the gateway serves exactly `expected` for `view`. Status
    /// alone cannot say so: `Ready` with the right number of rows may come
    /// from a reconcile before the latest events were produced.
    pub async fn serves(
        &self,
        view: &str,
        expected: &super::projector::Reference,
        token: &str,
    ) -> Duration {
        let started = std::time::Instant::now();
        let last = std::sync::Mutex::new(super::projector::Reference::new());
        let found = tokio::time::timeout(
            Duration::from_secs(120),
            eventually(
                &format!("{view} serves every row"),
                Duration::from_secs(150),
                || async {
                    let rows = self.rows(view, expected.keys(), token).await;
                    let equal = rows == *expected;
                    if let Ok(mut last) = last.lock() {
                        *last = rows;
                    }
                    equal.then_some(())
                },
            ),
        )
        .await;
        if found.is_err() {
            let last = last.lock().map(|l| l.clone()).unwrap_or_default();
            assert_eq!(last, *expected, "{view}: rows served after 120 s");
        }
        started.elapsed()
    }

    pub fn gateway_log(&self) -> String {
        std::fs::read_to_string(self.work.path().join("gateway.log")).unwrap_or_default()
    }

    /// The shop example on `topic`, `shards` × `replicas`.
    pub async fn create_view(
        &self,
        name: &str,
        topic: &str,
        shards: i32,
        replicas: i32,
        keyed: bool,
    ) {
        let servers = self.env.kafka_bootstrap.clone();
        self.create_view_on(&servers, name, topic, shards, replicas, keyed)
            .await;
    }

    /// [`Stack::create_view`] with its source on the broker at `servers`.
    pub async fn create_view_on(
        &self,
        servers: &str,
        name: &str,
        topic: &str,
        shards: i32,
        replicas: i32,
        keyed: bool,
    ) {
        let mut view = shop_view(name, topic, shards, replicas, keyed);
        view.spec.source.kafka.bootstrap_servers = Some(servers.to_string());
        self.views
            .create(&PostParams::default(), &view)
            .await
            .expect("view created");
    }

    /// Waits until the view is Ready with `rows` rows; returns its active revision.
    pub async fn ready(&self, name: &str, rows: i64) -> String {
        eventually(
            &format!("{name} Ready with {rows} rows"),
            Duration::from_secs(120),
            || {
                let views = self.views.clone();
                let name = name.to_string();
                async move {
                    let s = views.get(&name).await.ok()?.status?;
                    ready_with_rows(&s, rows)
                        .then_some(s.active_revision)
                        .flatten()
                }
            },
        )
        .await
    }

    /// Waits until a killed pod's container was started again and its
    /// projector answers ready.
    pub async fn wait_pod_back(&self, pod: &str) {
        eventually(
            &format!("{pod} restarted and ready"),
            Duration::from_secs(120),
            || async {
                if self.kubelet().restarts(pod)? < 1 {
                    return None;
                }
                let ip = self.kubelet().address(pod)?;
                let url = format!("http://{ip}:{}/readyz", matview::api::names::HTTP_PORT);
                let answer = self.gateway.http.get(&url).send().await.ok()?;
                (answer.status() == 200).then_some(())
            },
        )
        .await;
    }

    /// Waits until the gateway answers `path` with 200 (routes are learned).
    pub async fn serving(&self, path: &str, token: Option<&str>) -> gateway::Answer {
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
    pub async fn account(&self, name: &str, role: Option<(&str, &str)>) -> String {
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
    pub async fn reader(&self) -> String {
        let role = self.reader_role().await;
        self.account("reader", Some(("ClusterRole", &role))).await
    }

    /// Produces orders keyed by order id to `topic`.
    pub async fn produce_by_order(&self, topic: &str, orders: &[Value]) {
        crate::support::projector::produce_orders(self.env, topic, orders).await;
    }

    /// The reader ClusterRole of config/rbac/view-reader.yaml, under a unique name.
    pub async fn reader_role(&self) -> String {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/rbac/view-reader.yaml"
        ))
        .expect("manifest");
        let mut role: ClusterRole = serde_yaml_ng::from_str(&text).expect("ClusterRole");
        let name = format!("matview-view-reader-{}", self.ns.name);
        role.metadata.name = Some(name.clone());
        Api::<ClusterRole>::all(self.client.clone())
            .create(&PostParams::default(), &role)
            .await
            .expect("ClusterRole");
        name
    }
}

/// examples/items-by-price.yaml named `name` (no namespace: the caller's),
/// reading `topic`.
pub fn example_view(name: &str, topic: &str) -> MaterializedView {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/items-by-price.yaml"
    ))
    .expect("example");
    let mut view: MaterializedView = serde_yaml_ng::from_str(&text).expect("parses");
    view.metadata.name = Some(name.into());
    view.metadata.namespace = None;
    view.spec.source.kafka.topic = topic.into();
    view
}

/// The shop example (examples/items-by-price.yaml) named `name`, on
/// `topic`, `shards` × `replicas`, with a dead-letter topic of its own.
pub fn shop_view(
    name: &str,
    topic: &str,
    shards: i32,
    replicas: i32,
    keyed: bool,
) -> MaterializedView {
    let mut view = example_view(name, topic);
    view.spec.source.keyed_by_row_key = keyed;
    view.spec.dead_letter = Some(matview::crd::DeadLetter {
        topic: Some(unique_name("gw-dlq")),
    });
    view.spec.shards = shards;
    view.spec.replicas_per_shard = replicas;
    view
}

/// Orders keyed by user with Kafka's default (murmur2) partitioner, as a
/// Java producer would: the topic is keyed by the row key.
pub async fn produce_keyed_by_user(env: &TestEnv, topic: &str, orders: &[Value]) {
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

/// What the readers saw.
#[derive(Debug, Default)]
pub struct ReadLog {
    pub reads: u64,
    pub failures: Vec<String>,
    /// Revisions in the order answers carried them, repeats collapsed.
    pub revisions: Vec<String>,
}

impl ReadLog {
    /// Waits for the readers (after `stop`): their reads and failures
    /// together, and each one's sequence of revisions.
    pub async fn join(
        readers: Vec<tokio::task::JoinHandle<ReadLog>>,
    ) -> (ReadLog, Vec<Vec<String>>) {
        let mut total = ReadLog::default();
        let mut sequences = Vec::new();
        for reader in readers {
            let log = reader.await.expect("reader task");
            total.reads += log.reads;
            total.failures.extend(log.failures);
            sequences.push(log.revisions);
        }
        (total, sequences)
    }

    /// Panics with the first failures and `context` (a log) if any read failed.
    pub fn assert_none_failed(&self, context: &str) {
        assert!(
            self.failures.is_empty(),
            "{} failed reads, first: {:?}\n{context}",
            self.failures.len(),
            self.failures.iter().take(5).collect::<Vec<_>>(),
        );
    }
}

/// Readers that read rows through the gateway in a loop until stopped,
/// each keeping its own [`ReadLog`]; `reads` counts completed reads, so a
/// test can wait for reading to have happened instead of sleeping.
pub struct Readers {
    handles: Vec<tokio::task::JoinHandle<ReadLog>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    reads: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Readers {
    /// `readers` tasks reading rows of `users` as fast as they can.
    pub fn spawn(st: &Stack, users: &[String], token: &str, readers: usize) -> Readers {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reads = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let handles = spawn_readers(st, users, token, readers, stop.clone(), reads.clone());
        Readers {
            handles,
            stop,
            reads,
        }
    }

    /// Reads completed so far, by all readers.
    pub fn reads(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until the readers have completed `more` reads beyond now.
    pub async fn read_more(&self, more: u64, what: &str) {
        let target = self.reads() + more;
        eventually(what, Duration::from_secs(120), || async {
            (self.reads() >= target).then_some(())
        })
        .await;
    }

    /// Stops the readers; their reads and failures together, and each
    /// one's sequence of revisions.
    pub async fn stop(self) -> (ReadLog, Vec<Vec<String>>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        ReadLog::join(self.handles).await
    }
}

fn spawn_readers(
    st: &Stack,
    users: &[String],
    token: &str,
    readers: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    reads: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Vec<tokio::task::JoinHandle<ReadLog>> {
    (0..readers)
        .map(|r| {
            let (http, url) = (st.gateway.http.clone(), st.gateway.url.clone());
            let (users, token, stop) = (users.to_vec(), token.to_string(), stop.clone());
            let reads = reads.clone();
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
                    reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                log
            })
        })
        .collect()
}

/// `SourceReady` of the view, once it is False.
pub async fn source_refused(views: &Api<MaterializedView>, name: &str) -> Condition {
    eventually(
        &format!("{name}: SourceReady=False"),
        Duration::from_secs(120),
        || async {
            let status = views.get(name).await.ok()?.status?;
            status
                .conditions
                .into_iter()
                .find(|c| c.type_ == ConditionType::SourceReady)
                .filter(|c| c.status == ConditionStatus::False)
        },
    )
    .await
}
