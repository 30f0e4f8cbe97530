//! A secured schema registry through the operator: https with a
//! certificate from the environment's CA and HTTP basic auth (an nginx
//! front of the registry, as a platform team would run one). A view whose
//! `schemaRegistry.configFrom` names the Secret builds the exact view; a
//! wrong password is `SourceReady=False`/`SchemaRegistryAuthenticationFailed`,
//! nothing is dead-lettered, and fixing the Secret is enough. The password
//! appears in no log, status or Event.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use matview::crd::{ConditionType, ConfigFrom, EventFormat, MaterializedView, SchemaRegistry};

use crate::support::formats::{AvroMessage, avro_order, serialized};
use crate::support::orders::{Orders, orders};
use crate::support::own_registry::SecuredRegistry;
use crate::support::projector::{Projector, reference, shop_view_yaml};
use crate::support::stack::{Stack, shop_view, source_refused, stack};
use crate::support::{TestEnv, eventually, kafka, run_ok, unique_name};

/// The registry's settings as a Secret: what a platform team would write.
async fn registry_secret(st: &Stack, name: &str, registry: &SecuredRegistry, password: &str) {
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "stringData": {
            "username": registry.username,
            "password": password,
            "ca.crt": registry.ca_pem,
        },
    }))
    .expect("secret literal");
    let secrets: Api<Secret> = Api::namespaced(st.client.clone(), &st.ns.name);
    secrets
        .patch(
            name,
            &PatchParams::apply("matview-tests").force(),
            &Patch::Apply(&secret),
        )
        .await
        .expect("secret applied");
}

/// The shop view on Avro events, its registry reached with `secret`.
fn avro_view(name: &str, topic: &str, url: &str, secret: &str) -> MaterializedView {
    let mut view = shop_view(name, topic, 1, 1, false);
    view.spec.source.kafka.bootstrap_servers = Some(TestEnv::get().kafka_bootstrap.clone());
    view.spec.source.format = EventFormat::Avro;
    view.spec.source.schema_registry = Some(SchemaRegistry {
        url: url.into(),
        config_from: Some(ConfigFrom {
            secret_name: Some(secret.into()),
            config_map_name: None,
        }),
    });
    view.spec.deletion_policy = matview::crd::DeletionPolicy::Delete;
    view
}

/// `count` seeded orders in Avro into `topic`, as confluent-kafka's
/// serializer writes them. It registers through the registry's plain
/// address: the same schemas, under the same ids, as the front serves.
async fn produce_avro_orders(
    registry: &SecuredRegistry,
    topic: &str,
    seed: u64,
    count: usize,
) -> Vec<serde_json::Value> {
    let env = TestEnv::get();
    let orders = orders(Orders {
        seed,
        users: 25,
        count,
    });
    let messages: Vec<AvroMessage> = orders.iter().map(|o| avro_order(o, "v1")).collect();
    let framed = serialized(&env.serdes_python, &registry.registry.url, topic, &messages);
    kafka::produce_raw(env, topic, &framed).await;
    orders
}

/// What every projector pod of the stack wrote.
fn pod_logs(st: &Stack) -> String {
    let pods = st.work.path().join("pods");
    let mut logs = String::new();
    for entry in std::fs::read_dir(pods).into_iter().flatten().flatten() {
        logs.push_str(
            &std::fs::read_to_string(entry.path().join("container.log")).unwrap_or_default(),
        );
    }
    logs
}

/// Deletes the view's pods: their StatefulSet makes them again, with the
/// Secret as it is now.
async fn recreate_pods(st: &Stack, view: &str) {
    let pods: Api<k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(st.client.clone(), &st.ns.name);
    let list = pods.list(&Default::default()).await.expect("pods");
    for pod in list.items {
        let name = pod.metadata.name.unwrap_or_default();
        if name.starts_with(&format!("{view}-")) {
            pods.delete(&name, &Default::default())
                .await
                .expect("pod deleted");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_reads_a_registry_behind_tls_and_basic_auth_and_a_wrong_password_is_a_status() {
    let env = TestEnv::with_registry();
    let registry = tokio::task::block_in_place(|| SecuredRegistry::start("secured"));
    let st = stack("sreg", "kubernetes").await;
    let topic = kafka::create_topic(env, "secured-avro", 2).await;
    let orders = produce_avro_orders(&registry, &topic, 0x5ec0, 200).await;
    let expected = reference(&orders);

    // Admission reads the schema through the same Secret: a path the
    // schema does not have refuses the view, naming the field.
    registry_secret(&st, "registry-good", &registry, &registry.password).await;
    let mut misfit = avro_view("misfit", &topic, &registry.url, "registry-good");
    misfit
        .spec
        .records
        .fields
        .insert("price".into(), "/cost".into());
    st.views
        .create(&PostParams::default(), &misfit)
        .await
        .expect("view");
    let refusal = eventually("misfit: refused", Duration::from_secs(120), || async {
        let status = st.views.get("misfit").await.ok()?.status?;
        status
            .conditions
            .into_iter()
            .find(|c| c.type_ == ConditionType::Ready && c.reason == "InvalidSpec")
    })
    .await;
    assert!(
        refusal.message.contains("spec.records.fields.price: /cost")
            && refusal.message.contains("shop.Item has no field \"cost\"")
            && refusal.message.contains(&format!("{topic}-value")),
        "names the field, the schema's fields and the subject: {}",
        refusal.message
    );

    // The right password: Ready through the operator, every row exact.
    let view = avro_view("secured", &topic, &registry.url, "registry-good");
    st.views
        .create(&PostParams::default(), &view)
        .await
        .expect("view");
    st.ready("secured", expected.len() as i64).await;
    let token = st.reader().await;
    assert_eq!(st.rows("secured", expected.keys(), &token).await, expected);

    // A wrong password: the shard holds (nothing dead-lettered), and the
    // status names the credentials as what to fix.
    let wrong_password = format!("wrong-{}", unique_name("pw"));
    registry_secret(&st, "registry-bad", &registry, &wrong_password).await;
    let refused = avro_view("refused", &topic, &registry.url, "registry-bad");
    st.views
        .create(&PostParams::default(), &refused)
        .await
        .expect("view");
    let condition = source_refused(&st.views, "refused").await;
    assert_eq!(
        condition.reason, "SchemaRegistryAuthenticationFailed",
        "{condition:?}"
    );
    assert!(
        condition.message.contains("401") && condition.message.contains("configFrom"),
        "names the answer and what to fix: {}",
        condition.message
    );
    let status = st
        .views
        .get("refused")
        .await
        .expect("view")
        .status
        .expect("status");
    assert_eq!(status.dead_lettered.unwrap_or_default(), 0, "{status:?}");
    let events = run_ok(
        st.env
            .kubectl()
            .args(["get", "events", "-n", &st.ns.name, "-o", "yaml"]),
    );
    for (what, text) in [
        ("operator log", st.operator_log()),
        ("projector logs", pod_logs(&st)),
        ("events", events),
        ("status", format!("{status:?}")),
    ] {
        assert!(!text.contains(&wrong_password), "{what} holds the password");
        assert!(
            !text.contains(&registry.password),
            "{what} holds the password"
        );
    }

    // Fixing the Secret is enough: the projector reads its mounted settings
    // again while refused (a kubelet refreshes the mount; this test's
    // process kubelet writes it once per pod, so the pod is recreated).
    registry_secret(&st, "registry-bad", &registry, &registry.password).await;
    recreate_pods(&st, "refused").await;
    st.ready("refused", expected.len() as i64).await;
    assert_eq!(st.rows("refused", expected.keys(), &token).await, expected);
}

/// The projector alone: settings from a directory (a mounted Secret). A
/// wrong password holds the shard and says the registry refused it; the
/// file rewritten with the right one (as a kubelet refreshes a mount)
/// heals it by itself, and the view is exact. Without the CA, https is
/// not trusted, and that is said too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_rereads_refused_settings_and_heals_when_they_are_fixed() {
    let env = TestEnv::with_registry();
    let registry = tokio::task::block_in_place(|| SecuredRegistry::start("secured-dir"));
    let topic = kafka::create_topic(env, "secured-dir", 1).await;
    let dead_letter = kafka::create_topic(env, "secured-dir-dlq", 1).await;
    let orders = produce_avro_orders(&registry, &topic, 0x5ec1, 90).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = shop_view_yaml(env, &unique_name("secured-dir"), &topic, &dead_letter, 1).replace(
        "  records:\n",
        &format!(
            "    format: avro\n    schemaRegistry: {{url: \"{}\"}}\n  records:\n",
            registry.url
        ),
    );
    let view = dir.path().join("view.yaml");
    std::fs::write(&view, yaml).expect("write view");
    let settings = dir.path().join("registry");
    std::fs::create_dir(&settings).expect("settings dir");
    let write = |name: &str, text: &str| {
        std::fs::write(settings.join(name), text).expect("write setting");
    };
    write("username", &registry.username);
    write("password", "not-the-password");
    write("ca.crt", &registry.ca_pem);
    let flag = [
        "--schema-registry-config-dir",
        settings.to_str().expect("utf-8"),
    ];
    validate_against_the_registry(&registry, &view, dir.path());
    let projector = Projector::start_with(&view, 0, &dir.path().join("data"), dir.path(), &flag);
    let refused = eventually(
        "the registry's refusal reported",
        Duration::from_secs(90),
        || async {
            let (_, stats) = projector.get("/v1/stats").await?;
            (stats["schemaRegistryRefused"] == true).then_some(stats)
        },
    )
    .await;
    let said = refused["schemaRegistryError"].as_str().unwrap_or_default();
    assert!(said.contains("401"), "{said}");
    assert_eq!(refused["deadLettered"], 0, "{refused}");
    assert_eq!(refused["recordsApplied"], 0, "{refused}");

    write("password", &registry.password);
    projector
        .wait_applied(orders.len() as i64, Duration::from_secs(90))
        .await;
    let want = reference(&orders);
    assert_eq!(projector.rows(want.keys()).await, want);
    let (_, stats) = projector.get("/v1/stats").await.expect("stats");
    assert!(stats.get("schemaRegistryError").is_none(), "{stats}");
    assert!(!projector.logs().contains(&registry.password));

    // Without the environment's CA, the registry's certificate is not
    // trusted: held, and said.
    std::fs::remove_file(settings.join("ca.crt")).expect("remove CA");
    let untrusting = Projector::start_with(
        &view,
        0,
        &dir.path().join("data-untrusting"),
        dir.path(),
        &flag,
    );
    let said = eventually(
        "untrusted certificate reported",
        Duration::from_secs(90),
        || async {
            let (_, stats) = untrusting.get("/v1/stats").await?;
            stats["schemaRegistryError"].as_str().map(str::to_string)
        },
    )
    .await;
    assert!(said.to_lowercase().contains("certificate"), "{said}");
}

/// `matview validate --schema-registry`: the view fits the registered
/// schema; a path the schema lacks is invalid, naming the field; a
/// registry that does not answer leaves it valid and says it could not check.
fn validate_against_the_registry(
    registry: &SecuredRegistry,
    view: &std::path::Path,
    dir: &std::path::Path,
) {
    let settings = dir.join("validate-settings");
    std::fs::create_dir_all(&settings).expect("settings dir");
    std::fs::write(settings.join("username"), &registry.username).expect("write");
    std::fs::write(settings.join("password"), &registry.password).expect("write");
    std::fs::write(settings.join("ca.crt"), &registry.ca_pem).expect("write");
    let validate = |manifest: &std::path::Path, url: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_matview"))
            .args(["validate", "-f"])
            .arg(manifest)
            .args(["--schema-registry", url, "--schema-registry-config-dir"])
            .arg(&settings)
            .output()
            .expect("matview validate runs")
    };
    let fits = validate(view, &registry.url);
    let said = String::from_utf8_lossy(&fits.stdout).into_owned();
    assert!(
        fits.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&fits.stderr)
    );
    assert!(
        said.contains("paths checked against") && said.contains("-value, schema id"),
        "{said}"
    );

    let misfit = dir.join("misfit.yaml");
    let text = std::fs::read_to_string(view).expect("view");
    std::fs::write(&misfit, text.replace("price: /price", "price: /cost")).expect("write");
    let refused = validate(&misfit, &registry.url);
    let said = String::from_utf8_lossy(&refused.stdout).into_owned();
    assert!(!refused.status.success(), "{said}");
    assert!(
        said.contains("spec.records.fields.price: /cost: shop.Item has no field \"cost\""),
        "{said}"
    );

    let unreachable = validate(&misfit, "http://127.0.0.1:9/apis/ccompat/v7");
    let (out, err) = (
        String::from_utf8_lossy(&unreachable.stdout).into_owned(),
        String::from_utf8_lossy(&unreachable.stderr).into_owned(),
    );
    assert!(unreachable.status.success(), "{out}{err}");
    assert!(err.contains("could not check the paths"), "{err}");
}
