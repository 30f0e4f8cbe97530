//! What a projector needs before it starts: its view file read, its shard
//! chosen, and its Kafka client settings.

use rdkafka::ClientConfig;

use super::{ProjectorConfig, ProjectorError};
use matview_crd::MaterializedView;

/// Reads the view manifest (YAML or JSON).
pub(crate) fn read_manifest(path: &std::path::Path) -> Result<MaterializedView, ProjectorError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProjectorError::ReadView {
        path: path.to_path_buf(),
        source,
    })?;
    serde_yaml_ng::from_str(&text).map_err(|source| ProjectorError::ParseView {
        path: path.to_path_buf(),
        source,
    })
}

/// The shard to serve: given, or the pod ordinal modulo the shard count (so
/// adding replicas never moves a pod to another shard).
pub(crate) fn shard_of(config: &ProjectorConfig, shards: u32) -> Result<u32, ProjectorError> {
    let shard = match (config.shard, config.ordinal) {
        (Some(s), _) => s,
        (None, Some(ordinal)) => ordinal % shards,
        (None, None) => return Err(ProjectorError::Config("give --shard or --ordinal".into())),
    };
    if shard >= shards {
        return Err(ProjectorError::Config(format!(
            "shard {shard} is out of range: the view has {shards} shards"
        )));
    }
    Ok(shard)
}

/// librdkafka settings: the view's bootstrap servers unless overridden, then
/// the extra properties (a mounted Secret wins over the spec).
pub(crate) fn kafka_config(
    config: &ProjectorConfig,
    spec_servers: Option<&String>,
) -> Result<ClientConfig, ProjectorError> {
    let mut kafka = ClientConfig::new();
    if let Some(b) = config.bootstrap_servers.as_ref().or(spec_servers) {
        kafka.set("bootstrap.servers", b);
    }
    // After a broker restart, retry within 2 s rather than librdkafka's 10 s
    // (a user's --kafka-property still wins).
    kafka.set("reconnect.backoff.max.ms", "2000");
    // A leader cut off silently (no reset) leaves fetches to it hanging: the
    // consumer moves to the new leader only when metadata names it, which
    // librdkafka otherwise asks for every 5 min (the cut-leader fault
    // showed a replica following only once the cut healed, 30 s later).
    kafka.set("topic.metadata.refresh.interval.ms", "5000");
    for (k, v) in &config.kafka_properties {
        kafka.set(k, v);
    }
    if kafka.get("bootstrap.servers").is_none() {
        return Err(ProjectorError::Config(
            "no Kafka bootstrap servers: set spec.source.kafka.bootstrapServers, --bootstrap-servers or --kafka-property bootstrap.servers=…".into(),
        ));
    }
    Ok(kafka)
}
