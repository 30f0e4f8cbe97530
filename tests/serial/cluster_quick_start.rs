//! The README's cluster quick start, line by line, on the test API server:
//! `helm install` of the chart as written (a cluster-wide operator, hence
//! this serial binary), the namespace, the example view, the RoleBinding,
//! and the `curl` with a token from `kubectl create token`. What differs
//! from a reader's cluster is said where it is done: namespaces get unique
//! names, the view's bootstrapServers and topic point at the test broker
//! (the README says to set them), `kubectl get mv -w` becomes a wait for
//! Ready, and the process kubelet gives the gateway pod an address of its
//! own where a reader uses `kubectl port-forward`.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::doc_lines::command_lines;
use crate::support::kube::{admin_client, install_matview_crd};
use crate::support::kubelet::ProcessKubelet;
use crate::support::projector::{produce_orders, reference, row_totals};
use crate::support::{TestEnv, eventually, kafka, run_ok, unique_name};

/// PATH with the test environment's kubectl and helm first.
fn tools_path(env: &TestEnv) -> String {
    format!(
        "{}:{}:{}",
        env.kube_bin.display(),
        env.helm_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A line in bash with the test environment's tools and kubeconfig.
fn bash_command(env: &TestEnv, line: &str) -> Command {
    let mut command = Command::new("bash");
    command
        .args(["-c", line])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("KUBECONFIG", &env.kubeconfig)
        .env("PATH", tools_path(env));
    command
}

/// Runs a line in bash; its stdout (panics, with its stderr, on failure).
fn bash(env: &TestEnv, line: &str) -> String {
    run_ok(&mut bash_command(env, line))
}

#[tokio::test]
async fn the_readmes_cluster_quick_start_runs_as_written() {
    let _alone = crate::ONE_AT_A_TIME.lock().await;
    let env = TestEnv::with_kafka();
    let client = admin_client(env).await;
    install_matview_crd(&client).await;
    let system = unique_name("matview-system");
    let shop = unique_name("shop");
    let _uninstall = Uninstall {
        env,
        system: system.clone(),
        shop: shop.clone(),
    };
    let work = tempfile::tempdir().expect("tempdir");
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_matview"));
    let kubelets = [
        ProcessKubelet::start(
            client.clone(),
            &system,
            bin.clone(),
            work.path().join("system"),
        )
        .await,
        ProcessKubelet::start(client.clone(), &shop, bin, work.path().join("shop")).await,
    ];
    let topic = kafka::create_topic(env, "orders", 2).await;
    let mut generator = matview::workload::OrderGenerator::new(77, 10);
    // Users as the example's comment writes them (`u-3`), as the README reads one.
    let placed: Vec<Value> = (0..60)
        .map(|_| {
            let mut order = generator.next_order();
            let user = order["userId"]
                .as_str()
                .unwrap_or_default()
                .replacen('u', "u-", 1);
            order["userId"] = Value::String(user);
            order
        })
        .collect();
    produce_orders(env, &topic, &placed).await;
    let view = work.path().join("items-by-price.yaml");
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/items-by-price.yaml"
    ))
    .expect("example")
    .replace("kafka.kafka:9092", &env.kafka_bootstrap)
    .replace("topic: orders", &format!("topic: {topic}"))
    .replace("namespace: shop", &format!("namespace: {shop}"));
    std::fs::write(&view, example).expect("view");

    let lines = command_lines("README.md", "## On a cluster");
    assert_eq!(lines.len(), 7, "{lines:?}");
    assert_eq!(
        command_lines("docs/getting-started.md", "## On a cluster"),
        lines,
        "the getting-started page gives the README's cluster lines"
    );
    let mut row = None;
    for line in &lines {
        let line = line
            .replace("matview-system", &system)
            .replace("shop", &shop);
        if line.starts_with("helm install") {
            bash(env, &format!("{line} --set logFormat=text"));
        } else if line.starts_with("kubectl apply -f examples/items-by-price.yaml") {
            bash(env, &format!("kubectl apply -f {}", view.display()));
        } else if line.ends_with(" -w") {
            let get = line.trim_end_matches(" -w").to_string();
            eventually(
                "the view Ready in kubectl get mv",
                Duration::from_secs(180),
                || {
                    let out = bash(env, &format!("{get} --no-headers"));
                    async move {
                        out.split_whitespace()
                            .nth(2)
                            .filter(|ready| *ready == "True")
                            .map(|_| ())
                    }
                },
            )
            .await;
        } else if line.contains("port-forward") {
            continue;
        } else if line.starts_with("curl ") {
            let gateway = eventually("the gateway pod's address", Duration::from_secs(60), || {
                let pods = bash(env, &format!(
                    "kubectl get pods -n {system} -l app.kubernetes.io/component=gateway -o jsonpath='{{.items[*].metadata.name}}'"
                ));
                let address = pods.split_whitespace().find_map(|p| kubelets[0].address(p));
                async move { address }
            })
            .await;
            let line = line
                .replace("127.0.0.1:8080", &format!("{gateway}:8080"))
                .replace("curl ", "curl -sS --fail-with-body ");
            let answer = eventually(
                "the row through the gateway",
                Duration::from_secs(60),
                || {
                    let out = bash_command(env, &line).output();
                    async move {
                        let out = out.ok().filter(|o| o.status.success())?;
                        serde_json::from_slice::<Value>(&out.stdout).ok()
                    }
                },
            )
            .await;
            row = Some(answer);
        } else {
            bash(env, &line);
        }
    }
    let row = row.expect("the quick start reads a row");
    let want = reference(&placed);
    assert_eq!(Some(&row_totals(&row)), want.get("u-3"), "{row}");
}

/// Uninstalls the release and deletes the namespaces however the test ends
/// (a cluster-wide release left behind would trouble the next install).
struct Uninstall<'a> {
    env: &'a TestEnv,
    system: String,
    shop: String,
}

impl Drop for Uninstall<'_> {
    fn drop(&mut self) {
        let (system, shop) = (&self.system, &self.shop);
        let helm = format!("helm uninstall matview --namespace {system} --wait");
        let _ = bash_command(self.env, &helm).output();
        let namespaces = format!("kubectl delete namespace {shop} {system} --wait=false");
        let _ = bash_command(self.env, &namespaces).output();
    }
}
