//! Running `matview projector` processes against the test broker, and an
//! independent reference of the shop view to compare them with.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

use super::TestEnv;

/// A shop view (items of each user by price) on the given topics.
pub fn shop_view_yaml(
    env: &TestEnv,
    name: &str,
    topic: &str,
    dead_letter: &str,
    shards: u32,
) -> String {
    format!(
        r#"apiVersion: matview.dev/v1alpha1
kind: MaterializedView
metadata: {{name: {name}, namespace: tests}}
spec:
  source:
    kafka: {{bootstrapServers: "{bootstrap}", topic: {topic}}}
  records:
    explode: /items
    key: ^/userId
    id: /itemId
    fields: {{name: /name, price: /price, orderId: ^/orderId}}
  classify:
    field: price
    rules:
      - {{group: cheap, lt: 5}}
      - {{group: affordable, gte: 5, lte: 50}}
      - {{group: expensive, gt: 50}}
  aggregate: {{count: true, sum: [price], items: {{limit: 5}}}}
  shards: {shards}
  deadLetter: {{topic: {dead_letter}}}
"#,
        bootstrap = env.kafka_bootstrap
    )
}

/// Per user, per group: (count, sum of prices in cents). Computed straight
/// from the orders, without the engine.
pub type Reference = BTreeMap<String, BTreeMap<&'static str, (u64, i64)>>;

pub fn reference(orders: &[Value]) -> Reference {
    reference_with(orders, 5.0)
}

/// [`reference`] with "cheap" meaning below `cheap` (the other bounds as in
/// the shop example).
pub fn reference_with(orders: &[Value], cheap: f64) -> Reference {
    let cheap_cents = (cheap * 100.0).round() as i64;
    let mut out: Reference = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for order in orders {
        let user = order["userId"].as_str().expect("userId").to_string();
        for item in order["items"].as_array().expect("items") {
            assert!(
                seen.insert(item["itemId"].as_str().expect("itemId").to_string()),
                "item ids must be unique"
            );
            let cents = (item["price"].as_f64().expect("price") * 100.0).round() as i64;
            let group = if cents < cheap_cents {
                "cheap"
            } else if cents <= 5000 {
                "affordable"
            } else {
                "expensive"
            };
            let entry = out
                .entry(user.clone())
                .or_default()
                .entry(group)
                .or_insert((0, 0));
            entry.0 += 1;
            entry.1 += cents;
        }
    }
    out
}

/// The (count, cents) per group of a served row.
pub fn row_totals(row: &Value) -> BTreeMap<&'static str, (u64, i64)> {
    let mut out = BTreeMap::new();
    for group in ["cheap", "affordable", "expensive"] {
        let g = &row["groups"][group];
        let count = g["count"]
            .as_u64()
            .unwrap_or_else(|| panic!("no count in {row}"));
        let cents = (g["sum"]["price"]
            .as_f64()
            .unwrap_or_else(|| panic!("no sum in {row}"))
            * 100.0)
            .round() as i64;
        if count > 0 {
            out.insert(group, (count, cents));
        }
    }
    out
}

/// Produces order documents keyed by their order id.
pub async fn produce_orders(env: &TestEnv, topic: &str, orders: &[Value]) {
    produce_orders_at(&env.kafka_bootstrap, topic, orders).await;
}

/// Produces order documents keyed by their order id to the given Kafka.
pub async fn produce_orders_at(servers: &str, topic: &str, orders: &[Value]) {
    let events: Vec<(String, Vec<u8>)> = orders
        .iter()
        .map(|o| {
            (
                o["orderId"].as_str().unwrap_or_default().into(),
                o.to_string().into_bytes(),
            )
        })
        .collect();
    produce_at(servers, topic, &events).await;
}

/// Produces orders keyed by order id (not by user), waiting for every delivery.
pub async fn produce(env: &TestEnv, topic: &str, events: &[(String, Vec<u8>)]) {
    produce_at(&env.kafka_bootstrap, topic, events).await;
}

/// Produces keyed events to the given Kafka, waiting for every delivery.
pub async fn produce_at(servers: &str, topic: &str, events: &[(String, Vec<u8>)]) {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("linger.ms", "10")
        .set("message.max.bytes", "5000000")
        .create()
        .expect("producer");
    for chunk in events.chunks(2000) {
        let sends = chunk.iter().map(|(key, payload)| {
            producer.send(
                FutureRecord::to(topic).key(key).payload(payload),
                Duration::from_secs(30),
            )
        });
        for sent in futures::future::join_all(sends).await {
            sent.map_err(|(e, _)| e).expect("produce failed");
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One `matview projector` process.
pub struct Projector {
    child: Option<Child>,
    pub base: String,
    pub log: PathBuf,
    args: Vec<String>,
    /// Arguments added by the last `restart_with`.
    extra: Vec<String>,
}

impl Projector {
    pub fn start(view_file: &Path, shard: u32, data_dir: &Path, log_dir: &Path) -> Projector {
        Self::start_with(view_file, shard, data_dir, log_dir, &[])
    }

    /// [`Projector::start`] with `extra` arguments.
    pub fn start_with(
        view_file: &Path,
        shard: u32,
        data_dir: &Path,
        log_dir: &Path,
        extra: &[&str],
    ) -> Projector {
        let port = free_port();
        let args = vec![
            "projector".to_string(),
            "--view".into(),
            view_file.display().to_string(),
            "--shard".into(),
            shard.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--batch-max-events".into(),
            "500".into(),
        ];
        let log = log_dir.join(format!("projector-{shard}-{port}.log"));
        let mut p = Projector {
            child: None,
            base: format!("http://127.0.0.1:{port}"),
            log,
            args,
            extra: extra.iter().map(|a| a.to_string()).collect(),
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_matview"))
            .args(&self.args)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start matview projector");
        self.child = Some(child);
    }

    /// kill -9, then start again with the same arguments and data.
    pub fn crash_and_restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.spawn();
    }

    /// SIGTERM; returns the exit status and how long the exit took.
    pub fn terminate(&mut self) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("running");
        let started = Instant::now();
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let status = child.wait().expect("wait");
        (status, started.elapsed())
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn();
    }

    /// The rows of `keys` this projector serves (a key without a row is left
    /// out); panics on any answer but 200 or 404.
    pub async fn rows(&self, keys: impl IntoIterator<Item = &String>) -> Reference {
        let mut out = Reference::new();
        for key in keys {
            match self.get(&format!("/v1/rows/{key}")).await {
                Some((200, row)) => {
                    out.insert(key.clone(), row_totals(&row));
                }
                Some((404, _)) => {}
                other => panic!("GET row {key}: {other:?}"),
            }
        }
        out
    }

    /// Starts again (after `terminate`) with `extra` arguments added
    /// (instead of those of an earlier `restart_with`).
    pub fn restart_with(&mut self, extra: &[&str]) {
        self.extra = extra.iter().map(|a| a.to_string()).collect();
        self.restart();
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().expect("started");
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {timeout:?}; log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the process is still the one started (it has not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The body as text: numbers exactly as served.
    pub async fn get_text(&self, path: &str) -> Option<String> {
        reqwest::get(format!("{}{path}", self.base))
            .await
            .ok()?
            .text()
            .await
            .ok()
    }

    pub async fn get(&self, path: &str) -> Option<(u16, Value)> {
        let response = reqwest::get(format!("{}{path}", self.base)).await.ok()?;
        let status = response.status().as_u16();
        let text = response.text().await.ok()?;
        Some((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.base))
            .await
            .expect("metrics reachable")
            .text()
            .await
            .expect("metrics text")
    }

    /// Waits until the projector has applied `expected_events` events over its partitions.
    /// Waits until `/readyz` answers 200 with a body `wanted` accepts, for
    /// up to `timeout`; returns how long it took. The panic names `what`
    /// and carries the projector's log.
    pub async fn wait_readyz(
        &self,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Duration {
        let started = std::time::Instant::now();
        loop {
            if let Some((200, body)) = self.get("/readyz").await
                && wanted(&body)
            {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < timeout,
                "{what} not seen in /readyz within {timeout:?}; log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_applied(&self, expected_events: i64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((200, positions)) = self.get("/v1/positions").await {
                let applied: i64 = positions["partitions"]
                    .as_array()
                    .map(|ps| ps.iter().map(|p| p["applied"].as_i64().unwrap_or(0)).sum())
                    .unwrap_or(0);
                if applied >= expected_events {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "projector did not apply {expected_events} events within {timeout:?}; log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Projector {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A metric's value from the Prometheus text.
pub fn metric(text: &str, name: &str) -> f64 {
    matview::projector::metrics::sample(text, name)
        .unwrap_or_else(|| panic!("metric {name} not found in:\n{text}"))
}
