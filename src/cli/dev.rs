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
    /// Kafka bootstrap servers (`make testenv` starts one; an embedded broker is planned).
    #[arg(long, env = "MATVIEW_KAFKA_BOOTSTRAP")]
    pub bootstrap_servers: String,
    /// Address of the gateway (API and page).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where stores are kept, so a restart resumes.
    #[arg(long, default_value = ".matview-dev")]
    pub data_dir: PathBuf,
    /// Demo orders per second into the first view's topic; default 5 with the
    /// built-in example, 0 (off) with your own views.
    #[arg(long)]
    pub demo_rate: Option<u64>,
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
            listen: self.listen,
            data_dir: self.data_dir,
        }
    }
}
