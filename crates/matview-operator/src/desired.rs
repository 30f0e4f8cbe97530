//! The objects a view needs, as pure functions of the view and its revision:
//! a ConfigMap with the view, a headless Service, one StatefulSet and one
//! PodDisruptionBudget per shard. No Kubernetes client is involved.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, PersistentVolumeClaimSpec, Service, ServicePort, ServiceSpec,
    VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::network::projector_ingress;
pub use super::pod::PodSettings;
use super::pod::pod_template;
use matview_crd::MaterializedView;

pub use matview_api::names::{HTTP_PORT, LABEL_REVISION, LABEL_SHARD, LABEL_VIEW};
/// Kubernetes adds "-<ordinal>" to pod names and puts the StatefulSet name in
/// a 63-character label; 52 leaves room for both.
const MAX_NAME: usize = 52;

/// Everything one revision of a view needs.
#[derive(Debug, Clone)]
pub struct DesiredObjects {
    pub config_map: ConfigMap,
    pub service: Service,
    pub stateful_sets: Vec<StatefulSet>,
    pub disruption_budgets: Vec<PodDisruptionBudget>,
    pub network_policy: Option<NetworkPolicy>,
}

/// A name of at most 52 characters: `<view>-<revision><suffix>`, the view part
/// shortened when needed (the revision keeps it unique).
pub fn object_name(view: &str, revision: &str, suffix: &str) -> String {
    let room = MAX_NAME.saturating_sub(revision.len() + suffix.len() + 1);
    let view: String = view.chars().take(room).collect();
    format!("{}-{revision}{suffix}", view.trim_end_matches('-'))
}

fn labels(view: &str, revision: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "matview-projector".into()),
        ("app.kubernetes.io/instance".into(), view.into()),
        ("app.kubernetes.io/component".into(), "projector".into()),
        ("app.kubernetes.io/part-of".into(), "matview".into()),
        (
            "app.kubernetes.io/managed-by".into(),
            "matview-operator".into(),
        ),
        (LABEL_VIEW.into(), view.into()),
        (LABEL_REVISION.into(), revision.into()),
    ])
}

fn owner(view: &MaterializedView) -> Vec<OwnerReference> {
    vec![OwnerReference {
        api_version: "matview.dev/v1alpha1".into(),
        kind: "MaterializedView".into(),
        name: view.metadata.name.clone().unwrap_or_default(),
        uid: view.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]
}

fn meta(view: &MaterializedView, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: view.metadata.namespace.clone(),
        labels: Some(labels),
        owner_references: Some(owner(view)),
        ..Default::default()
    }
}

/// The view as the projector reads it: only what it needs.
fn view_file(view: &MaterializedView) -> String {
    // How a revision goes live is the operator's business, not the
    // projector's: a promotion changes no object of any revision.
    let spec = matview_crd::MaterializedViewSpec {
        rollout: None,
        ..view.spec.clone()
    };
    let doc = serde_json::json!({
        "apiVersion": "matview.dev/v1alpha1",
        "kind": "MaterializedView",
        "metadata": {"name": view.metadata.name, "namespace": view.metadata.namespace},
        "spec": spec,
    });
    serde_yaml_ng::to_string(&doc).unwrap_or_default()
}

/// The revision's headless Service: stable pod DNS names for its StatefulSets.
fn headless_service(
    view: &MaterializedView,
    name: &str,
    revision: &str,
    labels: BTreeMap<String, String>,
) -> Service {
    let view_name = view.metadata.name.clone().unwrap_or_default();
    Service {
        metadata: meta(view, name.to_string(), labels),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(BTreeMap::from([
                (LABEL_VIEW.to_string(), view_name),
                (LABEL_REVISION.to_string(), revision.to_string()),
            ])),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: HTTP_PORT,
                target_port: Some(IntOrString::Int(HTTP_PORT)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn desired_objects(
    view: &MaterializedView,
    revision: &str,
    settings: &PodSettings,
) -> DesiredObjects {
    let name = view.metadata.name.clone().unwrap_or_default();
    let base = labels(&name, revision);
    let config_name = object_name(&name, revision, "");
    let config_map = ConfigMap {
        metadata: meta(view, config_name.clone(), base.clone()),
        data: Some(BTreeMap::from([("view.yaml".to_string(), view_file(view))])),
        ..Default::default()
    };
    let service = headless_service(view, &config_name, revision, base.clone());
    let shards = matview_api::view::shard_count(view.spec.shards);
    let replicas = view.spec.replicas_per_shard.max(1);
    let mut stateful_sets = Vec::new();
    let mut disruption_budgets = Vec::new();
    for shard in 0..shards {
        let mut shard_labels = base.clone();
        shard_labels.insert(LABEL_SHARD.into(), shard.to_string());
        let selector = LabelSelector {
            match_labels: Some(BTreeMap::from([
                (LABEL_VIEW.to_string(), name.clone()),
                (LABEL_REVISION.to_string(), revision.to_string()),
                (LABEL_SHARD.to_string(), shard.to_string()),
            ])),
            ..Default::default()
        };
        let set_name = object_name(&name, revision, &format!("-s{shard}"));
        stateful_sets.push(StatefulSet {
            metadata: meta(view, set_name.clone(), shard_labels.clone()),
            spec: StatefulSetSpec {
                replicas: Some(replicas),
                service_name: Some(config_name.clone()),
                selector: selector.clone(),
                pod_management_policy: Some("Parallel".into()),
                template: pod_template(view, &config_name, shard, shard_labels.clone(), settings),
                volume_claim_templates: Some(vec![volume_claim(view)]),
                ..Default::default()
            },
            ..Default::default()
        });
        // One replica: no budget, so that node drains are never blocked. Two
        // or more: an eviction may never take the last ready one.
        if replicas >= 2 {
            disruption_budgets.push(PodDisruptionBudget {
                metadata: meta(view, set_name, shard_labels),
                spec: Some(PodDisruptionBudgetSpec {
                    max_unavailable: Some(IntOrString::Int(1)),
                    selector: Some(selector),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
    let network_policy = settings
        .network_access
        .as_ref()
        .map(|access| NetworkPolicy {
            metadata: meta(view, config_name.clone(), base.clone()),
            spec: Some(projector_ingress(&name, revision, access)),
        });
    DesiredObjects {
        config_map,
        service,
        stateful_sets,
        disruption_budgets,
        network_policy,
    }
}

fn volume_claim(view: &MaterializedView) -> PersistentVolumeClaim {
    let projector = view.spec.projector.clone().unwrap_or_default();
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: projector.storage_class_name,
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(projector.storage_size.unwrap_or_else(|| "1Gi".into())),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}
