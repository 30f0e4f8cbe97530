//! `matview validate`: compile manifests locally, as the operator would.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::CliError;
use super::validate_schema::{SchemaCheck, SchemaVerdict};
use crate::crd::MaterializedView;
use crate::view::{ValidatedView, ViewError};

/// The outcome for one manifest document.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid { name: String, revision: String },
    Invalid { name: String, problems: Vec<String> },
}

/// The API version the CRD serves.
const API_VERSION: &str = "matview.dev/v1alpha1";
const KIND: &str = "MaterializedView";

/// Whether a document is meant as a MaterializedView: its kind, spelt any
/// way, or an apiVersion of our group.
fn meant_as_view(api_version: &str, kind: &str) -> bool {
    kind.eq_ignore_ascii_case(KIND) || api_version.starts_with("matview.dev/")
}

/// Problems of the document's envelope, as the API server would name them.
fn envelope_problems(value: &serde_yaml_ng::Value) -> Vec<String> {
    fn text(v: Option<&serde_yaml_ng::Value>) -> &str {
        v.and_then(|v| v.as_str()).unwrap_or_default()
    }
    let mut problems = Vec::new();
    let (api_version, kind) = (text(value.get("apiVersion")), text(value.get("kind")));
    if api_version != API_VERSION {
        problems.push(format!(
            "apiVersion: {api_version:?} is not served; use {API_VERSION}"
        ));
    }
    if kind != KIND {
        problems.push(format!(
            "kind: {kind:?} is not a kind of matview.dev; use {KIND}"
        ));
    }
    let name = text(value.get("metadata").and_then(|m| m.get("name")));
    if let Some(problem) = dns_subdomain_problem(name) {
        problems.push(format!("metadata.name: {problem}"));
    }
    problems
}

/// Kubernetes' rule for object names (RFC 1123 subdomain).
fn dns_subdomain_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is required".into());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Some(format!(
            "{name:?} must be lower-case letters, digits, '-' and '.', start and end with a letter or digit, at most 253 characters"
        ));
    }
    None
}

/// Checks every MaterializedView document in a YAML text (other kinds are
/// skipped; a misspelt kind or a wrong apiVersion of ours is invalid).
pub fn check_text(text: &str) -> Vec<Verdict> {
    check_documents(text).into_iter().map(|(v, _)| v).collect()
}

/// The verdicts, each valid one with its view.
fn check_documents(text: &str) -> Vec<(Verdict, Option<ValidatedView>)> {
    let invalid = |name: String, problems: Vec<String>| (Verdict::Invalid { name, problems }, None);
    let mut verdicts = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = match serde_yaml_ng::Value::deserialize(document) {
            Ok(v) => v,
            Err(e) => {
                verdicts.push(invalid("<unparsable>".into(), vec![e.to_string()]));
                // After a syntax error the parser yields the same error
                // forever: nothing after it can be read.
                break;
            }
        };
        let field = |k: &str| value.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        if !meant_as_view(field("apiVersion"), field("kind")) {
            continue;
        }
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or("<unnamed>")
            .to_string();
        let mut problems = envelope_problems(&value);
        if problems.is_empty() {
            // The API server's schema and CEL rules, from the CRD itself.
            match serde_json::to_value(&value) {
                Ok(json) => problems.extend(crate::crd::offline::check(&json)),
                Err(e) => problems.push(format!("not a JSON-compatible document: {e}")),
            }
        }
        if !problems.is_empty() {
            verdicts.push(invalid(name, problems));
            continue;
        }
        let view: MaterializedView = match serde_yaml_ng::from_value(value) {
            Ok(v) => v,
            Err(e) => {
                verdicts.push(invalid(name, vec![format!("spec: {e}")]));
                continue;
            }
        };
        verdicts.push(match ValidatedView::new(&view) {
            Ok(valid) => {
                let revision = valid.revision.clone();
                (Verdict::Valid { name, revision }, Some(valid))
            }
            Err(ViewError::Invalid { source, .. }) => invalid(
                name,
                source.issues.iter().map(ToString::to_string).collect(),
            ),
            Err(e @ ViewError::Unnamed) => invalid(name, vec![e.to_string()]),
        });
    }
    verdicts
}

pub fn run(paths: &[PathBuf], registry: Option<&SchemaCheck>) -> Result<(), CliError> {
    let (mut total, mut invalid) = (0, 0);
    let files = crate::view::manifest_files(paths)
        .map_err(|(path, source)| CliError::Read { path, source })?;
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| CliError::Read {
            path: file.clone(),
            source,
        })?;
        for (verdict, view) in check_documents(&text) {
            total += 1;
            let verdict = match (registry, view) {
                (Some(registry), Some(view)) => with_schema(verdict, registry.view(&view)),
                _ => verdict,
            };
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

/// The verdict with what the registry said: problems make it invalid; a
/// registry that could not answer is said, and leaves it valid.
fn with_schema(verdict: Verdict, schema: SchemaVerdict) -> Verdict {
    match (verdict, schema) {
        (Verdict::Valid { name, .. }, SchemaVerdict::Problems(problems)) => {
            Verdict::Invalid { name, problems }
        }
        (Verdict::Valid { name, revision }, SchemaVerdict::Fits { subject, id }) => {
            println!("  paths checked against {subject}, schema id {id}");
            Verdict::Valid { name, revision }
        }
        (verdict, SchemaVerdict::Unchecked(why)) => {
            eprintln!("  could not check the paths against the schema registry: {why}");
            verdict
        }
        (verdict, _) => verdict,
    }
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

    #[test]
    fn a_wrong_api_version_a_misspelt_kind_or_a_bad_name_is_invalid() {
        let good = include_str!("../../examples/items-by-price.yaml");
        let cases = [
            (
                "apiVersion: matview.dev/v1alpha1",
                "apiVersion: matview.dev/v1",
                "apiVersion",
            ),
            ("kind: MaterializedView", "kind: MaterialisedView", "kind"),
            ("kind: MaterializedView", "kind: materializedview", "kind"),
            (
                "name: items-by-price",
                "name: Items_By_Price",
                "metadata.name",
            ),
        ];
        for (from, to, field) in cases {
            assert!(good.contains(from), "{from}");
            let verdicts = check_text(&good.replacen(from, to, 1));
            match verdicts.as_slice() {
                [Verdict::Invalid { problems, .. }] => assert!(
                    problems.iter().any(|p| p.starts_with(&format!("{field}:"))),
                    "{to}: {problems:?}"
                ),
                other => panic!("{to}: expected one invalid verdict, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_syntax_error_ends_the_stream_with_one_verdict() {
        for text in [
            "a: [\n",
            "kind: MaterializedView\n  - x\n: :",
            "---\n&a [*a]\n",
        ] {
            let verdicts = check_text(text);
            assert!(verdicts.len() <= 1, "{text:?}: {verdicts:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    #[test]
    fn a_manifest_damaged_anywhere_is_judged_without_a_panic(
        cuts in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), 0usize..12, "\\PC{0,6}"), 1..4),
    ) {
        let mut text: Vec<char> = include_str!("../../examples/items-by-price.yaml").to_string().chars().collect();
        for (at, len, insert) in cuts {
            let start = at.index(text.len().max(1)).min(text.len());
            let end = (start + len).min(text.len());
            text.splice(start..end, insert.chars());
        }
        let text: String = text.into_iter().collect();
        for verdict in super::check_text(&text) {
            if let super::Verdict::Invalid { problems, .. } = verdict {
                proptest::prop_assert!(!problems.is_empty());
                proptest::prop_assert!(problems.iter().all(|p| !p.trim().is_empty()), "{:?}", problems);
            }
        }
    }
    }
}
