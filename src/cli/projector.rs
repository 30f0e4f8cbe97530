//! `matview projector`: arguments of one projector process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::logging::LogFormat;
use crate::projector::{DamagedStore, ProjectorConfig};

#[derive(Debug, Args)]
pub struct ProjectorArgs {
    /// MaterializedView manifest (YAML or JSON), as the operator mounts it.
    #[arg(long, env = "MATVIEW_VIEW_FILE")]
    pub view: PathBuf,
    /// Shard this process serves (0-based). Without it, --ordinal decides.
    #[arg(long, env = "MATVIEW_SHARD", value_parser = clap::value_parser!(u32).range(0..256))]
    pub shard: Option<u32>,
    /// Pod ordinal; the shard is ordinal mod shards (so scaling never moves a pod).
    #[arg(long, env = "MATVIEW_ORDINAL", value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub ordinal: Option<u32>,
    /// Which replica of its shard this pod is (its StatefulSet's pod index).
    /// Replica 0 writes the shard's dead letters, so each is written once;
    /// without it (or empty: a Kubernetes before 1.28 has no pod-index
    /// label), this process writes them.
    #[arg(long, env = "MATVIEW_REPLICA", value_parser = parse_replica)]
    pub replica: Option<Replica>,
    /// Directory of the durable store.
    #[arg(long, env = "MATVIEW_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Address of the HTTP API.
    #[arg(long, env = "MATVIEW_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Kafka bootstrap servers (overrides the view's spec.source.kafka.bootstrapServers).
    #[arg(long, env = "MATVIEW_BOOTSTRAP_SERVERS")]
    pub bootstrap_servers: Option<String>,
    /// Extra librdkafka property, KEY=VALUE (repeatable), e.g. security.protocol=SASL_SSL.
    #[arg(long = "kafka-property", value_name = "KEY=VALUE", value_parser = parse_property)]
    pub kafka_properties: Vec<(String, String)>,
    /// A Java .properties file of librdkafka properties (`=`, `:` or space
    /// separators, `\` continuations, escapes), e.g. a mounted Secret.
    #[arg(long, env = "MATVIEW_KAFKA_PROPERTIES_FILE")]
    pub kafka_properties_file: Option<PathBuf>,
    /// Directory whose files are librdkafka properties: file name = key, content = value
    /// (a Secret or ConfigMap mounted as a volume).
    #[arg(long, env = "MATVIEW_KAFKA_PROPERTIES_DIR")]
    pub kafka_properties_dir: Option<PathBuf>,
    /// Directory of the schema registry's settings: files `username` and
    /// `password` (HTTP basic auth) and `ca.crt` (PEM CA to trust for https),
    /// each optional (a Secret mounted as a volume).
    #[arg(long, env = "MATVIEW_SCHEMA_REGISTRY_CONFIG_DIR")]
    pub schema_registry_config_dir: Option<PathBuf>,
    /// Most events per batch (one store commit each); the memory budget may
    /// allow fewer.
    #[arg(
        long,
        env = "MATVIEW_BATCH_MAX_EVENTS",
        default_value_t = crate::projector::budget::DEFAULT_BATCH_MAX_EVENTS,
        value_parser = crate::cli::ranged_usize(1, 10_000_000)
    )]
    pub batch_max_events: usize,
    /// Longest wait for a batch to fill, in milliseconds.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub batch_max_wait_ms: u64,
    /// Ready once at most this many events behind the high-water marks seen at start.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
    pub ready_max_lag: i64,
    /// Memory the projector plans for, in MiB: the store's page cache, the
    /// fetch queue and the batch size are shared out of it. Default: the
    /// cgroup's memory limit when one is set, else 512.
    #[arg(long, env = "MATVIEW_MEMORY_BUDGET_MIB", value_parser = crate::cli::ranged_usize(16, 1 << 20))]
    pub memory_budget_mib: Option<usize>,
    /// Page cache of the store in MiB (default: a quarter of the memory budget).
    #[arg(long, env = "MATVIEW_STORE_CACHE_MIB", value_parser = crate::cli::ranged_usize(1, 1 << 20))]
    pub store_cache_mib: Option<usize>,
    /// Hold batches (keep serving reads) while the data directory's file
    /// system has less than this many MiB free.
    #[arg(long, env = "MATVIEW_MIN_FREE_MIB", default_value_t = 64, value_parser = clap::value_parser!(u64).range(0..=1 << 20))]
    pub min_free_mib: u64,
    /// What to do with a store that fails its integrity check at start:
    /// delete it and rebuild from the topic, or exit naming the damage.
    #[arg(long, env = "MATVIEW_DAMAGED_STORE", value_enum, default_value_t = DamagedStore::Rebuild)]
    pub damaged_store: DamagedStore,
    /// Log format.
    #[arg(long, env = "MATVIEW_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

impl ProjectorArgs {
    pub fn into_config(self) -> Result<ProjectorConfig, String> {
        let mut kafka_properties = Vec::new();
        if let Some(file) = &self.kafka_properties_file {
            kafka_properties.extend(properties_from_file(file)?);
        }
        if let Some(dir) = &self.kafka_properties_dir {
            kafka_properties.extend(properties_from_dir(dir)?);
        }
        kafka_properties.extend(self.kafka_properties);
        // Read now so that a mistake in them stops the start, said plainly.
        if let Some(dir) = &self.schema_registry_config_dir {
            matview_registry::RegistryAccess::from_dir(dir).map_err(|e| e.to_string())?;
        }
        let budget = self
            .memory_budget_mib
            .or_else(crate::projector::budget::cgroup_limit_mib)
            .unwrap_or(512);
        let memory = crate::projector::budget::plan(
            budget,
            self.store_cache_mib,
            self.batch_max_events.max(1),
        );
        Ok(ProjectorConfig {
            view_file: self.view,
            shard: self.shard,
            ordinal: self.ordinal,
            replica: self.replica.and_then(|r| r.0),
            data_dir: self.data_dir,
            listen: self.listen,
            bootstrap_servers: self.bootstrap_servers,
            kafka_properties,
            batch_max_events: memory.batch_max_events,
            batch_max_wait: Duration::from_millis(self.batch_max_wait_ms),
            ready_max_lag: self.ready_max_lag,
            store_cache_bytes: memory.store_cache_bytes,
            fetch_queue_kib: memory.fetch_queue_kib,
            memory_budget_mib: budget,
            damaged_store: self.damaged_store,
            min_free_bytes: self.min_free_mib.saturating_mul(1 << 20),
            schema_registry_config_dir: self.schema_registry_config_dir,
        })
    }
}

/// Reads a `.properties` file the way Java's `Properties.load` does (what
/// Kafka users' files are written for): `=`, `:` or whitespace between key
/// and value, `\` continuations, escapes (`\t`, `\uXXXX`, `\=`), `#` and
/// `!` comments. The `java-properties` crate implements the format; UTF-8,
/// since a mounted Secret holds the bytes it was given.
fn properties_from_file(file: &std::path::Path) -> Result<Vec<(String, String)>, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut out = Vec::new();
    java_properties::PropertiesIter::new_with_encoding(&bytes[..], encoding_rs::UTF_8)
        .read_into(|key, value| out.push((key, value)))
        .map_err(|e| format!("{} is not a properties file: {e}", file.display()))?;
    Ok(out)
}

/// Reads a mounted Secret or ConfigMap: one property per file. Kubernetes'
/// own bookkeeping entries (names starting with '.') are skipped.
fn properties_from_dir(dir: &std::path::Path) -> Result<Vec<(String, String)>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        let value = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        out.push((name, value.trim().to_string()));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_come_from_files_and_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("security.protocol"), "SASL_SSL\n").expect("write");
        std::fs::write(dir.path().join("sasl.username"), "svc").expect("write");
        std::fs::create_dir(dir.path().join("..data")).expect("mkdir");
        assert_eq!(
            properties_from_dir(dir.path()).expect("reads"),
            [
                ("sasl.username".to_string(), "svc".to_string()),
                ("security.protocol".to_string(), "SASL_SSL".to_string())
            ]
        );
        assert_eq!(
            parse_property(" a = b=c "),
            Ok(("a".to_string(), "b=c".to_string()))
        );
        assert!(parse_property("novalue").is_err());
    }

    /// Expected pairs written from the format's specification
    /// (java.util.Properties#load), not from the parser's output.
    #[test]
    fn properties_files_are_read_as_java_reads_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("client.properties");
        let text = concat!(
            "# a comment\n",
            "! another comment\n",
            "\n",
            "bootstrap.servers=kafka-0:9093,\\\n",
            "    kafka-1:9093\n",
            "security.protocol : SASL_SSL\n",
            "sasl.mechanisms SCRAM-SHA-512\n",
            "   sasl.username=svc\n",
            "sasl.password=p\\=ss\\:w\\u00f6rd\\t#not a comment\n",
            "key\\ with\\ spaces=v\n",
            "empty.value=\n",
            "ssl.ca.location=/etc/ssl/ca.pem\r\n",
        );
        std::fs::write(&file, text).expect("write");
        let read = properties_from_file(&file).expect("reads");
        let expected: Vec<(String, String)> = [
            ("bootstrap.servers", "kafka-0:9093,kafka-1:9093"),
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "svc"),
            ("sasl.password", "p=ss:w\u{f6}rd\t#not a comment"),
            ("key with spaces", "v"),
            ("empty.value", ""),
            ("ssl.ca.location", "/etc/ssl/ca.pem"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(read, expected);
    }
}

/// A replica index, or none when given empty (the downward API's value of a
/// label the pod lacks).
#[derive(Debug, Clone, Copy)]
pub struct Replica(Option<u32>);

fn parse_replica(text: &str) -> Result<Replica, String> {
    if text.trim().is_empty() {
        return Ok(Replica(None));
    }
    text.trim()
        .parse::<u32>()
        .map(|r| Replica(Some(r)))
        .map_err(|e| format!("a replica index is a number: {e}"))
}
