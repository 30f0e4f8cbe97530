//! Status that tells the truth when projectors cannot run: pods the node
//! cannot take, an image that cannot be pulled, a projector that exits.
//! The process kubelet refuses what a real node and scheduler would
//! (`support::node_rules`); the operator must name each cause in the
//! view's conditions, `kubectl get` and `describe`, and Warning Events.
//! And an operator and a gateway started before the CRD wait for it.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ResourceRequirements, Secret};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, PostParams};
use matview::crd::{CRD_MISSING, ConditionStatus, ConditionType, MaterializedView, Phase};

use crate::operator::{condition, shop_view};
use crate::support::kube_apiserver::EmptyCluster;
use crate::support::operator::OperatorFixture;
use crate::support::{TestEnv, eventually, gateway, kafka, operator, run_ok, unique_name};

/// Waits until the view's Ready condition has `reason` and a message that
/// contains `words` (pods reach their state one by one); returns the message.
async fn ready_reason(
    views: &Api<MaterializedView>,
    name: &str,
    reason: &str,
    words: &str,
) -> String {
    let last = std::sync::Mutex::new(String::new());
    let what = format!("{name}: Ready=False, reason {reason}, message with {words:?}");
    let found = tokio::time::timeout(
        Duration::from_secs(90),
        // The outer deadline comes first, to report what was last seen.
        eventually(&what, Duration::from_secs(120), || async {
            let view = views.get(name).await.ok()?;
            let (status, why, message) = condition(&view, ConditionType::Ready)?;
            if let Ok(mut last) = last.lock() {
                *last = format!("{status:?} {why}: {message}");
            }
            (status == ConditionStatus::False && why == reason && message.contains(words))
                .then_some(message)
        }),
    )
    .await;
    found.unwrap_or_else(|_| panic!("{what}; last seen: {:?}", last.lock().map(|l| l.clone())))
}

/// `kubectl describe mv`, printed for docs/operations/troubleshooting.md.
fn describe(env: &TestEnv, ns: &str, name: &str) -> String {
    let out = run_ok(env.kubectl().args(["describe", "mv", name, "-n", ns]));
    eprintln!("--- kubectl describe mv {name}\n{out}");
    out
}

/// Warning Events about `view`, as `reason: message` lines.
fn warnings(env: &TestEnv, ns: &str, view: &str) -> String {
    run_ok(env.kubectl().args([
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        &format!("type=Warning,involvedObject.name={view}"),
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ]))
}

#[tokio::test]
async fn unschedulable_and_crashing_projectors_are_named_in_status() {
    let fixture = OperatorFixture::start("troubles", &[], true).await;
    let (env, client, ns) = (fixture.env, &fixture.client, &fixture.ns);
    let views = fixture.views();
    let topic = kafka::create_topic(env, "troubles", 2).await;

    // More memory than any node has: Pending, unschedulable, in the scheduler's words.
    let mut big = shop_view(env, "too-big", &topic, &unique_name("big-dlq"));
    big.spec.projector = Some(matview::crd::ProjectorPod {
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity("512Gi".into()),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    });
    // A consumer property librdkafka refuses: the projector exits at start
    // (the operator uses only connection properties, so it cannot tell).
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "kafka-client"},
        "data": {
            "bootstrap.servers": ByteString(env.kafka_bootstrap.clone().into_bytes()),
            "fetch.wait.max.ms": ByteString(b"bogus".to_vec()),
        },
    }))
    .expect("secret literal");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("secret");
    let mut crashing = shop_view(env, "crashing", &topic, &unique_name("crash-dlq"));
    crashing.spec.source.kafka.bootstrap_servers = None;
    crashing.spec.source.kafka.config_from = Some(matview::crd::ConfigFrom {
        secret_name: Some("kafka-client".into()),
        config_map_name: None,
    });
    // A node selector no node matches.
    let mut pinned = shop_view(env, "pinned", &topic, &unique_name("pinned-dlq"));
    pinned.spec.projector = Some(matview::crd::ProjectorPod {
        node_selector: Some(BTreeMap::from([(
            "disktype".to_string(),
            "ssd".to_string(),
        )])),
        ..Default::default()
    });
    // Storage of a class the cluster does not have: the claims stay unbound.
    let mut unbound = shop_view(env, "unbound", &topic, &unique_name("unbound-dlq"));
    unbound.spec.projector = Some(matview::crd::ProjectorPod {
        storage_class_name: Some("no-such-class".into()),
        ..Default::default()
    });
    for view in [&big, &crashing, &pinned, &unbound] {
        views
            .create(&PostParams::default(), view)
            .await
            .expect("view");
    }

    let message = ready_reason(&views, "too-big", "Unschedulable", "2/2 Pending").await;
    assert!(
        message.starts_with(
            "0/2 projectors ready: 2/2 Pending: 0/1 nodes are available: 1 Insufficient memory."
        ),
        "{message}"
    );
    assert!(message.contains("spec.projector.resources"), "{message}");
    let view = views.get("too-big").await.expect("view");
    let status = view.status.clone().expect("status");
    assert_eq!(status.phase, Some(Phase::Building));
    // Nothing consumed: unknown, not zero.
    assert_eq!((status.lag, status.rows), (None, None), "{status:?}");
    assert_eq!(
        condition(&view, ConditionType::Degraded).map(|c| (c.0, c.1)),
        Some((ConditionStatus::False, "NotServingYet".to_string()))
    );
    assert_eq!(
        condition(&view, ConditionType::Progressing).map(|c| (c.0, c.1)),
        Some((ConditionStatus::False, "Unschedulable".to_string()))
    );
    let row = run_ok(env.kubectl().args(["get", "mv", "-n", &ns.name]));
    eprintln!("--- kubectl get mv\n{row}");
    assert!(row.contains("Unschedulable"), "kubectl get mv: {row}");
    let text = describe(env, &ns.name, "too-big");
    assert!(text.contains("Insufficient memory"), "{text}");

    let message = ready_reason(&views, "pinned", "Unschedulable", "Pending").await;
    assert!(
        message.contains("1 node(s) didn't match Pod's node affinity/selector"),
        "{message}"
    );

    let message = ready_reason(&views, "unbound", "VolumeClaimPending", "2/2 Pending").await;
    assert!(
        message.contains("unbound immediate PersistentVolumeClaims")
            && message.contains("spec.projector.storageClassName"),
        "{message}"
    );

    let message = ready_reason(&views, "crashing", "CrashLoopBackOff", "exit code").await;
    assert!(
        message.contains("CrashLoopBackOff, exit code 1"),
        "{message}"
    );
    assert!(
        message.contains("fetch.wait.max.ms") && message.contains("kubectl logs crashing-"),
        "the projector's own error and where to read more: {message}"
    );
    let text = describe(env, &ns.name, "crashing");
    assert!(text.contains("CrashLoopBackOff"), "{text}");

    // One Warning Event per problem, in words (no debug formatting).
    let events = eventually("Warning Events", Duration::from_secs(30), || async {
        let big = warnings(env, &ns.name, "too-big");
        let crash = warnings(env, &ns.name, "crashing");
        (big.contains("Unschedulable: ") && crash.contains("CrashLoopBackOff: "))
            .then_some(format!("{big}{crash}"))
    })
    .await;
    assert!(
        !events.contains("Some(") && !events.contains("None"),
        "{events}"
    );
    let unschedulable = events
        .lines()
        .filter(|l| l.starts_with("Unschedulable:"))
        .count();
    assert_eq!(unschedulable, 1, "announced once: {events}");
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_is_named_in_status() {
    let image = "registry.invalid/matview:0.0.0";
    let fixture = OperatorFixture::start("pull", &["--projector-image", image], true).await;
    let (env, ns) = (fixture.env, &fixture.ns);
    let views = fixture.views();
    let topic = kafka::create_topic(env, "pull", 1).await;
    let view = shop_view(env, "unpulled", &topic, &unique_name("pull-dlq"));
    views
        .create(&PostParams::default(), &view)
        .await
        .expect("view");
    let message = ready_reason(&views, "unpulled", "ImagePullBackOff", "2/2 cannot pull").await;
    assert!(
        message.contains("2/2 cannot pull the projector image")
            && message.contains(image)
            && message.contains("--projector-image"),
        "{message}"
    );
    describe(env, &ns.name, "unpulled");
    eventually(
        "an ImagePullBackOff Warning",
        Duration::from_secs(30),
        || async {
            warnings(env, &ns.name, "unpulled")
                .contains("ImagePullBackOff: revision ")
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn operator_and_gateway_started_before_the_crd_wait_for_it() {
    let env = TestEnv::with_kafka();
    let cluster = EmptyCluster::start(env);
    let logs = tempfile::tempdir().expect("tempdir");
    let operator_log = logs.path().join("operator.log");
    let mut operator = operator::start_with_args(
        &cluster.kubeconfig,
        "default",
        &operator_log,
        "operator-0",
        3,
        &["--no-leader-election"],
    );
    let gateway_log = logs.path().join("gateway.log");
    let gateway = gateway::start(&cluster.kubeconfig, "default", "none", &gateway_log);
    let http = reqwest::Client::new();
    let readyz = |url: String| {
        let http = http.clone();
        async move {
            let response = http.get(format!("{url}/readyz")).send().await.ok()?;
            Some((response.status().as_u16(), response.text().await.ok()?))
        }
    };
    for (what, url) in [("operator", &operator.url), ("gateway", &gateway.url)] {
        let said = eventually(
            &format!("the {what}'s /readyz to name the missing CRD"),
            Duration::from_secs(60),
            || async {
                readyz(url.clone())
                    .await
                    .filter(|(status, body)| *status == 503 && body.contains(CRD_MISSING))
            },
        )
        .await;
        eprintln!("{what} /readyz before the CRD: {said:?}");
    }
    for (what, log) in [("operator", &operator_log), ("gateway", &gateway_log)] {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        assert!(text.contains(CRD_MISSING), "{what} log: {text}");
    }

    run_ok(cluster.kubectl().args([
        "apply",
        "-f",
        concat!(env!("CARGO_MANIFEST_DIR"), "/crds/materializedview.yaml"),
    ]));
    for (what, url) in [("operator", &operator.url), ("gateway", &gateway.url)] {
        eventually(
            &format!("the {what} ready once the CRD exists"),
            Duration::from_secs(60),
            || async {
                readyz(url.clone())
                    .await
                    .filter(|(status, _)| *status == 200)
            },
        )
        .await;
    }
    // It reconciles: a view whose topic does not exist is Pending, saying so.
    let view = shop_view(
        env,
        "early",
        &unique_name("absent"),
        &unique_name("early-dlq"),
    );
    let mut file = tempfile::NamedTempFile::new().expect("file");
    serde_yaml_ng::to_writer(&mut file, &view).expect("yaml");
    run_ok(cluster.kubectl().args([
        "apply",
        "-n",
        "default",
        "-f",
        &file.path().display().to_string(),
    ]));
    eventually("the view reconciled", Duration::from_secs(60), || async {
        let out = cluster
            .kubectl()
            .args([
                "get",
                "mv",
                "early",
                "-n",
                "default",
                "-o",
                "jsonpath={.status.phase}",
            ])
            .output()
            .ok()?;
        (String::from_utf8_lossy(&out.stdout) == "Pending").then_some(())
    })
    .await;
    assert!(operator.terminate().success());
}
