//! Command-line interface: one binary, one subcommand per component.

mod dev;
mod diff;
mod diff_plan;
mod diff_table;
mod gateway;
mod operator;
mod projector;
pub mod validate;
mod validate_schema;

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
    /// Print the gateway's OpenAPI document (the file kept in openapi/).
    Openapi,
    /// Print a reference page generated from the code (the files kept in docs/reference/):
    /// materializedview, gateway-api, cli or chart-values.
    Reference {
        /// The page.
        #[arg(value_parser = crate::reference::PAGES.map(|(name, _)| name))]
        page: String,
        /// The chart directory (for chart-values).
        #[arg(long, default_value = "charts/matview")]
        chart: PathBuf,
    },
    /// Check MaterializedView manifests without a cluster: compile each spec and
    /// print its revision, or every problem with the field to fix.
    Validate {
        /// Manifest files or directories of *.yaml files.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        paths: Vec<PathBuf>,
        /// Also check the paths of views reading Avro or Protobuf against the latest
        /// schema of `<topic>-value` in this registry (Confluent REST API).
        #[arg(long, value_name = "URL")]
        schema_registry: Option<String>,
        /// The registry's settings: files `username`, `password`, `ca.crt`.
        #[arg(long, value_name = "DIR", requires = "schema_registry")]
        schema_registry_config_dir: Option<PathBuf>,
    },
    /// Show what applying MaterializedView manifests would change in the cluster: each
    /// changed field, and whether it rebuilds the view, switches back to a kept
    /// revision, promotes the pending one, updates pods in place, or changes nothing
    /// that runs.
    Diff(diff::DiffArgs),
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
    Operator(Box<operator::OperatorArgs>),
    /// Run the query gateway: one read API for every view, merged across shards.
    Gateway(Box<gateway::GatewayArgs>),
    /// Everything in one process without Kubernetes: projectors for every shard
    /// of the given views, and the gateway with its page, on one address.
    Dev(Box<dev::DevArgs>),
    /// A Kafka-compatible broker for local development (the one `matview dev`
    /// embeds): one node, durable logs, no replication or transactions.
    Broker {
        /// Address to listen on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:9092")]
        listen: std::net::SocketAddr,
        /// Where topics and committed offsets are kept.
        #[arg(long, default_value = ".matview-dev/_broker")]
        data_dir: PathBuf,
        /// Client connections served at once; more are closed on arrival.
        #[arg(long, default_value_t = crate::broker::DEFAULT_MAX_CONNECTIONS,
            value_parser = ranged_usize(1, 100_000))]
        max_connections: usize,
        /// Log format.
        #[arg(long, env = "MATVIEW_LOG_FORMAT", value_enum, default_value_t = crate::logging::LogFormat::Text)]
        log_format: crate::logging::LogFormat,
    },
    /// Benchmarks against a running broker.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Produce N seeded orders, then time one projector (1 shard) from start to caught up.
    Projector(crate::bench::BenchConfig),
    /// Two projectors behind the gateway on this machine: lookups, scans and
    /// produce-to-stream freshness.
    Gateway(crate::bench::gateway::GatewayBenchConfig),
    /// Reads of one row of many records (100,000) while the projector writes
    /// other users' orders at full speed: read latency percentiles.
    BigRow(crate::bench::big_row::BigRowConfig),
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
        Command::Openapi => {
            print!("{}", crate::api::openapi::gateway_document_text());
            Ok(())
        }
        Command::Validate {
            paths,
            schema_registry,
            schema_registry_config_dir,
        } => {
            let registry = schema_registry
                .map(|url| {
                    validate_schema::SchemaCheck::new(&url, schema_registry_config_dir.as_deref())
                })
                .transpose()?;
            validate::run(&paths, registry.as_ref())
        }
        Command::Diff(args) => match diff::run(&args)? {
            true if args.exit_code => Err(CliError::Differences),
            _ => Ok(()),
        },
        Command::Reference { page, chart } => {
            use clap::CommandFactory;
            print!(
                "{}",
                crate::reference::page(&page, &chart, &Cli::command())?
            );
            Ok(())
        }
        Command::Bench(BenchCommand::Projector(config)) => {
            let report = crate::bench::run(config)?;
            print!("{report}");
            Ok(())
        }
        Command::Bench(BenchCommand::BigRow(config)) => {
            let report = crate::bench::big_row::run(config)?;
            print!("{report}");
            Ok(())
        }
        Command::Bench(BenchCommand::Gateway(config)) => {
            let report = crate::bench::gateway::run(config)?;
            print!("{report}");
            Ok(())
        }
        Command::Render { path, image } => {
            let text = std::fs::read_to_string(&path).map_err(|source| CliError::Read {
                path: path.clone(),
                source,
            })?;
            let view: crate::crd::MaterializedView =
                serde_yaml_ng::from_str(&text).map_err(|source| CliError::Parse {
                    path: path.clone(),
                    source,
                })?;
            let mut settings = crate::operator::desired::PodSettings::default();
            if let Some(image) = image {
                settings.image = image;
            }
            let (_, objects) = crate::operator::plan(&view, &settings)?;
            print!("{}", crate::operator::render(&objects)?);
            Ok(())
        }
        Command::Operator(args) => {
            crate::logging::init(args.log_format);
            crate::operator::run::run(args.into_config())?;
            Ok(())
        }
        Command::Dev(args) => {
            crate::logging::init(args.log_format);
            crate::dev::run(args.into_config())?;
            Ok(())
        }
        Command::Broker {
            listen,
            data_dir,
            max_connections,
            log_format,
        } => {
            crate::logging::init(log_format);
            let limits = crate::broker::Limits {
                max_connections,
                ..crate::broker::Limits::default()
            };
            crate::broker::run(&data_dir, listen, limits)?;
            Ok(())
        }
        Command::Gateway(args) => {
            crate::logging::init(args.log_format);
            crate::gateway::run(args.into_config())?;
            Ok(())
        }
        Command::Projector(args) => {
            crate::logging::init(args.log_format);
            let config = args.into_config().map_err(CliError::Usage)?;
            crate::projector::run(config)?;
            Ok(())
        }
    }
}

/// A `usize` flag's parser that refuses values outside `min..=max` with
/// clap's own message (every numeric flag has a range: an absurd value is
/// a clear error at parse time, never a panic later).
pub(crate) fn ranged_usize(
    min: u64,
    max: u64,
) -> impl clap::builder::TypedValueParser<Value = usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(min..=max)
}

/// Errors a subcommand reports to the user.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Crd(#[from] crate::crd::CrdError),
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml_ng::Error,
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
    #[error(transparent)]
    Gateway(#[from] crate::gateway::GatewayError),
    #[error(transparent)]
    Chart(#[from] crate::chart::ChartError),
    #[error(transparent)]
    Reference(#[from] crate::reference::ReferenceError),
    #[error(transparent)]
    Dev(#[from] crate::dev::DevError),
    #[error(transparent)]
    Broker(#[from] crate::broker::BrokerError),
    #[error("{invalid} of {total} views are invalid")]
    Invalid { invalid: usize, total: usize },
    /// `matview diff --exit-code` found differences (exit status 1, no message).
    #[error("the manifests differ from the cluster")]
    Differences,
}

#[cfg(test)]
mod flag_tests {
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    use super::Cli;

    /// Whether `value` for `--flag` of the subcommand at `path` is refused
    /// as a value (other errors, such as a missing required flag, come
    /// after values are parsed and mean the value itself was accepted).
    fn refused(path: &[&str], flag: &str, value: &str) -> bool {
        let mut argv = vec!["matview".to_string()];
        argv.extend(path.iter().map(|s| s.to_string()));
        argv.push(format!("--{flag}={value}"));
        match Cli::command().try_get_matches_from(argv) {
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                ErrorKind::ValueValidation | ErrorKind::InvalidValue
            ),
        }
    }

    /// Every flag of every subcommand whose value is a number.
    fn numeric_flags() -> Vec<(Vec<String>, String)> {
        fn walk(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
            for arg in cmd.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                if !arg.get_action().takes_values() || !arg.get_possible_values().is_empty() {
                    continue;
                }
                let p: Vec<&str> = path.iter().map(String::as_str).collect();
                if !refused(&p, long, "1") && refused(&p, long, "x") {
                    out.push((path.clone(), long.to_string()));
                }
            }
            for sub in cmd.get_subcommands() {
                let mut deeper = path.clone();
                deeper.push(sub.get_name().to_string());
                walk(sub, deeper, out);
            }
        }
        let mut out = Vec::new();
        walk(&Cli::command(), Vec::new(), &mut out);
        out
    }

    #[test]
    fn every_numeric_flag_has_a_range_clap_enforces() {
        let flags = numeric_flags();
        assert!(flags.len() >= 25, "found only {flags:?}");
        // Any u64 is a fine seed; every other number has a meaningful range.
        let unbounded_by_design = ["seed"];
        let mut unbounded = Vec::new();
        for (path, flag) in &flags {
            let p: Vec<&str> = path.iter().map(String::as_str).collect();
            let huge = refused(&p, flag, "18446744073709551615");
            let negative = refused(&p, flag, "-1");
            if !negative || (!huge && !unbounded_by_design.contains(&flag.as_str())) {
                unbounded.push(format!("{} --{flag}", path.join(" ")));
            }
        }
        assert!(unbounded.is_empty(), "flags without a range: {unbounded:?}");
    }

    #[test]
    fn a_demo_rate_above_what_a_timer_can_pace_is_a_clear_error() {
        let err = Cli::try_parse_from_args(["dev", "--demo-rate", "2000000"]);
        let text = err.expect_err("refused").to_string();
        assert!(
            text.contains("--demo-rate") && text.contains("100000"),
            "{text}"
        );
        assert!(Cli::try_parse_from_args(["dev", "--demo-rate", "100000"]).is_ok());
        assert!(Cli::try_parse_from_args(["dev", "--demo-rate", "0"]).is_ok());
    }

    impl Cli {
        fn try_parse_from_args<const N: usize>(args: [&str; N]) -> Result<Cli, clap::Error> {
            use clap::Parser;
            Cli::try_parse_from(std::iter::once("matview").chain(args))
        }
    }
}
