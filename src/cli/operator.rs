//! `matview operator`: arguments of the operator process.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use crate::logging::LogFormat;
use crate::operator::desired::PodSettings;
use crate::operator::leader::LeaderConfig;
use crate::operator::network::NetworkAccess;
use crate::operator::run::OperatorConfig;

#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// Projector image of the pods it creates.
    #[arg(long, env = "MATVIEW_PROJECTOR_IMAGE")]
    pub projector_image: Option<String>,
    /// Use these Kafka bootstrap servers for every view (instead of each view's own).
    #[arg(long, env = "MATVIEW_KAFKA_BOOTSTRAP_OVERRIDE")]
    pub kafka_bootstrap_override: Option<String>,
    /// Base URL of the query gateway (e.g. http://matview-gateway.matview.svc:8080);
    /// each view's status then gives its URL there.
    #[arg(long, env = "MATVIEW_GATEWAY_URL")]
    pub gateway_url: Option<String>,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "MATVIEW_OPERATOR_LISTEN", default_value = "0.0.0.0:8081")]
    pub listen: SocketAddr,
    /// Views reconciled at once (reconciles wait on the network, not the CPU).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "MATVIEW_WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Namespace of the leader-election Lease (default: the watched namespace, else "default").
    #[arg(long, env = "MATVIEW_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Lease duration in seconds; a dead leader is replaced after at most this long.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lease_duration_seconds: u64,
    /// Run without leader election (only ever one replica).
    #[arg(long)]
    pub no_leader_election: bool,
    /// Namespace of this installation's gateway and operator. When set, each
    /// revision gets a NetworkPolicy that admits only them (and
    /// --metrics-namespace) to the projector port.
    #[arg(long, env = "MATVIEW_NETWORK_POLICY_NAMESPACE")]
    pub network_policy_namespace: Option<String>,
    /// With --network-policy-namespace: a namespace whose pods may also reach
    /// the projector port, e.g. Prometheus' for /metrics (repeatable).
    #[arg(long = "metrics-namespace", value_name = "NAMESPACE")]
    pub metrics_namespaces: Vec<String>,
    /// Log format.
    #[arg(long, env = "MATVIEW_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

impl OperatorArgs {
    pub fn into_config(self) -> OperatorConfig {
        let mut settings = PodSettings::default();
        if let Some(image) = self.projector_image {
            settings.image = image;
        }
        settings.bootstrap_override = self.kafka_bootstrap_override.clone();
        settings.network_access = self
            .network_policy_namespace
            .map(|namespace| NetworkAccess {
                namespace,
                metrics_namespaces: self.metrics_namespaces,
            });
        let leader = (!self.no_leader_election).then(|| LeaderConfig {
            namespace: self
                .leader_election_namespace
                .or_else(|| self.namespace.clone())
                .unwrap_or_else(|| "default".into()),
            name: "matview-operator".into(),
            identity: std::env::var("MATVIEW_POD_NAME")
                .unwrap_or_else(|_| format!("matview-operator-{}", std::process::id())),
            lease_duration: Duration::from_secs(self.lease_duration_seconds.max(2)),
        });
        OperatorConfig {
            settings,
            kafka_override: self.kafka_bootstrap_override,
            gateway_url: self.gateway_url,
            listen: self.listen,
            concurrency: self.concurrency.max(1),
            namespace: self.namespace,
            leader,
        }
    }
}
