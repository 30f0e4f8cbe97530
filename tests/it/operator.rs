//! The operator process against the real API server and broker: objects,
//! status conditions, invalid specs, a source topic that appears later, and
//! deletion through the finalizer (leader election: `leader_election.rs`). Projector pods run only
//! where a test starts the process kubelet.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use matview::crd::{ConditionStatus, ConditionType, MaterializedView, Phase};
use matview::engine::revision;
use matview::operator::desired::LABEL_VIEW;

use crate::support::kube::{TestNamespace, admin_client, install_matview_crd, operator_identity};
use crate::support::kubelet::ProcessKubelet;
use crate::support::operator;
use crate::support::{TestEnv, eventually, kafka, run_ok, unique_name};

pub(crate) fn shop_view(env: &TestEnv, name: &str, topic: &str, dlq: &str) -> MaterializedView {
    let mut view = crate::support::stack::example_view(name, topic);
    view.spec.source.kafka.bootstrap_servers = Some(env.kafka_bootstrap.clone());
    view.spec.dead_letter = Some(matview::crd::DeadLetter {
        topic: Some(dlq.into()),
    });
    view.spec.replicas_per_shard = 1;
    view.spec.deletion_policy = matview::crd::DeletionPolicy::Delete;
    view
}

pub(crate) fn condition(
    view: &MaterializedView,
    t: ConditionType,
) -> Option<(ConditionStatus, String, String)> {
    view.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status, c.reason.clone(), c.message.clone()))
}

#[tokio::test]
async fn operator_builds_objects_reports_status_and_cleans_up() {
    let env = TestEnv::with_kafka();
    let client = admin_client(env).await;
    install_matview_crd(&client).await;
    let ns = TestNamespace::create(&client, "operator").await;
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("operator.log");
    let (kubeconfig, user) = operator_identity(env, &client, &ns.name, logs.path()).await;
    let _operator = operator::start(&kubeconfig, &ns.name, &log, "operator-0");
    // Least privilege: what it needs, and not more.
    for (verb, resource, expected) in [
        ("patch", "statefulsets.apps", "yes"),
        ("get", "secrets", "yes"),
        ("list", "secrets", "no"),
        ("delete", "namespaces", "no"),
        ("create", "pods", "no"),
        ("delete", "materializedviews.matview.dev", "no"),
    ] {
        let out = env
            .kubectl()
            .args([
                "auth", "can-i", verb, resource, "-n", &ns.name, "--as", &user,
            ])
            .output()
            .expect("kubectl");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            expected,
            "can {user} {verb} {resource}?"
        );
    }
    let views: Api<MaterializedView> = Api::namespaced(client.clone(), &ns.name);
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns.name);
    let logs_text = || std::fs::read_to_string(&log).unwrap_or_default();

    // A valid view: objects, SourceReady, Building (no pods run here).
    let topic = kafka::create_topic(env, "orders", 2).await;
    let dlq = unique_name("orders-dlq");
    let view = shop_view(env, "shop", &topic, &dlq);
    let applied_at = Instant::now();
    views
        .create(&PostParams::default(), &view)
        .await
        .expect("view created");
    let list = ListParams::default().labels(&format!("{LABEL_VIEW}=shop"));
    eventually("two StatefulSets", Duration::from_secs(30), || {
        let sets = sets.clone();
        let list = list.clone();
        async move { (sets.list(&list).await.ok()?.items.len() == 2).then_some(()) }
    })
    .await;
    eprintln!(
        "reconcile latency (apply → all StatefulSets stored): {:?}",
        applied_at.elapsed()
    );
    let built = eventually(
        "status Building with SourceReady",
        Duration::from_secs(30),
        || {
            let views = views.clone();
            async move {
                let v = views.get("shop").await.ok()?;
                (v.status.as_ref()?.phase == Some(Phase::Building)).then_some(v)
            }
        },
    )
    .await;
    let status = built.status.as_ref().expect("status");
    assert_eq!(
        status.active_revision.as_deref(),
        Some(revision(&view.spec).as_str()),
        "{}",
        logs_text()
    );
    assert_eq!(status.observed_generation, built.metadata.generation);
    assert_eq!(
        condition(&built, ConditionType::SourceReady).map(|c| c.0),
        Some(ConditionStatus::True)
    );
    assert_eq!(
        condition(&built, ConditionType::Ready).map(|c| c.0),
        Some(ConditionStatus::False)
    );
    assert!(
        built
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == "matview.dev/cleanup")
    );
    kafka_topic_exists(env, &dlq, true).await;
    let out = run_ok(
        env.kubectl()
            .args(["get", "mv", "shop", "-n", &ns.name, "--no-headers"]),
    );
    assert!(out.contains("Building"), "{out}");
    // No projector runs here, so nothing was consumed: lag is unknown, not 0.
    assert_eq!(built.status.as_ref().and_then(|s| s.lag), None);

    // Invalid but schema-valid: a condition that says what to fix, no workload.
    let mut bad = shop_view(env, "bad", &topic, &unique_name("bad-dlq"));
    bad.spec.classify.rules[1].gte = Some(serde_json::json!(60));
    let message = refused_without_workload(&views, &sets, &bad).await;
    assert!(message.contains("spec.classify.rules[1]"), "{message}");

    // Valid for the CRD, refused by the API server in the StatefulSet: the
    // apply turns it into InvalidSpec naming the view's field, no workload.
    let mut refused = shop_view(env, "refused", &topic, &unique_name("refused-dlq"));
    let toleration: k8s_openapi::api::core::v1::Toleration =
        serde_json::from_value(serde_json::json!({"key": "dedicated", "operator": "Sometimes"}))
            .expect("toleration");
    refused.spec.projector = Some(matview::crd::ProjectorPod {
        tolerations: Some(vec![toleration]),
        ..Default::default()
    });
    let message = refused_without_workload(&views, &sets, &refused).await;
    assert!(
        message.contains("spec.projector.tolerations") && message.contains("Sometimes"),
        "{message}"
    );

    // The same refusal as a change of a view that has a revision: a dry run
    // refuses it before any object is written (an apply would have written
    // the new revision's ConfigMap before the StatefulSet was refused).
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns.name);
    let objects = || async {
        let mut names: Vec<String> = sets
            .list(&list)
            .await
            .expect("list")
            .items
            .iter()
            .map(|s| s.name_any())
            .collect();
        names.extend(
            config_maps
                .list(&list)
                .await
                .expect("list")
                .items
                .iter()
                .map(|c| c.name_any()),
        );
        names
    };
    let before = objects().await;
    assert_eq!(
        before.len(),
        3,
        "two StatefulSets and a ConfigMap: {before:?}"
    );
    // New rules (a new revision) with a toleration the API server refuses.
    let patch = serde_json::json!({"spec": {
        "classify": {"field": "price", "rules": [{"group": "cheap", "lt": 10},
            {"group": "affordable", "gte": 10, "lte": 50}, {"group": "expensive", "gt": 50}]},
        "projector": {"tolerations": [{"key": "dedicated", "operator": "Sometimes"}]}}});
    views
        .patch("shop", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("the CRD accepts it");
    let refused_change = eventually(
        "the change of shop refused",
        Duration::from_secs(30),
        || {
            let views = views.clone();
            async move {
                let v = views.get("shop").await.ok()?;
                let (_, reason, message) = condition(&v, ConditionType::Ready)?;
                (reason == "InvalidSpec").then_some(message)
            }
        },
    )
    .await;
    assert!(
        refused_change.contains("spec.projector.tolerations"),
        "{refused_change}"
    );
    assert_eq!(objects().await, before, "a refused change writes no object");

    // A source topic that does not exist yet, then appears.
    let later = unique_name("later");
    views
        .create(
            &PostParams::default(),
            &shop_view(env, "later", &later, &unique_name("later-dlq")),
        )
        .await
        .expect("created");
    let waiting = eventually("SourceReady=False", Duration::from_secs(30), || {
        let views = views.clone();
        async move {
            let v = views.get("later").await.ok()?;
            (condition(&v, ConditionType::SourceReady)?.0 == ConditionStatus::False).then_some(v)
        }
    })
    .await;
    assert_eq!(
        waiting.status.as_ref().and_then(|s| s.phase),
        Some(Phase::Pending)
    );
    assert!(
        condition(&waiting, ConditionType::SourceReady)
            .expect("condition")
            .2
            .contains(&later)
    );
    let admin = kafka::admin(env);
    let new_topic =
        rdkafka::admin::NewTopic::new(&later, 1, rdkafka::admin::TopicReplication::Fixed(1));
    admin
        .create_topics([&new_topic], &rdkafka::admin::AdminOptions::new())
        .await
        .expect("create topic");
    // With projectors running (the process kubelet), it becomes Ready
    // without any other action.
    let _kubelet = ProcessKubelet::start(
        client.clone(),
        &ns.name,
        env!("CARGO_BIN_EXE_matview").into(),
        logs.path().to_path_buf(),
    )
    .await;
    eventually(
        "Ready after the topic appears",
        Duration::from_secs(60),
        || {
            let views = views.clone();
            async move {
                let v = views.get("later").await.ok()?;
                let source = condition(&v, ConditionType::SourceReady)?.0 == ConditionStatus::True;
                (source && v.status?.phase == Some(Phase::Ready)).then_some(())
            }
        },
    )
    .await;

    // Events tell the story.
    let events = run_ok(env.kubectl().args([
        "get",
        "events",
        "-n",
        &ns.name,
        "-o",
        "jsonpath={range .items[*]}{.reason};{end}",
    ]));
    for reason in ["DeadLetterTopicCreated", "InvalidSpec", "SourceUnavailable"] {
        assert!(events.contains(reason), "no {reason} event in {events}");
    }

    // Delete: the finalizer removes the dead-letter topic (deletionPolicy Delete).
    views
        .delete("shop", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("the view to be gone", Duration::from_secs(30), || {
        let views = views.clone();
        async move { views.get_opt("shop").await.ok()?.is_none().then_some(()) }
    })
    .await;
    kafka_topic_exists(env, &dlq, false).await;
}

/// Creates a view the CRD accepts but that cannot run; waits for phase
/// Failed with reason InvalidSpec and no StatefulSet; returns the message.
async fn refused_without_workload(
    views: &Api<MaterializedView>,
    sets: &Api<StatefulSet>,
    view: &MaterializedView,
) -> String {
    let name = view.metadata.name.clone().expect("a name");
    views
        .create(&PostParams::default(), view)
        .await
        .expect("the CRD accepts it");
    let failed = eventually(
        &format!("{name} → Failed"),
        Duration::from_secs(30),
        || {
            let (views, name) = (views.clone(), name.clone());
            async move {
                let v = views.get(&name).await.ok()?;
                (v.status.as_ref()?.phase == Some(Phase::Failed)).then_some(v)
            }
        },
    )
    .await;
    let (_, reason, message) = condition(&failed, ConditionType::Ready).expect("Ready condition");
    assert_eq!(reason, "InvalidSpec", "{message}");
    let workloads = sets
        .list(&ListParams::default().labels(&format!("{LABEL_VIEW}={name}")))
        .await
        .expect("list");
    assert!(workloads.items.is_empty(), "{name} must not get workloads");
    message
}

async fn kafka_topic_exists(env: &TestEnv, topic: &str, expected: bool) {
    eventually(
        &format!("topic {topic} exists == {expected}"),
        Duration::from_secs(20),
        || {
            let topic = topic.to_string();
            async move {
                let consumer: rdkafka::consumer::BaseConsumer =
                    kafka::client_config(env).create().ok()?;
                let metadata = rdkafka::consumer::Consumer::fetch_metadata(
                    &consumer,
                    Some(&topic),
                    Duration::from_secs(5),
                )
                .ok()?;
                let exists = metadata.topics().iter().any(|t| {
                    t.name() == topic && t.error().is_none() && !t.partitions().is_empty()
                });
                (exists == expected).then_some(())
            }
        },
    )
    .await;
}

/// A view whose brokers do not answer says so: a `SourceUnavailable`
/// Warning Event and `SourceReady=False`/`BrokerUnreachable` naming the
/// broker, not a failed reconcile behind a generic finalizer reason.
#[tokio::test]
async fn an_unreachable_broker_is_reported_in_status_and_events_not_as_an_error() {
    let env = TestEnv::with_kafka();
    let client = admin_client(env).await;
    install_matview_crd(&client).await;
    let ns = TestNamespace::create(&client, "reasons").await;
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("operator.log");
    let (kubeconfig, _) = operator_identity(env, &client, &ns.name, logs.path()).await;
    let operator = operator::start(&kubeconfig, &ns.name, &log, "operator-0");

    // Nothing listens on this port: every metadata request fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let mut view = shop_view(env, "unreachable", "orders", &unique_name("dlq"));
    view.spec.source.kafka.bootstrap_servers = Some(closed.to_string());
    let views: Api<MaterializedView> = Api::namespaced(client.clone(), &ns.name);
    views
        .create(&PostParams::default(), &view)
        .await
        .expect("created");

    let reasons = eventually("a SourceUnavailable Event", Duration::from_secs(90), || {
        let ns = ns.name.clone();
        async move {
            let out = env
                .kubectl()
                .args(["get", "events", "-n", &ns, "-o"])
                .arg("jsonpath={range .items[*]}{.type}/{.reason}: {.message}{\"\\n\"}{end}")
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.contains("Warning/SourceUnavailable").then_some(text)
        }
    })
    .await;
    assert!(
        !reasons.contains("FinalizerError"),
        "the finalizer must not hide the reason: {reasons}"
    );
    let note = reasons
        .lines()
        .find(|l| l.starts_with("Warning/SourceUnavailable"))
        .unwrap_or_default();
    assert!(
        note.contains(&closed.to_string()),
        "the note names the broker: {note}"
    );

    // Status says what is wrong, in the view's terms.
    let status = eventually(
        "SourceReady=False in status",
        Duration::from_secs(60),
        || {
            let views = views.clone();
            async move {
                let s = views.get("unreachable").await.ok()?.status?;
                let c = s
                    .conditions
                    .iter()
                    .find(|c| c.type_ == matview::crd::ConditionType::SourceReady)?
                    .clone();
                (c.status == matview::crd::ConditionStatus::False).then_some(c)
            }
        },
    )
    .await;
    assert_eq!(status.reason, "BrokerUnreachable");
    assert!(
        status.message.contains(&closed.to_string()),
        "{}",
        status.message
    );

    // A broker that does not answer is a state of the world, not a failed
    // reconcile: no error counted, none hidden by the finalizer.
    let http = reqwest::Client::new();
    let metrics = eventually("the operator's metrics", Duration::from_secs(30), || {
        let request = http.get(format!("{}/metrics", operator.url));
        async move { request.send().await.ok()?.text().await.ok() }
    })
    .await;
    assert!(
        !metrics.contains("reconcile_errors_total{reason=\"KafkaError\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains("FinalizerError"), "{metrics}");
}
