//! One function per Kafka API the embedded broker answers. Each turns a
//! decoded request into a response; fields that exist only in some versions
//! are set only for those (the encoder refuses others).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest,
    FetchResponse, FindCoordinatorRequest, FindCoordinatorResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, ProduceRequest, ProduceResponse,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tracing::warn;

use super::State;
use super::batch::BatchError;
use super::groups::Committed;
use super::log::{LogError, Watch};

/// The APIs and versions answered: what matview's clients (librdkafka) use,
/// without topic IDs, transactions or group membership.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 9),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 4),
];

/// Kafka's error codes used here.
mod code {
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
}

const NODE: BrokerId = BrokerId(0);

/// Whether `version` of `key` is answered.
pub fn supports(key: ApiKey, version: i16) -> bool {
    SUPPORTED
        .iter()
        .any(|&(k, min, max)| k == key && (min..=max).contains(&version))
}

fn error_code(e: &LogError) -> i16 {
    match e {
        LogError::UnknownPartition(_) => code::UNKNOWN_TOPIC_OR_PARTITION,
        LogError::OutOfRange { .. } => code::OFFSET_OUT_OF_RANGE,
        LogError::Batch(BatchError::Magic(_)) => code::UNSUPPORTED_FOR_MESSAGE_FORMAT,
        LogError::Batch(_) => code::CORRUPT_MESSAGE,
        LogError::TopicExists(_) => code::TOPIC_ALREADY_EXISTS,
        LogError::InvalidTopic(_) => code::INVALID_TOPIC_EXCEPTION,
        LogError::InvalidPartitions(_) => code::INVALID_PARTITIONS,
        LogError::Io { .. } | LogError::BadTopic { .. } => code::KAFKA_STORAGE_ERROR,
    }
}

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(text(s))
}

/// The requests answered, decoded.
pub enum RequestKind {
    ApiVersions,
    Metadata(MetadataRequest),
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    FindCoordinator(FindCoordinatorRequest),
    OffsetCommit(OffsetCommitRequest),
    OffsetFetch(OffsetFetchRequest),
    CreateTopics(CreateTopicsRequest),
}

impl RequestKind {
    /// Decodes the body of a request whose key and version are supported.
    pub fn decode(key: ApiKey, body: &mut Bytes, version: i16) -> Result<RequestKind, String> {
        fn body_of<T: Decodable>(body: &mut Bytes, version: i16) -> Result<T, String> {
            T::decode(body, version).map_err(|e| e.to_string())
        }
        Ok(match key {
            ApiKey::ApiVersions => RequestKind::ApiVersions,
            ApiKey::Metadata => RequestKind::Metadata(body_of(body, version)?),
            ApiKey::Produce => RequestKind::Produce(body_of(body, version)?),
            ApiKey::Fetch => RequestKind::Fetch(body_of(body, version)?),
            ApiKey::ListOffsets => RequestKind::ListOffsets(body_of(body, version)?),
            ApiKey::FindCoordinator => RequestKind::FindCoordinator(body_of(body, version)?),
            ApiKey::OffsetCommit => RequestKind::OffsetCommit(body_of(body, version)?),
            ApiKey::OffsetFetch => RequestKind::OffsetFetch(body_of(body, version)?),
            ApiKey::CreateTopics => RequestKind::CreateTopics(body_of(body, version)?),
            other => return Err(format!("{other:?} is not answered")),
        })
    }
}

/// The answers, ready to encode.
pub enum ResponseKind {
    ApiVersions(ApiVersionsResponse),
    Metadata(MetadataResponse),
    Produce(ProduceResponse),
    Fetch(FetchResponse),
    ListOffsets(ListOffsetsResponse),
    FindCoordinator(FindCoordinatorResponse),
    OffsetCommit(OffsetCommitResponse),
    OffsetFetch(OffsetFetchResponse),
    CreateTopics(CreateTopicsResponse),
}

impl ResponseKind {
    pub fn encode(&self, out: &mut bytes::BytesMut, version: i16) -> Result<(), String> {
        let encoded = match self {
            ResponseKind::ApiVersions(r) => r.encode(out, version),
            ResponseKind::Metadata(r) => r.encode(out, version),
            ResponseKind::Produce(r) => r.encode(out, version),
            ResponseKind::Fetch(r) => r.encode(out, version),
            ResponseKind::ListOffsets(r) => r.encode(out, version),
            ResponseKind::FindCoordinator(r) => r.encode(out, version),
            ResponseKind::OffsetCommit(r) => r.encode(out, version),
            ResponseKind::OffsetFetch(r) => r.encode(out, version),
            ResponseKind::CreateTopics(r) => r.encode(out, version),
        };
        encoded.map_err(|e| e.to_string())
    }
}

/// Answers one request; `None` when the client wants no answer (acks=0).
pub async fn handle(
    state: &Arc<State>,
    request: RequestKind,
    version: i16,
) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::ApiVersions => ResponseKind::ApiVersions(api_versions(0)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata(state, &r, version)),
        RequestKind::Produce(r) => {
            // Writes and fsyncs off the async workers, which also serve
            // the gateway and the page in `matview dev`.
            let (response, acks) = blocking(state, move |s| (produce(s, &r), r.acks)).await?;
            if acks == 0 {
                return None;
            }
            ResponseKind::Produce(response)
        }
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch(state, Arc::new(r), version).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets(state, &r)),
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(find_coordinator(state, &r))
        }
        // Both write and fsync files (projectors commit after every batch):
        // off the async workers, like produce.
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(blocking(state, move |s| offset_commit(s, &r)).await?)
        }
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(offset_fetch(state, &r)),
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(blocking(state, move |s| create_topics(s, &r)).await?)
        }
    })
}

/// Runs `f` on the blocking pool; `None` if it panicked (the connection closes).
async fn blocking<T: Send + 'static>(
    state: &Arc<State>,
    f: impl FnOnce(&State) -> T + Send + 'static,
) -> Option<T> {
    let shared = Arc::clone(state);
    tokio::task::spawn_blocking(move || f(&shared)).await.ok()
}

/// The version table; `error` is UNSUPPORTED_VERSION when the client asked
/// for an ApiVersions version newer than ours (it then retries with ours).
pub fn api_versions(error: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error)
        .with_api_keys(
            SUPPORTED
                .iter()
                .map(|&(key, min, max)| {
                    ApiVersion::default()
                        .with_api_key(key as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        )
}

pub fn unsupported_api_versions() -> ApiVersionsResponse {
    api_versions(code::UNSUPPORTED_VERSION)
}

fn metadata(state: &State, request: &MetadataRequest, version: i16) -> MetadataResponse {
    let all = state.log.topics();
    let wanted: Vec<(String, Option<i32>)> = match &request.topics {
        // v0 says "all" with an empty list; later versions with null.
        Some(list) if !(version == 0 && list.is_empty()) => list
            .iter()
            .filter_map(|t| t.name.as_ref())
            .map(|n| {
                (
                    n.as_str().to_string(),
                    state.log.partition_count(n.as_str()),
                )
            })
            .collect(),
        _ => all.into_iter().map(|(n, c)| (n, Some(c))).collect(),
    };
    let topics = wanted
        .into_iter()
        .map(|(name, count)| {
            let topic = MetadataResponseTopic::default().with_name(Some(topic_name(&name)));
            match count {
                None => topic.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION),
                Some(count) => topic.with_partitions(
                    (0..count)
                        .map(|p| {
                            MetadataResponsePartition::default()
                                .with_partition_index(p)
                                .with_leader_id(NODE)
                                .with_replica_nodes(vec![NODE])
                                .with_isr_nodes(vec![NODE])
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    let mut response = MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(NODE)
                .with_host(text(&state.host))
                .with_port(state.port),
        ])
        .with_topics(topics);
    if version >= 1 {
        response = response.with_controller_id(NODE);
    }
    if version >= 2 {
        response = response.with_cluster_id(Some(text(super::CLUSTER_ID)));
    }
    response
}

fn produce(state: &State, request: &ProduceRequest) -> ProduceResponse {
    let responses = request
        .topic_data
        .iter()
        .map(|topic| {
            let partitions = topic
                .partition_data
                .iter()
                .map(|data| {
                    let records = data.records.as_deref().unwrap_or_default();
                    let answer = PartitionProduceResponse::default().with_index(data.index);
                    match state.log.append(topic.name.as_str(), data.index, records) {
                        Ok(base) => answer.with_base_offset(base),
                        Err(e) => {
                            warn!(topic = %topic.name.as_str(), partition = data.index, error = %e,
                                "refused a produce request");
                            answer.with_error_code(error_code(&e)).with_base_offset(-1)
                        }
                    }
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic.name.clone())
                .with_partition_responses(partitions)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

/// Reads every asked partition; returns the answer and how many bytes it has.
fn read_partitions(
    state: &State,
    request: &FetchRequest,
    version: i16,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    // The client's max_bytes, but never more than the broker's limit.
    let mut budget = usize::try_from(request.max_bytes)
        .unwrap_or(0)
        .clamp(1, state.limits.max_fetch_bytes.max(1));
    let (mut total, mut failed) = (0usize, false);
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let max = usize::try_from(p.partition_max_bytes)
                        .unwrap_or(0)
                        .clamp(1, budget.max(1));
                    let answer = PartitionData::default().with_partition_index(p.partition);
                    match state
                        .log
                        .read(topic.topic.as_str(), p.partition, p.fetch_offset, max)
                    {
                        Ok(read) => {
                            total += read.records.len();
                            budget = budget.saturating_sub(read.records.len());
                            let answer = answer
                                .with_high_watermark(read.high_watermark)
                                .with_last_stable_offset(read.high_watermark);
                            let answer = if version >= 5 {
                                answer.with_log_start_offset(0)
                            } else {
                                answer
                            };
                            answer.with_records(Some(read.records))
                        }
                        Err(e) => {
                            failed = true;
                            answer
                                .with_error_code(error_code(&e))
                                .with_records(Some(Bytes::new()))
                        }
                    }
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    (topics, total, failed)
}

/// Answers at once when there is data (or an error), else waits for an
/// append up to the client's `max_wait_ms`.
async fn fetch(state: &Arc<State>, request: Arc<FetchRequest>, version: i16) -> FetchResponse {
    let wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
    let deadline = tokio::time::Instant::now() + wait;
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0).max(1);
    // File reads wait on a partition's lock during an fsync: off the workers.
    let read = || {
        let (shared, request) = (Arc::clone(state), Arc::clone(&request));
        async move {
            tokio::task::spawn_blocking(move || read_partitions(&shared, &request, version))
                .await
                .unwrap_or_default()
        }
    };
    // Only the asked partitions' appends wake this fetch.
    let watches: Vec<Watch> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter_map(|p| state.log.watch(t.topic.as_str(), p.partition))
        })
        .collect();
    loop {
        let mut appended: Vec<_> = watches
            .iter()
            .map(|w| Box::pin(w.appended().notified()))
            .collect();
        for wait in &mut appended {
            wait.as_mut().enable();
        }
        let (topics, total, failed) = read().await;
        if total >= min_bytes || failed || tokio::time::Instant::now() >= deadline {
            return FetchResponse::default().with_responses(topics);
        }
        let any_appended = async move {
            if appended.is_empty() {
                std::future::pending::<()>().await;
            } else {
                futures::future::select_all(appended).await;
            }
        };
        tokio::select! {
            () = any_appended => {}
            () = tokio::time::sleep_until(deadline) => {}
            () = state.cancel.cancelled() => {}
        }
        if state.cancel.is_cancelled() {
            let (topics, _, _) = read().await;
            return FetchResponse::default().with_responses(topics);
        }
    }
}

fn list_offsets(state: &State, request: &ListOffsetsRequest) -> ListOffsetsResponse {
    // -2 asks for the earliest offset; -1 (latest) and -3 (max timestamp)
    // get the high-water mark.
    const EARLIEST: i64 = -2;
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.as_str();
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let found = match p.timestamp {
                        EARLIEST => state.log.high_watermark(name, p.partition_index).map(|_| 0),
                        t if t < 0 => state.log.high_watermark(name, p.partition_index),
                        t => state.log.offset_for_time(name, p.partition_index, t),
                    };
                    let answer = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match found {
                        Ok(offset) => answer.with_offset(offset).with_timestamp(-1),
                        Err(e) => answer.with_error_code(error_code(&e)),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

fn find_coordinator(state: &State, _request: &FindCoordinatorRequest) -> FindCoordinatorResponse {
    FindCoordinatorResponse::default()
        .with_node_id(NODE)
        .with_host(text(&state.host))
        .with_port(state.port)
}

fn offset_commit(state: &State, request: &OffsetCommitRequest) -> OffsetCommitResponse {
    let mut accepted = Vec::new();
    let mut topics = Vec::new();
    for topic in &request.topics {
        let name = topic.name.as_str();
        let count = state.log.partition_count(name).unwrap_or(0);
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                let known = (0..count).contains(&p.partition_index);
                if known {
                    accepted.push((
                        name.to_string(),
                        p.partition_index,
                        Committed {
                            offset: p.committed_offset,
                            metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        },
                    ));
                }
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(if known {
                        0
                    } else {
                        code::UNKNOWN_TOPIC_OR_PARTITION
                    })
            })
            .collect::<Vec<_>>();
        topics.push((topic.name.clone(), partitions));
    }
    let stored = state.offsets.commit(request.group_id.as_str(), accepted);
    if let Err(e) = &stored {
        warn!(group = %request.group_id.as_str(), error = %matview_api::errors::chain(e),
            "cannot store committed offsets");
    }
    let topics = topics
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|p| match (&stored, p.error_code) {
                    (Err(_), 0) => p.with_error_code(code::KAFKA_STORAGE_ERROR),
                    _ => p,
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

fn offset_fetch(state: &State, request: &OffsetFetchRequest) -> OffsetFetchResponse {
    let committed = state.offsets.of_group(request.group_id.as_str());
    let asked: Vec<(String, Vec<i32>)> = match &request.topics {
        Some(topics) => topics
            .iter()
            .map(|t| (t.name.as_str().to_string(), t.partition_indexes.clone()))
            .collect(),
        // Null: every topic the group committed.
        None => committed
            .iter()
            .map(|(t, ps)| (t.clone(), ps.keys().copied().collect()))
            .collect(),
    };
    let topics = asked
        .into_iter()
        .map(|(name, partitions)| {
            let of_topic = committed.get(&name);
            let partitions = partitions
                .into_iter()
                .map(|p| {
                    let found = of_topic.and_then(|c| c.get(&p));
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(found.map_or(-1, |c| c.offset))
                        .with_metadata(Some(text(
                            found.and_then(|c| c.metadata.clone()).unwrap_or_default(),
                        )))
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(&name))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

fn create_topics(state: &State, request: &CreateTopicsRequest) -> CreateTopicsResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.as_str();
            let partitions = match (topic.num_partitions, topic.assignments.len()) {
                (-1, 0) => 1,
                (-1, assigned) => i32::try_from(assigned).unwrap_or(i32::MAX),
                (n, _) => n,
            };
            let result = CreatableTopicResult::default().with_name(topic.name.clone());
            if !matches!(topic.replication_factor, -1 | 1) {
                return result
                    .with_error_code(code::INVALID_REPLICATION_FACTOR)
                    .with_error_message(Some(text(format!(
                        "replication factor {} is more than this one-node broker has; use 1",
                        topic.replication_factor
                    ))));
            }
            match state
                .log
                .create_topic(name, partitions, request.validate_only)
            {
                Ok(()) => result,
                Err(e) => result
                    .with_error_code(error_code(&e))
                    .with_error_message(Some(text(e.to_string()))),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}
