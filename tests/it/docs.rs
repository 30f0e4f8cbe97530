//! The documentation against the code: the reference pages kept in
//! docs/reference/ are what `matview reference` generates now (run it again
//! when this fails). No test environment is needed.

use clap::CommandFactory;

#[test]
fn the_checked_in_reference_pages_are_the_generated_ones() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let command = matview::cli::Cli::command();
    let mut stale = Vec::new();
    for (name, file) in matview::reference::PAGES {
        let generated = matview::reference::page(name, &root.join("charts/matview"), &command)
            .expect("renders");
        let checked_in = std::fs::read_to_string(root.join(file)).unwrap_or_default();
        if checked_in != generated {
            stale.push(format!("cargo run -- reference {name} > {file}"));
        }
    }
    assert!(stale.is_empty(), "stale reference pages; run: {stale:#?}");
}
