//! Leader election between operator replicas on the real API server: one
//! acts, another takes over when it dies, and a leader stopped by SIGTERM
//! hands the Lease on at once.

use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use matview::crd::MaterializedView;

use crate::operator::shop_view;
use crate::support::kube::{TestNamespace, admin_client, install_matview_crd, operator_identity};
use crate::support::operator;
use crate::support::{TestEnv, eventually, kafka, unique_name};

#[tokio::test]
async fn two_replicas_one_acts_and_the_other_takes_over() {
    use k8s_openapi::api::coordination::v1::Lease;

    let env = TestEnv::with_kafka();
    let client = admin_client(env).await;
    install_matview_crd(&client).await;
    let ns = TestNamespace::create(&client, "leader").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (kubeconfig, _) = operator_identity(env, &client, &ns.name, dir.path()).await;
    let mut replicas = vec![
        Some(operator::start(
            &kubeconfig,
            &ns.name,
            &dir.path().join("a.log"),
            "replica-a",
        )),
        Some(operator::start(
            &kubeconfig,
            &ns.name,
            &dir.path().join("b.log"),
            "replica-b",
        )),
    ];
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let holder = |leases: Api<Lease>| async move {
        leases
            .get_opt("matview-operator")
            .await
            .ok()??
            .spec?
            .holder_identity
    };
    let first = eventually("a leader", Duration::from_secs(30), || {
        holder(leases.clone())
    })
    .await;
    assert!(first == "replica-a" || first == "replica-b", "{first}");

    let topic = kafka::create_topic(env, "orders", 1).await;
    let views: Api<MaterializedView> = Api::namespaced(client.clone(), &ns.name);
    views
        .create(
            &PostParams::default(),
            &shop_view(env, "one", &topic, &unique_name("dlq")),
        )
        .await
        .expect("created");
    let reconciled = |name: &'static str| {
        let views = views.clone();
        move || {
            let views = views.clone();
            async move { views.get(name).await.ok()?.status?.phase.map(|_| ()) }
        }
    };
    eventually(
        "the leader reconciles",
        Duration::from_secs(30),
        reconciled("one"),
    )
    .await;
    let logs = |who: &str| {
        std::fs::read_to_string(dir.path().join(format!("{who}.log"))).unwrap_or_default()
    };
    let follower = if first == "replica-a" { "b" } else { "a" };
    assert!(
        !logs(follower).contains("leading"),
        "only one replica leads"
    );

    // The leader dies: the other replica takes the lease and acts.
    replicas[if first == "replica-a" { 0 } else { 1 }] = None;
    let started = std::time::Instant::now();
    let second = eventually("a new leader", Duration::from_secs(30), || {
        let leases = leases.clone();
        let first = first.clone();
        async move { holder(leases).await.filter(|h| *h != first) }
    })
    .await;
    eprintln!("leader failover took {:?} (lease 3 s)", started.elapsed());
    assert_eq!(second, format!("replica-{follower}"));
    views
        .create(
            &PostParams::default(),
            &shop_view(env, "two", &topic, &unique_name("dlq")),
        )
        .await
        .expect("created");
    eventually(
        "the new leader reconciles",
        Duration::from_secs(30),
        reconciled("two"),
    )
    .await;
    drop(replicas);
}

/// A leader stopped with SIGTERM (a rollout) hands the lease over at once:
/// the other replica leads well before the lease would have expired.
#[tokio::test]
async fn a_leader_stopped_by_sigterm_steps_down_at_once() {
    use k8s_openapi::api::coordination::v1::Lease;

    let env = TestEnv::with_kafka();
    let client = admin_client(env).await;
    install_matview_crd(&client).await;
    let ns = TestNamespace::create(&client, "stepdown").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (kubeconfig, _) = operator_identity(env, &client, &ns.name, dir.path()).await;
    let lease_seconds = 60;
    let mut first = operator::start_with_lease(
        &kubeconfig,
        &ns.name,
        &dir.path().join("a.log"),
        "replica-a",
        lease_seconds,
    );
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let holder = |leases: Api<Lease>| async move {
        leases
            .get_opt("matview-operator")
            .await
            .ok()??
            .spec?
            .holder_identity
    };
    eventually("replica-a leads", Duration::from_secs(30), || async {
        holder(leases.clone()).await.filter(|h| h == "replica-a")
    })
    .await;
    let _second = operator::start_with_lease(
        &kubeconfig,
        &ns.name,
        &dir.path().join("b.log"),
        "replica-b",
        lease_seconds,
    );
    let status = first.terminate();
    assert!(status.success(), "SIGTERM is a clean exit: {status}");
    let stopped = Instant::now();
    eventually("replica-b leads", Duration::from_secs(30), || async {
        holder(leases.clone()).await.filter(|h| h == "replica-b")
    })
    .await;
    let took = stopped.elapsed();
    eprintln!("takeover after SIGTERM: {took:?} (lease {lease_seconds} s)");
    assert!(
        took < Duration::from_secs(lease_seconds / 2),
        "the lease was released, not left to expire: {took:?}"
    );
}
