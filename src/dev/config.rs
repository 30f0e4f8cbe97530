//! `matview dev`'s settings and what can stop it.

use std::net::SocketAddr;
use std::path::PathBuf;

use rdkafka::types::RDKafkaErrorCode;

use crate::projector::ProjectorError;
use crate::view::ViewError;

#[derive(Debug, Clone)]
pub struct DevConfig {
    /// View manifests (files or directories); empty: the shop example.
    pub views: Vec<PathBuf>,
    /// An existing Kafka; `None`: the embedded broker.
    pub bootstrap_servers: Option<String>,
    /// Where the embedded broker listens (port 0: any free port).
    pub broker_listen: SocketAddr,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Demo orders per second into the first view's topic (0: none).
    pub demo_rate: u64,
    /// A schema registry for Avro and Protobuf views; `None`: the built-in one.
    pub schema_registry: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a MaterializedView manifest")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("{path}: fix the view")]
    Invalid {
        path: PathBuf,
        #[source]
        source: ViewError,
    },
    #[error("no MaterializedView found in {0:?}")]
    NoViews(Vec<PathBuf>),
    #[error(
        "Kafka at {servers} does not answer; start it, point --bootstrap-servers at another, or leave the flag out to use the embedded broker"
    )]
    Broker {
        servers: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("Kafka at {servers} refused to create topic {topic}: {code}")]
    Topic {
        servers: String,
        topic: String,
        code: RDKafkaErrorCode,
    },
    #[error("{0} is in use; pick another address with --listen")]
    PortInUse(SocketAddr),
    #[error("cannot listen on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Projector(#[from] ProjectorError),
    #[error(transparent)]
    EmbeddedBroker(#[from] crate::broker::BrokerError),
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
}
