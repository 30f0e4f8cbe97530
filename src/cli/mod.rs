//! Command-line interface: one binary, one subcommand per component.

mod projector;
mod validate;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// matview: Kafka topics in, live materialized views out, run by Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "matview", version = crate::version::VERSION, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the version of this build.
    Version,
    /// Print the MaterializedView CustomResourceDefinition as YAML (the file kept in crds/).
    Crd,
    /// Check MaterializedView manifests without a cluster: compile each spec and
    /// print its revision, or every problem with the field to fix.
    Validate {
        /// Manifest files or directories of *.yaml files.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        paths: Vec<PathBuf>,
    },
    /// Run one projector: consume a shard of the view's topic into a durable store and serve it over HTTP.
    Projector(Box<projector::ProjectorArgs>),
    /// Print the Kubernetes objects the operator creates for a view (ConfigMap, Service,
    /// StatefulSet and PodDisruptionBudget per shard), without a cluster.
    Render {
        /// MaterializedView manifest.
        #[arg(short = 'f', long = "filename")]
        path: PathBuf,
        /// Projector image.
        #[arg(long, env = "MATVIEW_PROJECTOR_IMAGE")]
        image: Option<String>,
    },
    /// Run the operator: reconcile every MaterializedView into projector workloads and status.
    Operator {
        /// Projector image of the pods it creates.
        #[arg(long, env = "MATVIEW_PROJECTOR_IMAGE")]
        projector_image: Option<String>,
        /// Use these Kafka bootstrap servers for every view (instead of each view's own).
        #[arg(long, env = "MATVIEW_KAFKA_BOOTSTRAP_OVERRIDE")]
        kafka_bootstrap_override: Option<String>,
        /// Address of /healthz, /readyz and /metrics.
        #[arg(long, env = "MATVIEW_OPERATOR_LISTEN", default_value = "0.0.0.0:8081")]
        listen: std::net::SocketAddr,
        /// Views reconciled at once.
        #[arg(long, default_value_t = 4)]
        concurrency: u16,
        /// Watch only this namespace (default: all namespaces).
        #[arg(long, env = "MATVIEW_WATCH_NAMESPACE")]
        namespace: Option<String>,
        /// Namespace of the leader-election Lease (default: the watched namespace, else "default").
        #[arg(long, env = "MATVIEW_LEADER_ELECTION_NAMESPACE")]
        leader_election_namespace: Option<String>,
        /// Lease duration in seconds; a dead leader is replaced after at most this long.
        #[arg(long, default_value_t = 15)]
        lease_duration_seconds: u64,
        /// Run without leader election (only ever one replica).
        #[arg(long)]
        no_leader_election: bool,
        /// Log format: json or text.
        #[arg(long, env = "MATVIEW_LOG_FORMAT", default_value = "json")]
        log_format: String,
    },
    /// Benchmarks against a running broker.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Produce N seeded orders, then time one projector (1 shard) from start to caught up.
    Projector(crate::bench::BenchConfig),
}

/// Runs a parsed command line; the binary's `main` only maps errors to exit codes.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Version => {
            println!("{}", crate::version::version_line());
            Ok(())
        }
        Command::Crd => {
            print!("{}", crate::crd::crd_yaml()?);
            Ok(())
        }
        Command::Validate { paths } => validate::run(&paths),
        Command::Bench(BenchCommand::Projector(config)) => {
            let report = crate::bench::run(config)?;
            print!("{report}");
            Ok(())
        }
        Command::Render { path, image } => {
            let text = std::fs::read_to_string(&path).map_err(|source| CliError::Read {
                path: path.clone(),
                source,
            })?;
            let view: crate::crd::MaterializedView = serde_yaml::from_str(&text)
                .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
            let mut settings = crate::operator::desired::PodSettings::default();
            if let Some(image) = image {
                settings.image = image;
            }
            let (_, objects) = crate::operator::plan(&view, &settings)?;
            print!("{}", crate::operator::render(&objects)?);
            Ok(())
        }
        Command::Operator {
            projector_image,
            kafka_bootstrap_override,
            listen,
            concurrency,
            namespace,
            leader_election_namespace,
            lease_duration_seconds,
            no_leader_election,
            log_format,
        } => {
            projector::init_logging(&log_format);
            let mut settings = crate::operator::desired::PodSettings::default();
            if let Some(image) = projector_image {
                settings.image = image;
            }
            crate::operator::run::run(crate::operator::run::OperatorConfig {
                settings,
                kafka_override: kafka_bootstrap_override,
                listen,
                concurrency: concurrency.max(1),
                leader: (!no_leader_election).then(|| crate::operator::leader::LeaderConfig {
                    namespace: leader_election_namespace
                        .or_else(|| namespace.clone())
                        .unwrap_or_else(|| "default".into()),
                    name: "matview-operator".into(),
                    identity: std::env::var("MATVIEW_POD_NAME")
                        .unwrap_or_else(|_| format!("matview-operator-{}", std::process::id())),
                    lease_duration: std::time::Duration::from_secs(lease_duration_seconds.max(2)),
                }),
                namespace,
            })?;
            Ok(())
        }
        Command::Projector(args) => {
            projector::init_logging(&args.log_format);
            let config = args.into_config().map_err(CliError::Usage)?;
            crate::projector::run(config)?;
            Ok(())
        }
    }
}

/// Errors a subcommand reports to the user.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Crd(#[from] crate::crd::CrdError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Projector(#[from] crate::projector::ProjectorError),
    #[error(transparent)]
    Bench(#[from] crate::bench::BenchError),
    #[error(transparent)]
    Render(#[from] crate::operator::RenderError),
    #[error(transparent)]
    Operator(#[from] crate::operator::run::OperatorError),
    #[error("{invalid} of {total} views are invalid")]
    Invalid { invalid: usize, total: usize },
}
