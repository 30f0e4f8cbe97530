//! The operator's desired objects on a real API server: every object is
//! accepted by server-side apply, owned by the view, and scaling replicas
//! updates the same StatefulSets in place.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use matview::crd::MaterializedView;
use matview::operator::desired::{DesiredObjects, LABEL_VIEW, PodSettings};
use matview::operator::plan;

use crate::support::kube::{TestNamespace, admin_client, install_matview_crd};
use crate::support::{TestEnv, run_ok};

const FIELD_MANAGER: &str = "matview-operator";

async fn apply_all(client: &kube::Client, ns: &str, objects: &DesiredObjects) {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let name = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        m.name.clone().expect("named")
    };
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .patch(
            &name(&objects.config_map.metadata),
            &params,
            &Patch::Apply(&objects.config_map),
        )
        .await
        .expect("ConfigMap applies");
    Api::<Service>::namespaced(client.clone(), ns)
        .patch(
            &name(&objects.service.metadata),
            &params,
            &Patch::Apply(&objects.service),
        )
        .await
        .expect("Service applies");
    for set in &objects.stateful_sets {
        Api::<StatefulSet>::namespaced(client.clone(), ns)
            .patch(&name(&set.metadata), &params, &Patch::Apply(set))
            .await
            .expect("StatefulSet applies");
    }
    for pdb in &objects.disruption_budgets {
        Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
            .patch(&name(&pdb.metadata), &params, &Patch::Apply(pdb))
            .await
            .expect("PodDisruptionBudget applies");
    }
}

#[tokio::test]
async fn desired_objects_apply_and_scaling_updates_in_place() {
    let env = TestEnv::get();
    let client = admin_client(env).await;
    install_matview_crd(&client).await;
    let ns = TestNamespace::create(&client, "operator-objects").await;

    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/items-by-price.yaml"
    ))
    .expect("example");
    let mut view: MaterializedView = serde_yaml_ng::from_str(&text).expect("parses");
    view.metadata.namespace = Some(ns.name.clone());
    let views: Api<MaterializedView> = Api::namespaced(client.clone(), &ns.name);
    let created = views
        .create(&PostParams::default(), &view)
        .await
        .expect("view created");
    let uid = created.metadata.uid.clone().expect("uid");

    let (revision, objects) = plan(&created, &PodSettings::default()).expect("plans");
    apply_all(&client, &ns.name, &objects).await;

    let sets = Api::<StatefulSet>::namespaced(client.clone(), &ns.name)
        .list(&ListParams::default().labels(&format!("{LABEL_VIEW}=items-by-price")))
        .await
        .expect("list");
    assert_eq!(sets.items.len(), 2, "one StatefulSet per shard");
    for set in &sets.items {
        assert_eq!(set.spec.replicas, Some(2));
        let owner = &set.metadata.owner_references.as_ref().expect("owned")[0];
        assert_eq!(owner.uid, uid);
        let managers: Vec<_> = set
            .metadata
            .managed_fields
            .iter()
            .flatten()
            // The StatefulSet controller writes status; the spec has one owner.
            .filter(|m| m.subresource.as_deref() != Some("status"))
            .filter_map(|m| m.manager.clone())
            .collect();
        assert_eq!(managers, [FIELD_MANAGER]);
        let pod = set.spec.template.spec.as_ref().expect("pod");
        assert_eq!(
            pod.security_context
                .as_ref()
                .and_then(|s| s.run_as_non_root),
            Some(true)
        );
    }
    let pdbs = Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns.name)
        .list(&ListParams::default().labels(&format!("{LABEL_VIEW}=items-by-price")))
        .await
        .expect("list");
    assert_eq!(pdbs.items.len(), 2);
    let service = Api::<Service>::namespaced(client.clone(), &ns.name)
        .get(&format!("items-by-price-{revision}"))
        .await
        .expect("service");
    assert_eq!(
        service.spec.and_then(|s| s.cluster_ip).as_deref(),
        Some("None")
    );

    // Scale: same revision, same objects, replicas updated in place.
    let mut scaled = created.clone();
    scaled.spec.replicas_per_shard = 3;
    let (revision2, objects2) = plan(&scaled, &PodSettings::default()).expect("plans");
    assert_eq!(revision2, revision);
    apply_all(&client, &ns.name, &objects2).await;
    let out = run_ok(env.kubectl().args([
        "get",
        "statefulsets",
        "-n",
        &ns.name,
        "-l",
        &format!("{LABEL_VIEW}=items-by-price"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.spec.replicas};{end}",
    ]));
    assert_eq!(
        out,
        format!("items-by-price-{revision}-s0=3;items-by-price-{revision}-s1=3;")
    );
}
