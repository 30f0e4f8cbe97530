//! The MaterializedView API on a real kube-apiserver: examples are accepted,
//! invalid specs are rejected (by the schema and CEL rules, or by compilation)
//! with a message that names the field, printer columns and explain work.

use std::path::{Path, PathBuf};

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use matview::crd::MaterializedViewSpec;
use matview::engine::compile;

use crate::support::kube::{TestNamespace, admin_client, install_matview_crd};
use crate::support::{TestEnv, run_ok};

fn resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("matview.dev", "v1alpha1", "MaterializedView");
    ApiResource::from_gvk_with_plural(&gvk, "materializedviews")
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path, namespace: &str) -> DynamicObject {
    let text = std::fs::read_to_string(path).expect("readable");
    let mut obj: DynamicObject = serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a Kubernetes object: {e}", path.display()));
    obj.metadata.namespace = Some(namespace.to_string());
    obj
}

#[tokio::test]
async fn examples_are_accepted_compile_and_show_in_kubectl_get() {
    let env = TestEnv::get();
    let client = admin_client(env).await;
    install_matview_crd(&client).await;
    let ns = TestNamespace::create(&client, "crd-examples").await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &resource());
    let examples = yaml_files("examples");
    assert!(examples.len() >= 3, "expected at least three examples");
    let mut expected_rows = Vec::new();
    for path in &examples {
        let obj = load(path, &ns.name);
        let created = api
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("{} was rejected: {e}", path.display()));
        let spec: MaterializedViewSpec = serde_json::from_value(created.data["spec"].clone())
            .unwrap_or_else(|e| {
                panic!("{}: stored spec does not deserialize: {e}", path.display())
            });
        if let Err(e) = compile(&spec) {
            panic!("{} does not compile: {e}", path.display());
        }
        expected_rows.push((
            obj.metadata.name.clone().expect("named"),
            spec.source.kafka.topic.clone(),
            spec.shards,
            spec.replicas_per_shard,
        ));
    }

    let out = run_ok(
        env.kubectl()
            .args(["get", "mv", "-n", &ns.name, "-o", "wide"]),
    );
    let mut lines = out.lines();
    let header: Vec<_> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "TOPIC", "READY", "REASON", "PHASE", "LAG", "ROWS", "REVISION", "PENDING",
            "AGE", "SHARDS", "REPLICAS"
        ]
    );
    expected_rows.sort();
    let mut rows: Vec<_> = lines
        .map(|l| {
            let cols: Vec<_> = l.split_whitespace().collect();
            // No status yet: NAME TOPIC AGE SHARDS REPLICAS.
            (
                cols[0].to_string(),
                cols[1].to_string(),
                cols[cols.len() - 2].parse::<i32>().expect("shards"),
                cols[cols.len() - 1].parse::<i32>().expect("replicas"),
            )
        })
        .collect();
    rows.sort();
    assert_eq!(rows, expected_rows);

    // The short names and the category work too.
    for alias in ["mview", "matview", "materializedviews.matview.dev"] {
        let names = run_ok(
            env.kubectl()
                .args(["get", alias, "-n", &ns.name, "-o", "name"]),
        );
        assert_eq!(
            names.lines().count(),
            examples.len(),
            "kubectl get {alias}: {names}"
        );
    }
}

#[tokio::test]
async fn invalid_manifests_are_rejected_naming_the_field() {
    let env = TestEnv::get();
    let client = admin_client(env).await;
    install_matview_crd(&client).await;
    let ns = TestNamespace::create(&client, "crd-invalid").await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &resource());
    let fixtures = yaml_files("tests/fixtures/invalid");
    assert!(
        fixtures.len() >= 15,
        "expected at least 15 invalid manifests"
    );
    let mut failures = Vec::new();
    for (i, path) in fixtures.iter().enumerate() {
        let text = std::fs::read_to_string(path).expect("readable");
        let header = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
                .unwrap_or_else(|| panic!("{} has no `# {key}:` line", path.display()))
                .to_string()
        };
        let (by, expect) = (header("rejected-by"), header("expect"));
        // `matview validate` must give the same verdict offline, naming the field.
        match matview::cli::validate::check_text(&text).as_slice() {
            [matview::cli::validate::Verdict::Invalid { problems, .. }]
                if problems.iter().any(|p| p.contains(&expect)) => {}
            other => failures.push(format!(
                "{}: matview validate says {other:?}, not invalid at {expect}",
                path.display()
            )),
        }
        let mut obj = load(path, &ns.name);
        // Fixtures named "bad" get a unique name; others test their name.
        if obj.metadata.name.as_deref() == Some("bad") {
            obj.metadata.name = Some(format!("bad-{i}"));
        }
        let outcome = api.create(&PostParams::default(), &obj).await;
        let message = match (by.as_str(), outcome) {
            ("apiserver", Err(kube::Error::Api(status))) => {
                assert_eq!(status.code, 422, "{}: {status:?}", path.display());
                status.message
            }
            ("apiserver", Ok(_)) => {
                failures.push(format!("{}: accepted by the API server", path.display()));
                continue;
            }
            ("compile", Ok(created)) => {
                let spec: MaterializedViewSpec =
                    match serde_json::from_value(created.data["spec"].clone()) {
                        Ok(spec) => spec,
                        Err(e) => {
                            failures.push(format!(
                                "{}: stored spec does not deserialize: {e}",
                                path.display()
                            ));
                            continue;
                        }
                    };
                match compile(&spec) {
                    Ok(_) => {
                        failures.push(format!("{}: compiled without error", path.display()));
                        continue;
                    }
                    Err(e) => e.to_string(),
                }
            }
            // Names derived from the whole manifest (the view's name too).
            ("view", Ok(created)) => {
                let view: matview::crd::MaterializedView =
                    match serde_json::to_value(&created).and_then(serde_json::from_value) {
                        Ok(view) => view,
                        Err(e) => {
                            failures.push(format!("{}: stored view: {e}", path.display()));
                            continue;
                        }
                    };
                match matview::view::ValidatedView::new(&view) {
                    Ok(_) => {
                        failures.push(format!("{}: validated without error", path.display()));
                        continue;
                    }
                    Err(e) => matview::errors::chain(&e),
                }
            }
            (by, outcome) => panic!("{}: unexpected {by} / {outcome:?}", path.display()),
        };
        if !message.contains(&expect) {
            failures.push(format!(
                "{}: message {message:?} does not contain {expect:?}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn kubectl_explain_documents_the_fields() {
    let env = TestEnv::get();
    install_matview_crd(&admin_client(env).await).await;
    let out = run_ok(
        env.kubectl()
            .args(["explain", "materializedview.spec.classify.rules"]),
    );
    for expected in [
        "first that matches wins",
        "group\t<string> -required-",
        "notIn",
        "DNS label",
    ] {
        assert!(
            out.contains(expected),
            "explain output lacks {expected:?}:\n{out}"
        );
    }
    let out = run_ok(env.kubectl().args(["explain", "mv.spec.source.startFrom"]));
    assert!(out.contains("earliest"), "{out}");
}
