//! `matview gateway`: arguments of the query gateway.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use crate::gateway::GatewayConfig;
use crate::gateway::auth::AuthMode;
use crate::logging::LogFormat;

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address of the HTTP API.
    #[arg(long, env = "MATVIEW_GATEWAY_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Serve only views of this namespace (default: all namespaces).
    #[arg(long, env = "MATVIEW_WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Who may read: `kubernetes` checks bearer tokens with TokenReview and
    /// SubjectAccessReview on materializedviews/data; `none` lets anyone read.
    #[arg(long, env = "MATVIEW_GATEWAY_AUTH", value_enum, default_value_t = AuthMode::Kubernetes)]
    pub auth: AuthMode,
    /// Seconds an authentication or authorization decision is reused.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub auth_cache_seconds: u64,
    /// Longest a read may take, in milliseconds (read-your-writes waits come on top).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub deadline_ms: u64,
    /// Milliseconds a call to a projector may go unanswered before the next replica is asked too (the first call keeps going; the first answer wins).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub projector_timeout_ms: u64,
    /// Live streams served at once; more are refused with 503.
    #[arg(long, default_value_t = 1000, value_parser = crate::cli::ranged_usize(1, 1_000_000))]
    pub max_streams: usize,
    /// MiB of hot rows kept, exact by the shards' change feeds (0: none).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(0..=1 << 20))]
    pub row_cache_mib: u64,
    /// Log format.
    #[arg(long, env = "MATVIEW_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

impl GatewayArgs {
    pub fn into_config(self) -> GatewayConfig {
        GatewayConfig {
            listen: self.listen,
            namespace: self.namespace,
            auth: self.auth,
            auth_cache: Duration::from_secs(self.auth_cache_seconds),
            deadline: Duration::from_millis(self.deadline_ms.max(1)),
            projector_timeout: Duration::from_millis(self.projector_timeout_ms.max(1)),
            max_streams: self.max_streams.max(1),
            row_cache_bytes: self.row_cache_mib << 20,
        }
    }
}
