//! A view resolved once: the compiled spec, its revision and every name that
//! two processes must agree on (the dead-letter topic, the consumer group of a
//! revision). The operator and the projector both build a [`ValidatedView`]
//! from the same manifest, so these names are written in one place only.

use matview_crd::{MaterializedView, MaterializedViewSpec, StartFrom};
use matview_engine::{CompileError, CompiledView, SpecIssue, compile, revision};

/// The namespace of a manifest that names none (a projector run by hand).
pub const DEFAULT_NAMESPACE: &str = "default";

/// Why a manifest is not a runnable view.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("metadata.name is required")]
    Unnamed,
    #[error("view {name}")]
    Invalid {
        name: String,
        #[source]
        source: CompileError,
    },
}

/// A MaterializedView that compiled: everything downstream reads this value
/// and never re-derives it from the spec.
#[derive(Debug, Clone)]
pub struct ValidatedView {
    pub namespace: String,
    pub name: String,
    pub compiled: CompiledView,
    /// The revision of the spec as it is now (the content hash).
    pub revision: String,
    pub shards: u32,
    pub topic: String,
    pub dead_letter_topic: String,
    pub start_from: StartFrom,
    pub keyed_by_row_key: bool,
    /// The spec as given, for whoever must pass it on.
    pub spec: MaterializedViewSpec,
}

impl ValidatedView {
    pub fn new(view: &MaterializedView) -> Result<ValidatedView, ViewError> {
        let name = view
            .metadata
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or(ViewError::Unnamed)?;
        let mut derived = derived_name_issues(view);
        if let Some(message) = view_name_problem(&name) {
            derived.insert(
                0,
                SpecIssue {
                    path: "metadata.name".into(),
                    message,
                },
            );
        }
        let compiled = match compile(&view.spec) {
            Ok(compiled) if derived.is_empty() => Ok(compiled),
            Ok(_) => Err(CompileError { issues: derived }),
            Err(mut e) => {
                e.issues.extend(derived);
                Err(e)
            }
        }
        .map_err(|source| ViewError::Invalid {
            name: name.clone(),
            source,
        })?;
        let spec = &view.spec;
        let topic = spec.source.kafka.topic.clone();
        Ok(ValidatedView {
            namespace: view
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| DEFAULT_NAMESPACE.into()),
            dead_letter_topic: dead_letter_topic(view),
            name,
            compiled,
            revision: revision(spec),
            shards: shard_count(spec.shards),
            topic,
            start_from: spec.source.start_from,
            keyed_by_row_key: spec.source.keyed_by_row_key,
            spec: spec.clone(),
        })
    }

    /// `namespace/name`, for logs and per-view bookkeeping.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The consumer group of one revision of this view.
    pub fn consumer_group(&self, revision: &str) -> String {
        consumer_group(&self.namespace, &self.name, revision)
    }
}

/// The manifest files of the given paths: files as they are, directories'
/// `*.yaml` and `*.yml` files in name order. `Err` names the unreadable path.
pub fn manifest_files(
    paths: &[std::path::PathBuf],
) -> Result<Vec<std::path::PathBuf>, (std::path::PathBuf, std::io::Error)> {
    let mut out = Vec::new();
    for path in paths {
        if !path.is_dir() {
            out.push(path.clone());
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|e| (path.clone(), e))?;
        let mut found: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

/// Shards as a count: the schema keeps `spec.shards` ≥ 1; a value that slipped
/// past it still means one shard, never zero.
pub fn shard_count(shards: i32) -> u32 {
    u32::try_from(shards).unwrap_or(1).max(1)
}

/// The view's dead-letter topic: the one it names, else `<topic>.<view>.dlq`.
/// Needs no compiled spec, so cleanup of an invalid view finds it too.
pub fn dead_letter_topic(view: &MaterializedView) -> String {
    let named = view.spec.dead_letter.as_ref().and_then(|d| d.topic.clone());
    named.unwrap_or_else(|| {
        let name = view.metadata.name.as_deref().unwrap_or_default();
        format!("{}.{name}.dlq", view.spec.source.kafka.topic)
    })
}

/// Why `name` cannot be a view's name, if it cannot. A view's name starts
/// the names of its Services, which must be DNS-1035 labels (a letter first,
/// no dots), and of its pods, DNS-1123 labels; a name Kubernetes accepts for
/// the view itself (dots allowed, a digit first) could never have them.
/// The CRD's rule on `metadata.name` says the same at admission.
pub fn view_name_problem(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let label = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !name.ends_with('-');
    (!label).then(|| VIEW_NAME_RULE.to_string())
}

/// What a view's name must be, as the CRD's admission rule says it too.
pub const VIEW_NAME_RULE: &str = "a view name must be a DNS-1035 label: at most 63 lower-case letters, digits and '-', starting with a letter and ending with a letter or digit (no dots), since it names the view's Services and pods";

/// Problems of names derived from the manifest (not from the spec alone):
/// the default dead-letter topic must be a topic Kafka accepts.
fn derived_name_issues(view: &MaterializedView) -> Vec<SpecIssue> {
    let named = view
        .spec
        .dead_letter
        .as_ref()
        .and_then(|d| d.topic.as_ref());
    let source = &view.spec.source.kafka.topic;
    // A bad source topic is reported on its own field.
    if named.is_some() || matview_engine::source::topic_name_problem(source).is_some() {
        return Vec::new();
    }
    let topic = dead_letter_topic(view);
    match matview_engine::source::topic_name_problem(&topic) {
        Some(problem) => vec![SpecIssue {
            path: "spec.deadLetter.topic".into(),
            message: format!(
                "the default dead-letter topic (<source topic>.<view name>.dlq) {problem}; set spec.deadLetter.topic to a shorter name"
            ),
        }],
        None => Vec::new(),
    }
}

/// Offsets of a revision are also committed to this group, so standard lag
/// tools see the projectors (and the operator reads its lag from it).
pub fn consumer_group(namespace: &str, view: &str, revision: &str) -> String {
    format!("matview.{namespace}.{view}.{revision}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> MaterializedView {
        let text = include_str!("../../../examples/items-by-price.yaml");
        serde_yaml_ng::from_str(text).expect("the example parses")
    }

    #[test]
    fn names_shared_by_operator_and_projector_come_from_the_manifest() {
        let view = ValidatedView::new(&example()).expect("valid");
        assert_eq!(view.key(), "shop/items-by-price");
        assert_eq!(view.dead_letter_topic, "orders.items-by-price.dlq");
        assert_eq!(
            view.consumer_group("abc"),
            "matview.shop.items-by-price.abc"
        );
        assert_eq!(view.shards, 2);
        assert_eq!(view.revision, revision(&example().spec));
    }

    #[test]
    fn an_unnamed_or_invalid_manifest_is_refused_with_the_reason() {
        let mut unnamed = example();
        unnamed.metadata.name = None;
        assert!(matches!(
            ValidatedView::new(&unnamed),
            Err(ViewError::Unnamed)
        ));
        let mut invalid = example();
        invalid.spec.classify.rules[1].gte = Some(serde_json::json!(60));
        let error = ValidatedView::new(&invalid).expect_err("invalid");
        let chain = crate::errors::chain(&error);
        assert!(chain.contains("spec.classify.rules[1]"), "{chain}");
    }

    #[test]
    fn a_name_that_cannot_name_services_and_pods_is_refused_naming_metadata_name() {
        for bad in [
            "my.view",
            "1view",
            "view-",
            "-view",
            "View",
            "a_b",
            &"a".repeat(64),
        ] {
            let mut view = example();
            view.metadata.name = Some(bad.into());
            let error = ValidatedView::new(&view).expect_err(bad);
            let chain = crate::errors::chain(&error);
            assert!(
                chain.contains("metadata.name") && chain.contains("DNS-1035"),
                "{bad}: {chain}"
            );
        }
        for good in ["v", "items-by-price", "a1-b2", &"a".repeat(63)] {
            let mut view = example();
            view.metadata.name = Some(good.into());
            ValidatedView::new(&view).expect(good);
        }
    }

    #[test]
    fn a_manifest_without_namespace_lands_in_default() {
        let mut view = example();
        view.metadata.namespace = None;
        let validated = ValidatedView::new(&view).expect("valid");
        assert_eq!(validated.namespace, DEFAULT_NAMESPACE);
    }
}
