use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = matview::cli::Cli::parse();
    match matview::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole cause chain on one line, no backtrace: users read this.
            eprintln!("error: {:#}", anyhow::Error::from(e));
            ExitCode::FAILURE
        }
    }
}
