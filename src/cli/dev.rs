//! `matview dev`: arguments of the one-process mode.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::dev::DevConfig;
use crate::logging::LogFormat;

#[derive(Debug, Args)]
pub struct DevArgs {
    /// View manifests, files or directories (repeatable); default: the built-in shop example.
    #[arg(short = 'f', long = "filename")]
    pub views: Vec<PathBuf>,
    /// Use this Kafka (host:port,...) instead of the embedded broker.
    #[arg(long)]
    pub bootstrap_servers: Option<String>,
    /// Address of the embedded Kafka broker (port 0: any free port); ignored
    /// with --bootstrap-servers.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub broker_listen: SocketAddr,
    /// Address of the gateway (API and page).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where stores (and the embedded broker's logs) are kept, so a restart resumes.
    #[arg(long, default_value = ".matview-dev")]
    pub data_dir: PathBuf,
    /// Demo orders per second into the first view's topic; default 5 with the
    /// built-in example, 0 (off) with your own views.
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub demo_rate: Option<u64>,
    /// Use this schema registry (Confluent REST API) for Avro and Protobuf views
    /// instead of the built-in one (served at /schema-registry on --listen, for dev only).
    #[arg(long, value_name = "URL")]
    pub schema_registry: Option<String>,
    /// Log format.
    #[arg(long, env = "MATVIEW_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl DevArgs {
    pub fn into_config(self) -> DevConfig {
        let default_rate = if self.views.is_empty() { 5 } else { 0 };
        DevConfig {
            demo_rate: self.demo_rate.unwrap_or(default_rate),
            views: self.views,
            bootstrap_servers: self.bootstrap_servers,
            broker_listen: self.broker_listen,
            listen: self.listen,
            data_dir: self.data_dir,
            schema_registry: self.schema_registry,
        }
    }
}
