//! Command-line interface: one binary, one subcommand per component.

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
}

/// Runs a parsed command line; the binary's `main` only maps errors to exit codes.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Version => {
            println!("{}", crate::version::version_line());
            Ok(())
        }
    }
}

/// Errors a subcommand reports to the user.
#[derive(Debug, thiserror::Error)]
pub enum CliError {}
