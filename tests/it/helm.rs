//! The Helm chart against the real API server: a whole install → view
//! Ready → read through the gateway → upgrade → uninstall, with the chart's
//! pods run by the process kubelet under the chart's ServiceAccounts (lint,
//! render, schema and RBAC are `helm_chart.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use matview::crd::MaterializedView;
use serde_json::{Value, json};

use crate::support::kube::{
    TestNamespace, admin_client, install_matview_crd, service_account_token,
};
use crate::support::kubelet::ProcessKubelet;
use crate::support::projector::{reference, row_totals};
use crate::support::{TestEnv, eventually, kafka, ready_with_rows, run_ok, unique_name};

use crate::helm_chart::CHART;

#[tokio::test]
async fn helm_install_serves_a_view_upgrades_and_uninstalls_cleanly() {
    let env = TestEnv::with_kafka();
    let client = admin_client(env).await;
    install_matview_crd(&client).await;
    let ns = TestNamespace::create(&client, "helm").await;
    let work = tempfile::tempdir().expect("tempdir");
    let kubelet = ProcessKubelet::start(
        client.clone(),
        &ns.name,
        env!("CARGO_BIN_EXE_matview").into(),
        work.path().to_path_buf(),
    )
    .await;
    let release = unique_name("mv");
    let values = [
        format!("watchNamespace={}", ns.name),
        format!("kafka.bootstrapOverride={}", env.kafka_bootstrap),
        "operator.leaseDurationSeconds=3".to_string(),
        "logFormat=text".to_string(),
    ];
    let mut install = env.helm();
    install.args([
        "install",
        &release,
        CHART,
        "--namespace",
        &ns.name,
        "--wait",
        "--timeout",
        "180s",
    ]);
    for v in &values {
        install.args(["--set", v]);
    }
    // helm blocks; the kubelet runs on this test's runtime meanwhile.
    let out = tokio::task::spawn_blocking(move || install.output())
        .await
        .expect("helm task")
        .expect("helm");
    assert!(
        out.status.success(),
        "helm install failed: {}\npods:\n{}\nlogs:\n{}",
        String::from_utf8_lossy(&out.stderr),
        run_ok(
            env.kubectl()
                .args(["get", "pods", "-o", "wide", "-n", &ns.name])
        ),
        pod_logs(work.path())
    );
    let fullname = format!("{release}-matview");

    // The operator runs under the chart's ServiceAccount, and one replica leads.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let operators = pods
        .list(&ListParams::default().labels(&format!(
            "app.kubernetes.io/instance={release},app.kubernetes.io/component=operator"
        )))
        .await
        .expect("pods");
    assert_eq!(operators.items.len(), 2);
    for pod in &operators.items {
        let account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone());
        assert_eq!(
            account.as_deref(),
            Some(format!("{fullname}-operator").as_str())
        );
    }
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let leader = eventually("a leading operator", Duration::from_secs(60), || async {
        leases
            .get_opt("matview-operator")
            .await
            .ok()??
            .spec?
            .holder_identity
    })
    .await;
    assert!(
        operators
            .items
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some(leader.as_str())),
        "{leader}"
    );

    // The example view (its bootstrapServers point nowhere: the chart's override wins).
    let topic = kafka::create_topic(env, "orders", 2).await;
    let mut g = matview::workload::OrderGenerator::new(51, 20);
    let placed: Vec<Value> = (0..80).map(|_| g.next_order()).collect();
    crate::support::projector::produce_orders(env, &topic, &placed).await;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/items-by-price.yaml"
    ))
    .expect("example");
    let mut view: MaterializedView = serde_yaml_ng::from_str(&text).expect("parses");
    view.metadata.namespace = None;
    view.spec.source.kafka.topic = topic.clone();
    view.spec.replicas_per_shard = 1;
    view.spec.dead_letter = Some(matview::crd::DeadLetter {
        topic: Some(unique_name("helm-dlq")),
    });
    let views: Api<MaterializedView> = Api::namespaced(client.clone(), &ns.name);
    views
        .create(&PostParams::default(), &view)
        .await
        .expect("view");
    let expected = reference(&placed);
    let ready = eventually(
        "the view Ready with every row",
        Duration::from_secs(120),
        || async {
            let s = views.get("items-by-price").await.ok()?.status?;
            ready_with_rows(&s, expected.len() as i64).then_some(s)
        },
    )
    .await;
    // The chart tells the operator where its gateway is; status says it.
    assert_eq!(
        ready.url.as_deref(),
        Some(
            format!(
                "http://{fullname}-gateway.{0}.svc:8080/v1/namespaces/{0}/views/items-by-price",
                ns.name
            )
            .as_str()
        )
    );

    // The operator fenced the revision's projectors: only this release's
    // gateway and operator may reach their port.
    let revision = ready.active_revision.clone().expect("active revision");
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns.name);
    let listed = policies
        .list(&ListParams::default().labels(&format!("matview.dev/revision={revision}")))
        .await
        .expect("network policies");
    let [policy] = listed.items.as_slice() else {
        panic!(
            "one NetworkPolicy for revision {revision}: {:?}",
            listed.items
        );
    };
    let spec = serde_json::to_value(policy.spec.as_ref().expect("spec")).expect("json");
    assert_eq!(
        spec["podSelector"]["matchLabels"]["matview.dev/revision"],
        json!(revision)
    );
    let peer = &spec["ingress"][0]["from"][0];
    assert_eq!(
        peer["namespaceSelector"]["matchExpressions"][0]["values"],
        json!([ns.name])
    );
    assert_eq!(spec["ingress"][0]["ports"][0]["port"], json!(8080));

    // Read a row through the chart's gateway with a reader bound to the chart's role.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns.name);
    let reader: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "reader"}})).expect("literal");
    accounts
        .create(&PostParams::default(), &reader)
        .await
        .expect("sa");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": format!("{fullname}-{}-view-reader", ns.name)},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns.name}],
    }))
    .expect("literal");
    Api::<RoleBinding>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding");
    let token = service_account_token(&client, &ns.name, "reader").await;
    let (user, groups) = expected.iter().next().expect("a user");
    let gateway_pods = pods
        .list(&ListParams::default().labels(&format!(
            "app.kubernetes.io/instance={release},app.kubernetes.io/component=gateway"
        )))
        .await
        .expect("pods");
    let address = gateway_pods
        .items
        .iter()
        .find_map(|p| kubelet.address(p.metadata.name.as_deref()?))
        .expect("a running gateway pod");
    let url = format!(
        "http://{address}:8080/v1/namespaces/{}/views/items-by-price/rows/{user}",
        ns.name
    );
    let row = eventually("a row through the gateway", Duration::from_secs(60), || {
        let (url, token) = (url.clone(), token.clone());
        async move {
            let r = reqwest::Client::new()
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .ok()?;
            if r.status() != 200 {
                return None;
            }
            r.json::<Value>().await.ok()
        }
    })
    .await;
    assert_eq!(&row_totals(&row), groups);

    // An upgrade with a changed value rolls the Deployments.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let operator_name = format!("{fullname}-operator");
    let before = deployments.get(&operator_name).await.expect("deployment");
    let mut upgrade = env.helm();
    upgrade.args([
        "upgrade",
        &release,
        CHART,
        "--namespace",
        &ns.name,
        "--reuse-values",
        "--set",
        "logFormat=json",
        "--wait",
        "--timeout",
        "180s",
    ]);
    tokio::task::spawn_blocking(move || run_ok(&mut upgrade))
        .await
        .expect("helm task");
    let after = deployments.get(&operator_name).await.expect("deployment");
    assert!(
        after.metadata.generation > before.metadata.generation,
        "the template changed"
    );
    let args = after
        .spec
        .template
        .spec
        .as_ref()
        .map(|p| p.containers[0].args.clone());
    assert!(
        format!("{args:?}").contains("--log-format=json"),
        "{args:?}"
    );
    eventually(
        "the rollout to finish",
        Duration::from_secs(120),
        || async {
            let d = deployments.get(&operator_name).await.ok()?;
            let s = d.status?;
            (s.observed_generation == d.metadata.generation
                && s.updated_replicas == Some(2)
                && s.ready_replicas == Some(2)
                && s.replicas == Some(2))
            .then_some(())
        },
    )
    .await;

    // Uninstall: first the view (its finalizer needs the operator), then the release.
    views
        .delete("items-by-price", &DeleteParams::default())
        .await
        .expect("delete view");
    eventually("the view to be gone", Duration::from_secs(60), || async {
        views
            .get_opt("items-by-price")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let mut uninstall = env.helm();
    uninstall.args(["uninstall", &release, "--namespace", &ns.name]);
    uninstall.args(["--wait", "--timeout", "120s"]);
    tokio::task::spawn_blocking(move || run_ok(&mut uninstall))
        .await
        .expect("helm task");
    let selector = format!("app.kubernetes.io/instance={release}");
    let leftovers = eventually(
        "nothing of the release left",
        Duration::from_secs(90),
        || async {
            let list = ListParams::default().labels(&selector);
            let mut left = BTreeMap::new();
            left.insert(
                "deployments",
                deployments.list(&list).await.ok()?.items.len(),
            );
            left.insert("pods", pods.list(&list).await.ok()?.items.len());
            left.insert(
                "serviceaccounts",
                accounts.list(&list).await.ok()?.items.len(),
            );
            left.insert(
                "clusterroles",
                Api::<ClusterRole>::all(client.clone())
                    .list(&list)
                    .await
                    .ok()?
                    .items
                    .len(),
            );
            left.insert(
                "clusterrolebindings",
                Api::<ClusterRoleBinding>::all(client.clone())
                    .list(&list)
                    .await
                    .ok()?
                    .items
                    .len(),
            );
            left.values().all(|n| *n == 0).then_some(left)
        },
    )
    .await;
    assert!(leftovers.values().all(|n| *n == 0));
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    assert!(
        crds.get_opt("materializedviews.matview.dev")
            .await
            .expect("get")
            .is_some(),
        "helm keeps the CRD"
    );
}

/// The last lines of every pod's log under the kubelet's work directory.
fn pod_logs(work: &std::path::Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(work.join("pods"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let log = std::fs::read_to_string(entry.path().join("container.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        out.push_str(&format!("--- {}\n", entry.file_name().to_string_lossy()));
        for line in tail.into_iter().rev() {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
