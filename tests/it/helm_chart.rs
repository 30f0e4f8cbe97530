//! The Helm chart without a cluster's workloads: lint, render, values
//! schema, and RBAC equal to config/rbac (one source of truth).

use crate::support::kube::{TestNamespace, admin_client, install_matview_crd};
use crate::support::{TestEnv, run_ok};

pub(crate) const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/matview");

/// `helm template` of the chart with `--set` values, as YAML documents.
fn render(
    env: &TestEnv,
    release: &str,
    namespace: &str,
    set: &[&str],
) -> Vec<serde_yaml_ng::Value> {
    let mut cmd = env.helm();
    cmd.args(["template", release, CHART, "--namespace", namespace]);
    for s in set {
        cmd.args(["--set", s]);
    }
    let text = run_ok(&mut cmd);
    serde_yaml_ng::Deserializer::from_str(&text)
        .filter_map(|doc| serde::Deserialize::deserialize(doc).ok())
        .filter(|v: &serde_yaml_ng::Value| !v.is_null())
        .collect()
}

fn rules_of(docs: &[serde_yaml_ng::Value], name_suffix: &str) -> serde_yaml_ng::Value {
    docs.iter()
        .find(|d| {
            d["kind"] == "ClusterRole"
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(name_suffix))
        })
        .map(|d| d["rules"].clone())
        .unwrap_or_else(|| panic!("no ClusterRole *{name_suffix} rendered"))
}

fn config_rules(file: &str, role: &str) -> serde_yaml_ng::Value {
    let path = format!("{}/config/rbac/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("RBAC manifest");
    serde_yaml_ng::Deserializer::from_str(&text)
        .filter_map(|doc| serde::Deserialize::deserialize(doc).ok())
        .find(|d: &serde_yaml_ng::Value| {
            d["kind"] == "ClusterRole" && d["metadata"]["name"] == role
        })
        .map(|d| d["rules"].clone())
        .unwrap_or_else(|| panic!("no ClusterRole {role} in {path}"))
}

#[tokio::test]
async fn the_chart_lints_renders_and_keeps_one_source_of_truth() {
    let env = TestEnv::get();
    let client = admin_client(env).await;
    install_matview_crd(&client).await;
    let ns = TestNamespace::create(&client, "chart").await;
    run_ok(env.helm().args(["lint", "--strict", CHART]));

    // What the chart renders, the API server accepts.
    let text = run_ok(
        env.helm()
            .args(["template", "lint", CHART, "--namespace", &ns.name]),
    );
    let mut apply = env.kubectl();
    apply.args(["apply", "--dry-run=server", "-n", &ns.name, "-f", "-"]);
    apply
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    apply.stderr(std::process::Stdio::piped());
    let mut child = apply.spawn().expect("kubectl");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("kubectl output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // One source of truth: the chart's CRD and RBAC equal the repository's.
    let crd_in_chart =
        std::fs::read_to_string(format!("{CHART}/crds/materializedview.yaml")).expect("chart CRD");
    assert_eq!(
        crd_in_chart,
        matview::crd::crd_yaml().expect("CRD"),
        "charts/matview/crds is stale"
    );
    let docs = render(env, "lint", &ns.name, &[]);
    assert_eq!(
        rules_of(&docs, "-operator"),
        config_rules("operator.yaml", "matview-operator")
    );
    assert_eq!(
        rules_of(&docs, "-gateway"),
        config_rules("gateway.yaml", "matview-gateway")
    );
    assert_eq!(
        rules_of(&docs, "-view-reader"),
        config_rules("view-reader.yaml", "matview-view-reader")
    );
    assert_eq!(
        rules_of(&docs, "-dead-letter-reader"),
        config_rules("dead-letter-reader.yaml", "matview-dead-letter-reader")
    );
    // Every pod runs restricted: non-root, read-only root filesystem.
    for d in docs.iter().filter(|d| d["kind"] == "Deployment") {
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(
            pod["securityContext"]["runAsNonRoot"],
            serde_yaml_ng::Value::Bool(true)
        );
        let container = &pod["containers"][0]["securityContext"];
        assert_eq!(
            container["readOnlyRootFilesystem"],
            serde_yaml_ng::Value::Bool(true)
        );
        assert_eq!(
            container["allowPrivilegeEscalation"],
            serde_yaml_ng::Value::Bool(false)
        );
    }

    // A wrong value fails at install time, naming it.
    for (set, named) in [
        ("operator.replicas=0", "/operator/replicas"),
        ("logFormat=xml", "/logFormat"),
        ("gateway.auth=basic", "/gateway/auth"),
        ("operator.colour=red", "colour"),
    ] {
        let out = env
            .helm()
            .args(["template", "bad", CHART, "--set", set])
            .output()
            .expect("helm");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{set} must be rejected");
        assert!(err.contains(named), "{set}: the error names {named}: {err}");
    }
}
