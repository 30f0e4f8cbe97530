//! Desired objects, checked without a cluster.

use super::desired::*;
use super::*;

fn view(name: &str, shards: i32, replicas: i32) -> MaterializedView {
    let text = include_str!("../../../examples/items-by-price.yaml");
    let mut view: MaterializedView = serde_yaml_ng::from_str(text).expect("example parses");
    view.metadata.name = Some(name.into());
    view.metadata.uid = Some("uid-1".into());
    view.spec.shards = shards;
    view.spec.replicas_per_shard = replicas;
    view
}

#[test]
fn one_stateful_set_per_shard_with_its_shard_argument() {
    let (rev, objects) = plan(&view("items", 3, 2), &PodSettings::default()).expect("plans");
    assert_eq!(objects.stateful_sets.len(), 3);
    for (shard, set) in objects.stateful_sets.iter().enumerate() {
        let spec = &set.spec;
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(
            set.metadata.name.as_deref(),
            Some(format!("items-{rev}-s{shard}").as_str())
        );
        let labels = spec.selector.match_labels.as_ref().expect("selector");
        assert_eq!(labels[LABEL_SHARD], shard.to_string());
        assert_eq!(labels[LABEL_REVISION], rev);
        let pod = spec.template.spec.as_ref().expect("pod");
        let args = pod.containers[0].args.as_ref().expect("args");
        let at = args.iter().position(|a| a == "--shard").expect("--shard");
        assert_eq!(args[at + 1], shard.to_string());
        // The template's labels satisfy the selector.
        let template_labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref())
            .expect("labels");
        assert!(
            labels
                .iter()
                .all(|(k, v)| template_labels.get(k) == Some(v))
        );
    }
}

#[test]
fn scaling_replicas_changes_neither_revision_nor_names() {
    let (rev1, one) = plan(&view("items", 2, 1), &PodSettings::default()).expect("plans");
    let (rev2, two) = plan(&view("items", 2, 3), &PodSettings::default()).expect("plans");
    assert_eq!(rev1, rev2);
    let names = |o: &DesiredObjects| {
        o.stateful_sets
            .iter()
            .map(|s| s.metadata.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&one), names(&two));
    assert_eq!(two.stateful_sets[1].spec.replicas, Some(3));
}

#[test]
fn budgets_only_protect_shards_with_two_or_more_replicas() {
    let (_, single) = plan(&view("items", 2, 1), &PodSettings::default()).expect("plans");
    assert!(
        single.disruption_budgets.is_empty(),
        "a single replica must not block node drains"
    );
    let (_, double) = plan(&view("items", 2, 2), &PodSettings::default()).expect("plans");
    assert_eq!(double.disruption_budgets.len(), 2);
    let spec = double.disruption_budgets[0].spec.as_ref().expect("spec");
    assert_eq!(
        spec.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
}

#[test]
fn pods_are_restricted_and_owned_by_the_view() {
    let (_, objects) = plan(&view("items", 1, 1), &PodSettings::default()).expect("plans");
    let set = &objects.stateful_sets[0];
    let owner = &set.metadata.owner_references.as_ref().expect("owners")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("MaterializedView", "uid-1", Some(true))
    );
    let pod = set.spec.template.spec.as_ref().expect("pod");
    let sc = pod.containers[0]
        .security_context
        .as_ref()
        .expect("security context");
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()])
    );
    let readiness = pod.containers[0]
        .readiness_probe
        .as_ref()
        .expect("readiness probe");
    assert_eq!(
        readiness
            .http_get
            .as_ref()
            .and_then(|h| h.path.clone())
            .as_deref(),
        Some("/readyz")
    );
    // One slow answer must not take a shard's only replica out of routes.
    assert!(readiness.failure_threshold.unwrap_or(3) >= 3);
    assert!(readiness.timeout_seconds.unwrap_or(1) >= 2);
}

#[test]
fn the_config_map_holds_a_view_the_projector_can_compile() {
    let (rev, objects) = plan(&view("items", 2, 1), &PodSettings::default()).expect("plans");
    let text = &objects.config_map.data.as_ref().expect("data")["view.yaml"];
    let back: MaterializedView = serde_yaml_ng::from_str(text).expect("parses");
    assert_eq!(back.spec, view("items", 2, 1).spec);
    assert_eq!(matview_engine::revision(&back.spec), rev);
}

#[test]
fn long_view_names_are_shortened_to_fit() {
    let name = "a".repeat(63);
    let (rev, objects) = plan(&view(&name, 12, 1), &PodSettings::default()).expect("plans");
    for set in &objects.stateful_sets {
        let n = set.metadata.name.as_deref().expect("name");
        assert!(n.len() <= 52, "{n}");
        assert!(n.contains(&rev));
    }
    assert_eq!(object_name("shop-", "abc", "-s1"), "shop-abc-s1");
}

#[test]
fn invalid_views_are_not_planned() {
    let mut bad = view("items", 1, 1);
    bad.spec.classify.field = "missing".into();
    let err = plan(&bad, &PodSettings::default()).expect_err("invalid");
    let chain = matview_api::errors::chain(&err);
    assert!(chain.contains("spec.classify.field"), "{chain}");
}

#[test]
fn a_network_policy_admits_only_the_gateway_and_operator_when_asked() {
    let without = plan(&view("items", 2, 1), &PodSettings::default()).expect("plans");
    assert!(without.1.network_policy.is_none());
    let settings = PodSettings {
        network_access: Some(super::network::NetworkAccess {
            namespace: "matview-system".into(),
            metrics_namespaces: vec!["monitoring".into()],
        }),
        ..PodSettings::default()
    };
    let (rev, objects) = plan(&view("items", 2, 1), &settings).expect("plans");
    let policy = objects.network_policy.expect("a policy");
    let spec = serde_json::to_value(policy.spec.expect("spec")).expect("json");
    assert_eq!(
        spec["podSelector"]["matchLabels"],
        serde_json::json!({"matview.dev/view": "items", "matview.dev/revision": rev})
    );
    assert_eq!(spec["policyTypes"], serde_json::json!(["Ingress"]));
    let rule = &spec["ingress"][0];
    assert_eq!(
        rule["ports"],
        serde_json::json!([{"port": 8080, "protocol": "TCP"}])
    );
    let components = &rule["from"][0];
    assert_eq!(
        components["namespaceSelector"]["matchExpressions"][0]["values"],
        serde_json::json!(["matview-system"])
    );
    assert_eq!(
        components["podSelector"]["matchExpressions"][0]["values"],
        serde_json::json!(["gateway", "operator"])
    );
    // Prometheus' namespace: any pod there, but only that port.
    let metrics = &rule["from"][1];
    assert_eq!(
        metrics["namespaceSelector"]["matchExpressions"][0]["values"],
        serde_json::json!(["monitoring"])
    );
    assert!(metrics.get("podSelector").is_none());
    assert_eq!(rule["from"].as_array().map(Vec::len), Some(2));
    // Owned by the view, like the revision's other objects.
    assert_eq!(
        policy.metadata.owner_references.as_ref().map(Vec::len),
        Some(1)
    );
}

/// Kubernetes' name rules, written from its documentation (not from the
/// operator's code): a DNS-1123 label, a DNS-1035 label (a letter first),
/// a DNS-1123 subdomain, and a label value.
mod kubernetes_names {
    fn alnum(b: u8) -> bool {
        b.is_ascii_lowercase() || b.is_ascii_digit()
    }

    pub fn dns1123_label(s: &str) -> bool {
        let b = s.as_bytes();
        (1..=63).contains(&b.len())
            && b.iter().all(|&c| alnum(c) || c == b'-')
            && alnum(b[0])
            && alnum(b[b.len() - 1])
    }

    pub fn dns1035_label(s: &str) -> bool {
        dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
    }

    pub fn dns1123_subdomain(s: &str) -> bool {
        s.len() <= 253 && s.split('.').all(dns1123_label)
    }

    pub fn label_value(s: &str) -> bool {
        let b = s.as_bytes();
        let ok = |c: u8| c.is_ascii_alphanumeric();
        b.is_empty()
            || (b.len() <= 63
                && b.iter().all(|&c| ok(c) || matches!(c, b'-' | b'_' | b'.'))
                && ok(b[0])
                && ok(b[b.len() - 1]))
    }
}

/// Every name the operator derives for a view, checked against the rule
/// of its kind; `Err` names the first that breaks it.
fn derived_names_problem(objects: &DesiredObjects, replicas: i32) -> Result<(), String> {
    use kubernetes_names::*;
    let check = |ok: bool, what: &str, name: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!("{what} {name:?}"))
        }
    };
    let name = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        m.name.clone().unwrap_or_default()
    };
    let labels_ok = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        m.labels.iter().flatten().all(|(_, v)| label_value(v))
    };
    let service = name(&objects.service.metadata);
    check(dns1035_label(&service), "Service", &service)?;
    check(
        labels_ok(&objects.service.metadata),
        "Service labels of",
        &service,
    )?;
    let config = name(&objects.config_map.metadata);
    check(dns1123_subdomain(&config), "ConfigMap", &config)?;
    for pdb in &objects.disruption_budgets {
        let n = name(&pdb.metadata);
        check(dns1123_subdomain(&n), "PodDisruptionBudget", &n)?;
    }
    if let Some(policy) = &objects.network_policy {
        let n = name(&policy.metadata);
        check(dns1123_subdomain(&n), "NetworkPolicy", &n)?;
    }
    for set in &objects.stateful_sets {
        let n = name(&set.metadata);
        check(dns1123_label(&n), "StatefulSet", &n)?;
        check(labels_ok(&set.metadata), "StatefulSet labels of", &n)?;
        // The pods' names and the controller-revision-hash label
        // (<set>-<10 characters>) Kubernetes derives from it.
        let last_pod = format!("{n}-{}", replicas - 1);
        check(dns1123_label(&last_pod), "pod", &last_pod)?;
        let revision_label = format!("{n}-{}", "7d9f8c6b5a");
        check(
            label_value(&revision_label),
            "controller-revision-hash",
            &revision_label,
        )?;
        let template = set.spec.template.metadata.as_ref();
        check(
            template.is_some_and(labels_ok),
            "pod template labels of",
            &n,
        )?;
    }
    Ok(())
}

fn with_network_policy() -> PodSettings {
    PodSettings {
        network_access: Some(super::network::NetworkAccess {
            namespace: "matview-system".into(),
            metrics_namespaces: vec!["monitoring".into()],
        }),
        ..PodSettings::default()
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// Any name the view's validation accepts derives only valid names.
    #[test]
    fn every_name_derived_from_an_accepted_view_is_valid_for_its_kind(
        name in "[a-z]([-a-z0-9]{0,61}[a-z0-9])?",
        shards in 1i32..=256,
        replicas in 1i32..=16,
    ) {
        let (_, objects) = plan(&view(&name, shards, replicas), &with_network_policy())
            .map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{name}: {e}")))?;
        let verdict = derived_names_problem(&objects, replicas);
        proptest::prop_assert!(verdict.is_ok(), "{}: {:?}", name, verdict);
    }

    /// Any name Kubernetes accepts for the view object itself (a DNS-1123
    /// subdomain: dots, a digit first) is refused naming metadata.name, or
    /// derives only valid names.
    #[test]
    fn a_view_name_is_refused_or_derives_only_valid_names(
        name in "[a-z0-9]([-a-z0-9.]{0,70}[a-z0-9])?",
        replicas in 1i32..=16,
    ) {
        proptest::prop_assume!(kubernetes_names::dns1123_subdomain(&name));
        match plan(&view(&name, 2, replicas), &with_network_policy()) {
            Ok((_, objects)) => {
                let verdict = derived_names_problem(&objects, replicas);
                proptest::prop_assert!(verdict.is_ok(), "{}: {:?}", name, verdict);
            }
            Err(e) => {
                let chain = matview_api::errors::chain(&e);
                proptest::prop_assert!(chain.contains("metadata.name"), "{}: {}", name, chain);
            }
        }
    }
}

#[test]
fn a_view_named_with_dots_is_refused_before_any_object_is_planned() {
    let error = plan(&view("shop.items", 2, 2), &PodSettings::default()).expect_err("refused");
    let chain = matview_api::errors::chain(&error);
    assert!(
        chain.contains("metadata.name") && chain.contains("no dots"),
        "{chain}"
    );
}

#[test]
fn a_secured_registry_is_a_read_only_volume_and_a_flag_and_keeps_the_revision() {
    let plain = view("items", 1, 1);
    let mut secured = plain.clone();
    secured.spec.source.format = matview_crd::EventFormat::Avro;
    let registry = |config_from| matview_crd::SchemaRegistry {
        url: "https://registry.kafka:8081".into(),
        config_from,
    };
    secured.spec.source.schema_registry = Some(registry(None));
    let (rev_without, _) = plan(&secured, &PodSettings::default()).expect("plans");
    secured.spec.source.schema_registry = Some(registry(Some(matview_crd::ConfigFrom {
        secret_name: Some("registry-credentials".into()),
        config_map_name: None,
    })));
    let (rev_with, objects) = plan(&secured, &PodSettings::default()).expect("plans");
    assert_eq!(rev_without, rev_with, "credentials do not change content");
    let pod = objects.stateful_sets[0]
        .spec
        .template
        .spec
        .clone()
        .expect("pod");
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "schema-registry")
        .expect("a schema-registry volume");
    let secret = volume.secret.as_ref().expect("from the Secret");
    assert_eq!(secret.secret_name.as_deref(), Some("registry-credentials"));
    let container = &pod.containers[0];
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "schema-registry")
        .expect("mounted");
    assert_eq!(mount.read_only, Some(true));
    let args = container.args.clone().unwrap_or_default();
    let at = args
        .iter()
        .position(|a| a == "--schema-registry-config-dir")
        .expect("the flag");
    assert_eq!(args.get(at + 1), Some(&mount.mount_path));
    let (_, plain_objects) = plan(&plain, &PodSettings::default()).expect("plans");
    let plain_pod = plain_objects.stateful_sets[0]
        .spec
        .template
        .spec
        .clone()
        .expect("pod");
    assert!(
        !plain_pod.containers[0]
            .args
            .iter()
            .flatten()
            .any(|a| a.contains("schema-registry"))
    );
}
