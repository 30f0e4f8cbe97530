//! `matview validate`: compile manifests locally, as the operator would.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::CliError;
use crate::crd::MaterializedView;
use crate::engine::{compile, revision};

/// The outcome for one manifest document.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid { name: String, revision: String },
    Invalid { name: String, problems: Vec<String> },
}

/// Checks every MaterializedView document in a YAML text (other kinds are skipped).
pub fn check_text(text: &str) -> Vec<Verdict> {
    let mut verdicts = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = match serde_yaml::Value::deserialize(document) {
            Ok(v) => v,
            Err(e) => {
                verdicts.push(Verdict::Invalid {
                    name: "<unparsable>".into(),
                    problems: vec![e.to_string()],
                });
                continue;
            }
        };
        if value.get("kind").and_then(|k| k.as_str()) != Some("MaterializedView") {
            continue;
        }
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or("<unnamed>")
            .to_string();
        let view: MaterializedView = match serde_yaml::from_value(value) {
            Ok(v) => v,
            Err(e) => {
                verdicts.push(Verdict::Invalid {
                    name,
                    problems: vec![format!("spec: {e}")],
                });
                continue;
            }
        };
        match compile(&view.spec) {
            Ok(_) => verdicts.push(Verdict::Valid {
                name,
                revision: revision(&view.spec),
            }),
            Err(e) => verdicts.push(Verdict::Invalid {
                name,
                problems: e.issues.iter().map(ToString::to_string).collect(),
            }),
        }
    }
    verdicts
}

pub fn run(paths: &[PathBuf]) -> Result<(), CliError> {
    let (mut total, mut invalid) = (0, 0);
    let files = crate::view::manifest_files(paths)
        .map_err(|(path, source)| CliError::Read { path, source })?;
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| CliError::Read {
            path: file.clone(),
            source,
        })?;
        for verdict in check_text(&text) {
            total += 1;
            print_verdict(&file, &verdict);
            if matches!(verdict, Verdict::Invalid { .. }) {
                invalid += 1;
            }
        }
    }
    if invalid > 0 {
        return Err(CliError::Invalid { invalid, total });
    }
    Ok(())
}

fn print_verdict(file: &Path, verdict: &Verdict) {
    match verdict {
        Verdict::Valid { name, revision } => {
            println!("{}: {name}: valid, revision {revision}", file.display())
        }
        Verdict::Invalid { name, problems } => {
            println!("{}: {name}: invalid", file.display());
            for p in problems {
                println!("  - {p}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_each_document() {
        let good = include_str!("../../examples/items-by-price.yaml");
        let bad = include_str!("../../tests/fixtures/invalid/gte-above-lte.yaml");
        let text = format!(
            "{good}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n---\n{bad}"
        );
        let verdicts = check_text(&text);
        assert_eq!(verdicts.len(), 2, "{verdicts:?}");
        assert!(
            matches!(&verdicts[0], Verdict::Valid { name, revision } if name == "items-by-price" && revision.len() == 10)
        );
        match &verdicts[1] {
            Verdict::Invalid { problems, .. } => {
                assert!(
                    problems
                        .iter()
                        .any(|p| p.starts_with("spec.classify.rules[1]")),
                    "{problems:?}"
                )
            }
            other => panic!("expected invalid, got {other:?}"),
        }
    }
}
