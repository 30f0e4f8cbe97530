use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = matview::cli::Cli::parse();
    matview::cli::run(cli)?;
    Ok(())
}
