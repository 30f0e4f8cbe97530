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

#[test]
fn validate_accepts_the_examples_and_names_the_field_to_fix() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let out = run_ok(matview().args(["validate", "-f", examples]));
    assert_eq!(
        out.lines()
            .filter(|l| l.contains(": valid, revision "))
            .count(),
        std::fs::read_dir(examples)
            .expect("examples")
            .filter(|e| e
                .as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "yaml")))
            .count(),
        "{out}"
    );

    let bad = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/invalid/mixed-constant-types.yaml"
    );
    let result = matview()
        .args(["validate", "-f", bad])
        .output()
        .expect("runs");
    assert!(!result.status.success());
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        stdout.contains("- spec.classify.rules[1].eq: rules compare field \"price\" with both"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(stderr.contains("1 of 1 views are invalid"), "{stderr}");
}
