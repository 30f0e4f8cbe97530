//! helm and kubectl binaries from the test environment.

use crate::support::{TestEnv, run_ok};

#[test]
fn helm_version_and_template_render_a_chart() {
    let env = TestEnv::get();
    let version = run_ok(env.helm().args(["version", "--short"]));
    assert!(
        version.starts_with("v3."),
        "unexpected helm version {version:?}"
    );

    let chart = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(chart.path().join("templates")).expect("mkdir");
    std::fs::write(
        chart.path().join("Chart.yaml"),
        "apiVersion: v2\nname: smoke\nversion: 0.1.0\n",
    )
    .expect("write Chart.yaml");
    std::fs::write(chart.path().join("values.yaml"), "greeting: hello\n").expect("write values");
    std::fs::write(
        chart.path().join("templates/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\ndata:\n  greeting: {{ .Values.greeting | upper | quote }}\n",
    )
    .expect("write template");
    let rendered = run_ok(
        env.helm()
            .args(["template", "demo"])
            .arg(chart.path())
            .args(["--set", "greeting=bonjour"]),
    );
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        rendered
            .split("---")
            .find(|d| d.contains("kind: ConfigMap"))
            .expect("no ConfigMap rendered"),
    )
    .expect("rendered YAML");
    assert_eq!(doc["metadata"]["name"], "demo-cm");
    assert_eq!(doc["data"]["greeting"], "BONJOUR");
}

#[test]
fn kubectl_talks_to_the_api_server_over_tls() {
    let env = TestEnv::get();
    let out = run_ok(env.kubectl().args(["version", "-o", "json"]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("kubectl version JSON");
    let server = v["serverVersion"]["gitVersion"]
        .as_str()
        .expect("no server version");
    assert!(server.starts_with("v1."), "{server}");
    let out = run_ok(
        env.kubectl()
            .args(["auth", "can-i", "create", "customresourcedefinitions"]),
    );
    assert_eq!(out.trim(), "yes");
}
