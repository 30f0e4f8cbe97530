use std::process::ExitCode;

use clap::Parser;

// jemalloc, not glibc's malloc: the store's page cache allocates and frees
// a page per read, and glibc's free-list consolidation took a third of the
// projector's CPU (see the README's projector benchmark).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = matview::cli::Cli::parse();
    match matview::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // Said by the output already, as `git diff --exit-code` does.
        Err(matview::cli::CliError::Differences) => ExitCode::FAILURE,
        Err(e) => {
            // The whole cause chain on one line, no backtrace: users read this.
            eprintln!("error: {:#}", anyhow::Error::from(e));
            ExitCode::FAILURE
        }
    }
}
