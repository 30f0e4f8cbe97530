//! One fault scenario's frame: a cluster, the whole system on it, a view
//! serving, readers through the gateway and a producer (`acks=all`,
//! idempotent) writing throughout; then, after the fault, the checks every
//! scenario shares.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use matview::workload::OrderGenerator;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

use crate::cluster::OwnCluster;
use crate::status_log::{Said, StatusLog};
use crate::support::kafka::create_topic_replicated;
use crate::support::projector::reference;
use crate::support::stack::{Readers, Stack, stack};

pub const VIEW: &str = "load";

pub struct Scenario {
    pub cluster: OwnCluster,
    pub st: Stack,
    pub reader: String,
    pub topic: String,
    readers: Readers,
    stop: Arc<AtomicBool>,
    producer: tokio::task::JoinHandle<()>,
    /// Every order Kafka acknowledged, in the order acknowledged.
    acknowledged: Arc<Mutex<Vec<Value>>>,
    /// When the fault began and ended, ms since the epoch.
    window: Mutex<(Option<i64>, Option<i64>)>,
    /// What status said of the source, read throughout.
    status: StatusLog,
    /// The producer's longest wait for an acknowledgement.
    slowest_ack: Arc<Mutex<Duration>>,
}

fn producer(servers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        // Longer than any fault: an order waits for the cluster, never fails.
        // Otherwise librdkafka's defaults, as a user's producer has them.
        .set("message.timeout.ms", "180000")
        .create()
        .expect("producer")
}

/// Sends `orders` keyed by order id; each is acknowledged or the test
/// fails. The longest wait for an acknowledgement.
async fn send(producer: &FutureProducer, topic: &str, orders: &[Value]) -> Duration {
    let sends = orders.iter().map(|order| {
        let key = order["orderId"].as_str().unwrap_or_default().to_string();
        let payload = order.to_string();
        async move {
            let sent = Instant::now();
            producer
                .send(
                    FutureRecord::to(topic).key(&key).payload(&payload),
                    Duration::from_secs(180),
                )
                .await
                .map_err(|(e, _)| e)
                .unwrap_or_else(|e| panic!("order {key} not acknowledged: {e}"));
            sent.elapsed()
        }
    });
    let waits = futures::future::join_all(sends).await;
    waits.into_iter().max().unwrap_or_default()
}

impl Scenario {
    /// A cluster and a serving view of 400 orders over `shards` shards (two
    /// replicas each); readers and the producer (10 orders every 200 ms)
    /// running.
    pub async fn start(name: &str, shards: i32) -> Scenario {
        let cluster = tokio::task::block_in_place(|| OwnCluster::start(name));
        let servers = cluster.bootstrap.clone();
        let st = stack(name, "kubernetes").await;
        let reader = st.reader().await;
        let topic =
            create_topic_replicated(&servers, "orders", 2, 3, &[("min.insync.replicas", "2")])
                .await;
        let mut generator = OrderGenerator::new(97, 30);
        let first: Vec<Value> = (0..400).map(|_| generator.next_order()).collect();
        send(&producer(&servers), &topic, &first).await;
        st.create_view_on(&servers, VIEW, &topic, shards, 2, false)
            .await;
        let expected = reference(&first);
        st.ready(VIEW, expected.len() as i64).await;
        let users: Vec<String> = expected.keys().cloned().collect();
        let path = format!(
            "/v1/namespaces/{}/views/{VIEW}/rows/{}",
            st.ns.name, users[0]
        );
        st.serving(&path, Some(&reader)).await;
        let readers = Readers::spawn(&st, &users, &reader, 4);

        let acknowledged = Arc::new(Mutex::new(first));
        let stop = Arc::new(AtomicBool::new(false));
        let slowest_ack = Arc::new(Mutex::new(Duration::ZERO));
        let producer_task = {
            let (topic, stop, acknowledged, slowest) = (
                topic.clone(),
                stop.clone(),
                acknowledged.clone(),
                slowest_ack.clone(),
            );
            let producer = producer(&servers);
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let chunk: Vec<Value> = (0..10).map(|_| generator.next_order()).collect();
                    let waited = send(&producer, &topic, &chunk).await;
                    if let Ok(mut slowest) = slowest.lock() {
                        *slowest = (*slowest).max(waited);
                    }
                    if let Ok(mut all) = acknowledged.lock() {
                        all.extend(chunk);
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        };
        readers.read_more(100, "reads before the fault").await;
        let status = StatusLog::spawn(st.views.clone(), VIEW);
        Scenario {
            cluster,
            st,
            reader,
            topic,
            readers,
            stop,
            producer: producer_task,
            acknowledged,
            window: Mutex::new((None, None)),
            status,
            slowest_ack,
        }
    }

    fn began_ms(&self) -> i64 {
        self.window
            .lock()
            .ok()
            .and_then(|w| w.0)
            .expect("the fault began")
    }

    /// Waits until, since the fault began, the view's `SourceReady` said
    /// `reason` with each of `words` in its message; what it said, and how
    /// long after the fault began.
    pub async fn status_says(&self, reason: &str, words: &[&str]) -> (Said, Duration) {
        let began = self.began_ms();
        let said = crate::support::eventually(
            &format!("status to say SourceReady {reason} naming {words:?}"),
            Duration::from_secs(90),
            || async {
                self.status
                    .since(began)
                    .into_iter()
                    .find(|s| s.reason == reason && words.iter().all(|w| s.message.contains(w)))
            },
        )
        .await;
        let after = Duration::from_millis((said.at_ms - began).max(0) as u64);
        println!(
            "status said after {after:?}: SourceReady {} {}: {}",
            said.ok, said.reason, said.message
        );
        (said, after)
    }

    /// The fault begins now (for the figures of [`Scenario::finish`]).
    pub fn fault_begins(&self) {
        if let Ok(mut w) = self.window.lock() {
            w.0 = Some(crate::figures::now_ms());
        }
    }

    /// The fault ends now.
    pub fn fault_ends(&self) {
        if let Ok(mut w) = self.window.lock() {
            w.1 = Some(crate::figures::now_ms());
        }
    }

    fn acknowledged(&self) -> usize {
        self.acknowledged.lock().map(|a| a.len()).unwrap_or(0)
    }

    /// Waits until every replica of the view applied each partition of the
    /// topic up to `marks`, failing at `by` (while the fault still lasts: a
    /// replica that only follows a new leader once the fault heals fails).
    pub async fn every_replica_reaches(&self, marks: &BTreeMap<i32, i64>, by: Instant) {
        let pods: Api<Pod> = Api::namespaced(self.st.client.clone(), &self.st.ns.name);
        let label = format!("{}={VIEW}", matview::api::names::LABEL_VIEW);
        let names: Vec<String> = pods
            .list(&ListParams::default().labels(&label))
            .await
            .expect("pods")
            .items
            .iter()
            .map(|p| p.name_any())
            .collect();
        loop {
            let mut behind = Vec::new();
            for name in &names {
                let applied = self.applied(name).await;
                let short: Vec<String> = marks
                    .iter()
                    .filter(|(p, mark)| applied.get(p).is_none_or(|a| a < mark))
                    .map(|(p, mark)| format!("partition {p} at {:?} of {mark}", applied.get(p)))
                    .collect();
                if !short.is_empty() {
                    behind.push(format!("{name}: {}", short.join(", ")));
                }
            }
            if behind.is_empty() {
                return;
            }
            assert!(
                Instant::now() < by,
                "replicas still behind while the fault lasts: {}",
                behind.join("; ")
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A replica's applied offsets (the next to apply) per partition.
    async fn applied(&self, pod: &str) -> BTreeMap<i32, i64> {
        let Some(ip) = self.st.kubelet().address(pod) else {
            return BTreeMap::new();
        };
        let url = format!(
            "http://{ip}:{}/v1/positions",
            matview::api::names::HTTP_PORT
        );
        let Ok(answer) = reqwest::get(&url).await else {
            return BTreeMap::new();
        };
        let positions: Option<matview::api::projector::Positions> = answer.json().await.ok();
        positions
            .map(|p| {
                p.partitions
                    .iter()
                    .map(|p| (p.partition, p.applied))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until the producer got `more` orders acknowledged beyond now.
    pub async fn produced_more(&self, more: usize, what: &str) {
        let target = self.acknowledged() + more;
        crate::support::eventually(what, Duration::from_secs(180), || async {
            (self.acknowledged() >= target).then_some(())
        })
        .await;
    }

    /// Stops the producer and checks: every row equals the reference of all
    /// acknowledged orders, the view Ready by itself, no read failed. The
    /// cluster is handed back for checks of its own.
    pub async fn finish(self, what: &str) -> OwnCluster {
        self.produced_more(50, &format!("orders acknowledged after {what}"))
            .await;
        // Orders keep coming through the window after the fault whose
        // freshness is measured, until its figures' intervals closed: a
        // measurement window, not a wait for anything to happen.
        let window = self.window.lock().map(|w| *w).unwrap_or_default();
        if let Some(ended) = window.1 {
            let after_ms = crate::figures::AFTER.as_millis() as i64 + 2_000;
            let left = (ended + after_ms - crate::figures::now_ms()).max(0);
            tokio::time::sleep(Duration::from_millis(left as u64)).await;
        }
        self.stop.store(true, Ordering::Relaxed);
        self.producer.await.expect("producer");
        let all = self
            .acknowledged
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default();
        let expected = reference(&all);
        let back = Instant::now();
        self.st.ready(VIEW, expected.len() as i64).await;
        self.st.serves(VIEW, &expected, &self.reader).await;
        let caught_up = back.elapsed();
        // Status recovers by itself: the source found, nothing out of sync.
        crate::support::eventually(
            "SourceReady=True TopicFound again",
            Duration::from_secs(120),
            || async {
                let last = self.status.since(0).pop()?;
                (last.ok && last.reason == "TopicFound").then_some(())
            },
        )
        .await;
        let (total, _) = self.readers.stop().await;
        let felt = crate::figures::felt(&self.st, &self.reader, VIEW, window).await;
        let story = window
            .0
            .map(|began| self.status.story(began))
            .unwrap_or_default();
        let slowest_ack = self.slowest_ack.lock().map(|s| *s).unwrap_or_default();
        println!(
            "{what}: {} orders, {} reads, {} failed; every row right {caught_up:?} after the fault; {felt}; the producer's slowest acknowledgement {slowest_ack:.1?}; status since the fault: {story}",
            all.len(),
            total.reads,
            total.failures.len()
        );
        total.assert_none_failed(&self.st.gateway_log());
        assert_eq!(
            self.st.rows(VIEW, expected.keys(), &self.reader).await,
            expected
        );
        self.cluster
    }
}
