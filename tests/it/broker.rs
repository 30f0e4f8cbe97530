//! The embedded broker against the real Kafka client matview ships
//! (librdkafka): topic creation, produce with keys and headers, fetch,
//! watermarks and offsets by time, consumer-group commits, and durability
//! across a restart. Expected values are the ones the test produced.

use std::time::Duration;

use matview::broker::EmbeddedBroker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

fn client(servers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", servers);
    config
}

async fn start(dir: &std::path::Path) -> (EmbeddedBroker, CancellationToken) {
    let cancel = CancellationToken::new();
    let listen = "127.0.0.1:0".parse().expect("address");
    let broker = EmbeddedBroker::start(dir, listen, cancel.clone())
        .await
        .expect("the embedded broker starts");
    (broker, cancel)
}

async fn create(servers: &str, topics: &[NewTopic<'_>]) -> Vec<Result<String, RDKafkaErrorCode>> {
    let admin: AdminClient<DefaultClientContext> = client(servers).create().expect("admin");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    admin
        .create_topics(topics, &options)
        .await
        .expect("create-topics request")
        .into_iter()
        .map(|r| r.map_err(|(_, code)| code))
        .collect()
}

/// Everything in partition `p` from offset 0 up to `until`, read by a
/// consumer with a group (as the projector reads), in a blocking thread.
/// A record as read: offset, key, value, headers.
type Seen = (i64, Vec<u8>, Vec<u8>, Vec<(String, Vec<u8>)>);

async fn consume(servers: &str, topic: &str, p: i32, until: i64) -> Vec<Seen> {
    let (servers, topic) = (servers.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client(&servers)
            .set("group.id", "compat")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, p, Offset::Beginning)
            .expect("tpl");
        consumer.assign(&tpl).expect("assign");
        let mut seen: Vec<Seen> = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while seen.last().is_none_or(|(o, ..)| *o + 1 < until) {
            assert!(
                std::time::Instant::now() < deadline,
                "consumed only {} records",
                seen.len()
            );
            let Some(m) = consumer.poll(Duration::from_millis(500)) else {
                continue;
            };
            let m = m.expect("a record, not an error");
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default();
            seen.push((
                m.offset(),
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
                headers,
            ));
        }
        // A simple (assign, no membership) commit, as the projector makes.
        let mut done = TopicPartitionList::new();
        done.add_partition_offset(&topic, p, Offset::Offset(until))
            .expect("tpl");
        consumer.commit(&done, CommitMode::Sync).expect("commit");
        let committed = consumer
            .committed_offsets(done, Duration::from_secs(10))
            .expect("committed offsets");
        let found = committed
            .find_partition(&topic, p)
            .expect("partition")
            .offset();
        assert_eq!(found, Offset::Offset(until), "committed offset read back");
        seen
    })
    .await
    .expect("consumer thread")
}

async fn produce(
    servers: &str,
    topic: &str,
    partition: i32,
    count: usize,
    from: usize,
) -> Vec<i64> {
    let producer: FutureProducer = client(servers)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let sends = (from..from + count).map(|i| {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "seq",
                value: Some(&i.to_string()),
            })
            .insert(Header {
                key: "empty",
                value: None::<&[u8]>,
            });
        let (key, value) = (format!("k{i}"), format!("{{\"n\":{i}}}"));
        let producer = &producer;
        async move {
            producer
                .send(
                    FutureRecord::to(topic)
                        .partition(partition)
                        .key(&key)
                        .payload(&value)
                        .headers(headers),
                    Duration::from_secs(10),
                )
                .await
                .map(|d| d.offset)
                .map_err(|(e, _)| e)
                .expect("delivered")
        }
    });
    futures::future::join_all(sends).await
}

#[tokio::test]
async fn librdkafka_produces_fetches_commits_and_finds_it_all_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, stop) = start(dir.path()).await;
    let servers = broker.bootstrap_servers();

    let created = create(
        &servers,
        &[
            NewTopic::new("compat", 3, TopicReplication::Fixed(1)),
            NewTopic::new("compat.dlq", 1, TopicReplication::Fixed(1)),
        ],
    )
    .await;
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
    let refused = create(
        &servers,
        &[
            NewTopic::new("compat", 1, TopicReplication::Fixed(1)),
            NewTopic::new("compat_dlq", 1, TopicReplication::Fixed(1)),
            NewTopic::new("bad name", 1, TopicReplication::Fixed(1)),
            NewTopic::new("replicated", 1, TopicReplication::Fixed(3)),
        ],
    )
    .await;
    assert_eq!(
        refused,
        vec![
            Err(RDKafkaErrorCode::TopicAlreadyExists),
            Err(RDKafkaErrorCode::TopicAlreadyExists),
            Err(RDKafkaErrorCode::InvalidTopic),
            Err(RDKafkaErrorCode::InvalidReplicationFactor),
        ]
    );

    let mut offsets = produce(&servers, "compat", 1, 250, 0).await;
    offsets.sort_unstable();
    assert_eq!(
        offsets,
        (0..250).collect::<Vec<i64>>(),
        "offsets given in order, none twice"
    );
    let seen = consume(&servers, "compat", 1, 250).await;
    assert_eq!(seen.len(), 250);
    for (i, (offset, key, value, headers)) in seen.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        // Keys name the send; the value and the headers must belong to it.
        let n: usize = String::from_utf8_lossy(key)
            .trim_start_matches('k')
            .parse()
            .expect("key");
        assert_eq!(value, format!("{{\"n\":{n}}}").as_bytes());
        assert_eq!(
            headers,
            &vec![
                ("seq".to_string(), n.to_string().into_bytes()),
                ("empty".to_string(), vec![])
            ]
        );
    }

    let watermarks = {
        let servers = servers.clone();
        tokio::task::spawn_blocking(move || {
            let c: BaseConsumer = client(&servers).create().expect("client");
            (0..3)
                .map(|p| {
                    c.fetch_watermarks("compat", p, Duration::from_secs(10))
                        .expect("watermarks")
                })
                .collect::<Vec<_>>()
        })
        .await
        .expect("thread")
    };
    assert_eq!(watermarks, vec![(0, 0), (0, 250), (0, 0)]);

    // Restart on the same data: records, offsets and commits are still there.
    stop.cancel();
    broker.stopped().await;
    let (broker, stop) = start(dir.path()).await;
    let servers = broker.bootstrap_servers();
    let more = produce(&servers, "compat", 1, 10, 250).await;
    assert_eq!(
        more.iter().min(),
        Some(&250),
        "offsets continue after a restart"
    );
    let seen = consume(&servers, "compat", 1, 260).await;
    assert_eq!(seen.len(), 260, "all records survive a restart");
    let committed = {
        let servers = servers.clone();
        tokio::task::spawn_blocking(move || {
            let c: BaseConsumer = client(&servers)
                .set("group.id", "compat")
                .create()
                .expect("client");
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition("compat", 1);
            tpl.add_partition("compat", 2);
            let found = c
                .committed_offsets(tpl, Duration::from_secs(10))
                .expect("committed");
            (
                found.find_partition("compat", 1).map(|p| p.offset()),
                found.find_partition("compat", 2).map(|p| p.offset()),
            )
        })
        .await
        .expect("thread")
    };
    assert_eq!(
        committed,
        (Some(Offset::Offset(260)), Some(Offset::Invalid))
    );
    stop.cancel();
    broker.stopped().await;
}

#[tokio::test]
async fn a_waiting_consumer_gets_a_record_produced_after_it_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, stop) = start(dir.path()).await;
    let servers = broker.bootstrap_servers();
    let created = create(
        &servers,
        &[NewTopic::new("late", 1, TopicReplication::Fixed(1))],
    )
    .await;
    assert!(created[0].is_ok());
    // The consumer starts at the end and long-polls; the record comes later.
    let reader = {
        let servers = servers.clone();
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = client(&servers)
                .set("group.id", "late")
                .set("fetch.wait.max.ms", "5000")
                .create()
                .expect("consumer");
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset("late", 0, Offset::End)
                .expect("tpl");
            consumer.assign(&tpl).expect("assign");
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                assert!(std::time::Instant::now() < deadline, "no record arrived");
                if let Some(m) = consumer.poll(Duration::from_millis(200)) {
                    let m = m.expect("record");
                    return m.payload().map(<[u8]>::to_vec);
                }
            }
        })
    };
    // Produce until the reader has its record (its start position is only
    // fixed once it has fetched once, so a record sent too early is skipped).
    let producer: FutureProducer = client(&servers).create().expect("producer");
    let mut sent = 0;
    while !reader.is_finished() && sent < 600 {
        producer
            .send(
                FutureRecord::<(), _>::to("late").payload("hello"),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("delivered");
        sent += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = reader.await.expect("reader thread");
    assert_eq!(got.as_deref(), Some(&b"hello"[..]));
    stop.cancel();
    broker.stopped().await;
}

#[tokio::test]
async fn matview_broker_serves_on_its_own_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = crate::support::projector::free_port();
    let servers = format!("127.0.0.1:{port}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_matview"))
        .args(["broker", "--listen", &servers, "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("matview broker");
    crate::support::eventually(
        "matview broker listens",
        Duration::from_secs(30),
        || async { std::net::TcpStream::connect(&servers).ok().map(|_| ()) },
    )
    .await;
    let created = create(
        &servers,
        &[NewTopic::new("cli", 2, TopicReplication::Fixed(1))],
    )
    .await;
    assert!(created[0].is_ok(), "{created:?}");
    let offsets = produce(&servers, "cli", 0, 3, 0).await;
    assert_eq!(offsets.len(), 3);
    let seen = consume(&servers, "cli", 0, 3).await;
    assert_eq!(seen.len(), 3);
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().expect("exit status");
    assert!(status.success(), "SIGTERM is a clean stop: {status}");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut out)
        .expect("stdout");
    assert!(
        out.contains(&format!("bootstrap.servers={servers}")),
        "{out}"
    );
    assert!(
        dir.path().join("topics/cli/0.log").exists(),
        "the log is on disk"
    );
}

/// Admission's topic rules (`engine::source`) are Kafka's: the real broker
/// and the embedded one refuse exactly the names admission refuses, and a
/// name colliding by '.' and '_'.
#[tokio::test]
async fn kafka_and_the_embedded_broker_refuse_what_admission_refuses() {
    use matview::engine::source::{topic_name_problem, topics_collide};
    let env = crate::support::TestEnv::with_kafka();
    let dir = tempfile::tempdir().expect("tempdir");
    let (embedded, stop) = start(dir.path()).await;
    let base = crate::support::unique_name("names");
    let long = "n".repeat(250);
    let candidates = [
        "..".to_string(),
        ".".to_string(),
        format!("{base} space"),
        long.clone(),
        format!("{base}.ok_name-1"),
        "n".repeat(249),
    ];
    for servers in [env.kafka_bootstrap.clone(), embedded.bootstrap_servers()] {
        for name in &candidates {
            let created = create(
                &servers,
                &[NewTopic::new(name, 1, TopicReplication::Fixed(1))],
            )
            .await;
            // The 249-character name may exist from an earlier run on the test broker.
            let accepted = matches!(
                created[0],
                Ok(_) | Err(RDKafkaErrorCode::TopicAlreadyExists)
            );
            assert_eq!(
                accepted,
                topic_name_problem(name).is_none(),
                "{servers}: {name:.20}… → {:?}",
                created[0]
            );
        }
        let (dotted, underscored) = (
            format!("{base}.x{}", servers.len()),
            format!("{base}_x{}", servers.len()),
        );
        assert!(topics_collide(&dotted, &underscored));
        let first = create(
            &servers,
            &[NewTopic::new(&dotted, 1, TopicReplication::Fixed(1))],
        )
        .await;
        assert!(first[0].is_ok(), "{first:?}");
        let second = create(
            &servers,
            &[NewTopic::new(&underscored, 1, TopicReplication::Fixed(1))],
        )
        .await;
        assert!(
            second[0].is_err(),
            "{servers}: {underscored} collides with {dotted}"
        );
    }
    stop.cancel();
    embedded.stopped().await;
}
