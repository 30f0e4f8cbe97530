//! The `matview` binary's command line.

use std::process::Command;

use crate::support::run_ok;

fn matview() -> Command {
    Command::new(env!("CARGO_BIN_EXE_matview"))
}

#[test]
fn version_prints_the_crate_version() {
    let out = run_ok(matview().arg("version"));
    assert_eq!(
        out.trim(),
        format!(
            "matview {} ({} {})",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH
        )
    );
}

#[test]
fn help_lists_the_subcommands() {
    let out = run_ok(matview().arg("--help"));
    assert!(out.contains("Usage: matview"), "{out}");
    assert!(out.contains("version"), "{out}");
}

#[test]
fn unknown_subcommand_fails_with_usage() {
    let out = matview()
        .arg("no-such-command")
        .output()
        .expect("cannot run matview");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unrecognized subcommand"), "{stderr}");
}
