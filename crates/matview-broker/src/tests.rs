//! The broker's own limits and its async workers, spoken to in raw Kafka
//! protocol (requests encoded by the `kafka-protocol` crate's client side,
//! independent of the broker's handlers). A named pipe stands where the
//! broker expects a file: opening or reading it blocks until the test lets
//! it go, which is how a slow disk looks to the broker, made certain.

use std::ffi::CString;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, FetchRequest, FetchResponse, GroupId,
    MetadataRequest, OffsetCommitRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::batch::tests::batch;
use super::{EmbeddedBroker, Limits, MAX_REQUEST_BYTES, read_frame};

/// A generous bound for an answer that must come, on a loaded machine.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

async fn start(dir: &Path, limits: Limits) -> (EmbeddedBroker, CancellationToken) {
    let cancel = CancellationToken::new();
    let listen = "127.0.0.1:0".parse().expect("address");
    let broker = EmbeddedBroker::start_with(dir, listen, limits, cancel.clone())
        .await
        .expect("the broker starts");
    (broker, cancel)
}

fn name(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Writes one request with correlation id `id`.
async fn send<R: Encodable>(stream: &mut TcpStream, key: ApiKey, version: i16, id: i32, body: &R) {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(id)
        .with_client_id(Some(name("broker-tests")))
        .encode(&mut buf, key.request_header_version(version))
        .expect("header encodes");
    body.encode(&mut buf, version).expect("request encodes");
    let mut framed = BytesMut::new();
    framed.put_i32(i32::try_from(buf.len()).expect("small"));
    framed.extend_from_slice(&buf);
    stream.write_all(&framed).await.expect("request written");
}

/// Reads one answer: its correlation id and body, or `None` at EOF.
async fn receive(stream: &mut TcpStream, key: ApiKey, version: i16) -> Option<(i32, Bytes)> {
    let length = stream.read_i32().await.ok()?;
    let mut frame = vec![0u8; usize::try_from(length).ok()?];
    stream.read_exact(&mut frame).await.ok()?;
    let mut frame = Bytes::from(frame);
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
        .expect("response header");
    Some((header.correlation_id, frame))
}

async fn connect(broker: &EmbeddedBroker) -> TcpStream {
    TcpStream::connect(broker.address).await.expect("connects")
}

/// ApiVersions answered on a fresh connection within [`ANSWER_WITHIN`].
async fn answers(broker: &EmbeddedBroker) -> bool {
    let ask = async {
        let mut stream = connect(broker).await;
        send(
            &mut stream,
            ApiKey::ApiVersions,
            3,
            7,
            &ApiVersionsRequest::default(),
        )
        .await;
        receive(&mut stream, ApiKey::ApiVersions, 3).await
    };
    matches!(
        tokio::time::timeout(ANSWER_WITHIN, ask).await,
        Ok(Some((7, _)))
    )
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: `c` is a valid NUL-terminated path for the call's duration.
    let made = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(made, 0, "mkfifo {}", path.display());
}

fn commit_request(topic: &str, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(name("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(name(topic)))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ])
}

/// An OffsetCommit waiting on the disk holds no async worker: with one
/// worker only, another client is still answered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_commit_waiting_on_the_disk_does_not_stop_other_clients() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (broker, cancel) = start(dir.path(), Limits::default()).await;
    broker
        .state_for_tests()
        .log
        .create_topic("t", 1, false)
        .expect("topic");
    let pipe = dir.path().join("committed-offsets.json.tmp");
    mkfifo(&pipe);

    let mut committer = connect(&broker).await;
    send(
        &mut committer,
        ApiKey::OffsetCommit,
        8,
        1,
        &commit_request("t", 5),
    )
    .await;
    // The commit now waits to open the pipe for writing.
    assert!(
        answers(&broker).await,
        "another client is answered while a commit waits"
    );

    // Let the commit through: read what it writes (its fsync then fails on
    // a pipe, which the broker reports as a storage error, not a hang).
    let drained = tokio::task::spawn_blocking(move || std::fs::read(&pipe));
    let answer = tokio::time::timeout(
        ANSWER_WITHIN,
        receive(&mut committer, ApiKey::OffsetCommit, 8),
    )
    .await
    .expect("the commit is answered once the disk moves");
    assert_eq!(answer.map(|(id, _)| id), Some(1));
    drained.await.expect("joined").expect("pipe read");
    std::fs::remove_file(dir.path().join("committed-offsets.json.tmp")).expect("pipe removed");
    send(
        &mut committer,
        ApiKey::OffsetCommit,
        8,
        2,
        &commit_request("t", 6),
    )
    .await;
    let answer = receive(&mut committer, ApiKey::OffsetCommit, 8).await;
    assert_eq!(answer.map(|(id, _)| id), Some(2));
    assert_eq!(
        broker.state_for_tests().offsets.of_group("g")["t"][&0].offset,
        6
    );
    cancel.cancel();
    broker.stopped().await;
}

/// A topic whose files are slow to create holds neither an async worker
/// nor the topics' lock: Metadata (which reads every topic) is answered.
#[test]
fn a_topic_being_created_does_not_stop_metadata_or_other_clients() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    runtime.block_on(async {
        let (broker, cancel) = start(dir.path(), Limits::default()).await;
        let stuck = dir.path().join("topics/slow");
        std::fs::create_dir_all(&stuck).expect("mkdir");
        // Reading the partition file back (as opening a partition does)
        // waits on this pipe for good.
        mkfifo(&stuck.join("0.log"));
        let mut creator = connect(&broker).await;
        let create = CreateTopicsRequest::default()
            .with_timeout_ms(60_000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(TopicName(name("slow")))
                    .with_num_partitions(1)
                    .with_replication_factor(1),
            ]);
        send(&mut creator, ApiKey::CreateTopics, 4, 1, &create).await;
        assert!(
            answers(&broker).await,
            "ApiVersions answered during a creation"
        );
        let metadata = async {
            let mut stream = connect(&broker).await;
            send(
                &mut stream,
                ApiKey::Metadata,
                9,
                3,
                &MetadataRequest::default(),
            )
            .await;
            receive(&mut stream, ApiKey::Metadata, 9).await
        };
        let answered = tokio::time::timeout(ANSWER_WITHIN, metadata).await;
        assert!(
            matches!(answered, Ok(Some((3, _)))),
            "Metadata answered during a creation"
        );
        cancel.cancel();
    });
    // The creation stays stuck on its pipe: leave its thread behind.
    runtime.shutdown_background();
}

/// However much a client asks for, one fetch answer carries at most the
/// broker's limit (and always at least one whole batch).
#[tokio::test]
async fn a_fetch_gets_at_most_the_brokers_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = Limits {
        max_fetch_bytes: 1024,
        ..Limits::default()
    };
    let (broker, cancel) = start(dir.path(), limits).await;
    let log = &broker.state_for_tests().log;
    log.create_topic("t", 1, false).expect("topic");
    let one = batch(20, 1);
    for _ in 0..50 {
        log.append("t", 0, &one).expect("append");
    }
    let mut stream = connect(&broker).await;
    let fetch = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(i32::MAX)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(name("t")))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(i32::MAX),
                ]),
        ]);
    send(&mut stream, ApiKey::Fetch, 12, 4, &fetch).await;
    let (_, mut body) = receive(&mut stream, ApiKey::Fetch, 12)
        .await
        .expect("answered");
    let response = FetchResponse::decode(&mut body, 12).expect("fetch response");
    let records = response.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    let batches = records.len() / one.len();
    assert_eq!(records.len() % one.len(), 0, "whole batches");
    assert!(
        batches >= 1 && records.len() <= 1024 + one.len(),
        "{batches} batches of {} bytes for a 1 KiB limit",
        one.len()
    );
    assert!(batches < 50, "not the whole log");
    cancel.cancel();
    broker.stopped().await;
}

/// Past the connection limit a new connection is closed at once; those
/// within it are served.
#[tokio::test]
async fn connections_beyond_the_limit_are_closed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let (broker, cancel) = start(dir.path(), limits).await;
    let mut held = Vec::new();
    for id in 0..2 {
        let mut stream = connect(&broker).await;
        send(
            &mut stream,
            ApiKey::ApiVersions,
            3,
            id,
            &ApiVersionsRequest::default(),
        )
        .await;
        let answer = receive(&mut stream, ApiKey::ApiVersions, 3).await;
        assert_eq!(
            answer.map(|(c, _)| c),
            Some(id),
            "connection {id} is served"
        );
        held.push(stream);
    }
    let mut third = connect(&broker).await;
    send(
        &mut third,
        ApiKey::ApiVersions,
        3,
        9,
        &ApiVersionsRequest::default(),
    )
    .await;
    let answer = tokio::time::timeout(ANSWER_WITHIN, receive(&mut third, ApiKey::ApiVersions, 3))
        .await
        .expect("closed, not left hanging");
    assert!(answer.is_none(), "the third connection is closed");
    // One leaves: a new one is served again.
    drop(held.pop());
    let served = async {
        loop {
            let mut stream = connect(&broker).await;
            send(
                &mut stream,
                ApiKey::ApiVersions,
                3,
                11,
                &ApiVersionsRequest::default(),
            )
            .await;
            if receive(&mut stream, ApiKey::ApiVersions, 3).await.is_some() {
                return;
            }
            // The closed connection's task may not be reaped yet.
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(ANSWER_WITHIN, served)
        .await
        .expect("a connection is served once another left");
    cancel.cancel();
    broker.stopped().await;
}

/// A reader that claims a request of nearly 100 MiB, then trickles 1 KiB
/// at a time and ends after 3 KiB, recording the largest buffer the frame
/// reader offered it.
struct Trickle {
    header: Option<[u8; 4]>,
    left: usize,
    largest_offer: usize,
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(header) = self.header.take() {
            buf.put_slice(&header);
            return Poll::Ready(Ok(()));
        }
        self.largest_offer = self.largest_offer.max(buf.remaining());
        let n = self.left.min(1024).min(buf.remaining());
        buf.put_slice(&vec![0u8; n]);
        self.left -= n;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_claimed_length_alone_reserves_no_memory() {
    let claimed = i32::try_from(MAX_REQUEST_BYTES - 1).expect("fits");
    let mut reader = Trickle {
        header: Some(claimed.to_be_bytes()),
        left: 3 * 1024,
        largest_offer: 0,
    };
    assert!(
        read_frame(&mut reader).await.is_none(),
        "a cut-short frame is refused"
    );
    assert!(
        reader.largest_offer <= 256 * 1024,
        "a buffer of {} bytes was offered for 3 KiB received",
        reader.largest_offer
    );
    let mut whole = BytesMut::new();
    whole.put_i32(5);
    whole.put_slice(b"hello");
    let mut bytes = &whole[..];
    let frame = read_frame(&mut bytes).await.expect("a whole frame");
    assert_eq!(frame.chunk(), b"hello");
}
