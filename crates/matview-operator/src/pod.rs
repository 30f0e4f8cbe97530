//! A projector pod, in named parts: its volumes, its command line and
//! environment, its probes, its restricted security, assembled by
//! [`pod_template`]. Pure functions of the view and the operator's settings.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec,
    Probe, SeccompProfile, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::network::NetworkAccess;
use matview_api::names::HTTP_PORT;
use matview_crd::{ConfigFrom, MaterializedView};

const VIEW_FILE: &str = "/etc/matview/view/view.yaml";
const KAFKA_DIR: &str = "/etc/matview/kafka";
const SCHEMA_REGISTRY_DIR: &str = "/etc/matview/schema-registry";
const DATA_DIR: &str = "/var/lib/matview";
/// The image's non-root user and group.
const NON_ROOT: i64 = 65532;

/// How projector pods are run (operator settings, not part of a view).
#[derive(Debug, Clone)]
pub struct PodSettings {
    pub image: String,
    pub image_pull_policy: String,
    /// The operator's `--kafka-bootstrap-override`, passed on to projectors.
    pub bootstrap_override: Option<String>,
    /// When set, each revision gets a NetworkPolicy admitting only these.
    pub network_access: Option<NetworkAccess>,
}

impl Default for PodSettings {
    fn default() -> Self {
        PodSettings {
            image: format!("ghcr.io/matview/matview:{}", matview_api::version::VERSION),
            image_pull_policy: "IfNotPresent".into(),
            bootstrap_override: None,
            network_access: None,
        }
    }
}

/// The pod template of one shard's StatefulSet.
pub fn pod_template(
    view: &MaterializedView,
    config_name: &str,
    shard: u32,
    labels: BTreeMap<String, String>,
    settings: &PodSettings,
) -> PodTemplateSpec {
    let projector = view.spec.projector.clone().unwrap_or_default();
    let kafka_config = view.spec.source.kafka.config_from.as_ref();
    let registry_config = view
        .spec
        .source
        .schema_registry
        .as_ref()
        .and_then(|r| r.config_from.as_ref());
    let (volumes, mounts) = volumes(config_name, kafka_config, registry_config);
    let container = Container {
        name: "projector".into(),
        image: Some(settings.image.clone()),
        image_pull_policy: Some(settings.image_pull_policy.clone()),
        args: Some(projector_args(
            shard,
            kafka_config.is_some(),
            registry_config.is_some(),
        )),
        env: Some(projector_env(settings)),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: HTTP_PORT,
            ..Default::default()
        }]),
        // Three misses in a row: one slow probe must not take a shard's only
        // replica out of the gateway's routes.
        readiness_probe: Some(probe("/readyz", 3)),
        liveness_probe: Some(probe("/healthz", 6)),
        resources: projector.resources,
        // A projector that exits says why on stderr; status quotes it.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(mounts),
        security_context: Some(restricted_container()),
        ..Default::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            volumes: Some(volumes),
            security_context: Some(restricted_pod()),
            node_selector: projector.node_selector,
            tolerations: projector.tolerations,
            affinity: projector.affinity,
            priority_class_name: projector.priority_class_name,
            termination_grace_period_seconds: Some(30),
            ..Default::default()
        }),
    }
}

/// An HTTP probe of the projector's API.
fn probe(path: &str, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(HTTP_PORT),
            ..Default::default()
        }),
        period_seconds: Some(5),
        // A probe answered late on a busy node is not a failed projector.
        timeout_seconds: Some(2),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

/// The view's ConfigMap (read-only), the data volume (the StatefulSet's
/// claim), a scratch /tmp, and the Kafka client properties and the schema
/// registry's settings when the view names a Secret or ConfigMap of them.
fn volumes(
    config_name: &str,
    kafka_config: Option<&ConfigFrom>,
    registry_config: Option<&ConfigFrom>,
) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    };
    let mut volumes = vec![
        Volume {
            name: "view".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_name.into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ];
    let mut mounts = vec![
        mount("view", "/etc/matview/view", true),
        mount("data", DATA_DIR, false),
        mount("tmp", "/tmp", false),
    ];
    if let Some(config_from) = kafka_config {
        volumes.push(config_volume("kafka", config_from));
        mounts.push(mount("kafka", KAFKA_DIR, true));
    }
    if let Some(config_from) = registry_config {
        volumes.push(config_volume("schema-registry", config_from));
        mounts.push(mount("schema-registry", SCHEMA_REGISTRY_DIR, true));
    }
    (volumes, mounts)
}

/// A Secret or ConfigMap as a volume: each key one file (a librdkafka
/// property, a registry setting).
fn config_volume(name: &str, config_from: &ConfigFrom) -> Volume {
    let mut volume = Volume {
        name: name.into(),
        ..Default::default()
    };
    match (&config_from.secret_name, &config_from.config_map_name) {
        (Some(secret), _) => {
            volume.secret = Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                ..Default::default()
            });
        }
        (None, Some(map)) => {
            volume.config_map = Some(ConfigMapVolumeSource {
                name: map.clone(),
                ..Default::default()
            });
        }
        // The schema requires one of the two; keep the pod valid anyway.
        (None, None) => volume.empty_dir = Some(EmptyDirVolumeSource::default()),
    }
    volume
}

/// `matview projector` with the shard, the mounted view and data, and the
/// mounted Kafka properties and registry settings when there are some.
fn projector_args(shard: u32, kafka_properties: bool, registry_settings: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "projector",
        "--view",
        VIEW_FILE,
        "--shard",
        &shard.to_string(),
        "--data-dir",
        DATA_DIR,
        "--listen",
        &format!("0.0.0.0:{HTTP_PORT}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if kafka_properties {
        args.extend(["--kafka-properties-dir".to_string(), KAFKA_DIR.to_string()]);
    }
    if registry_settings {
        args.extend([
            "--schema-registry-config-dir".to_string(),
            SCHEMA_REGISTRY_DIR.to_string(),
        ]);
    }
    args
}

/// The pod's name (for logs and the projector's identity), JSON logs, and
/// the operator's bootstrap override when it has one.
fn projector_env(settings: &PodSettings) -> Vec<EnvVar> {
    let pod_name = EnvVar {
        name: "MATVIEW_POD_NAME".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.name".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let value = |name: &str, value: &str| EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    };
    // The StatefulSet's pod index: replica 0 of a shard writes its dead letters.
    let replica = EnvVar {
        name: "MATVIEW_REPLICA".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.labels['apps.kubernetes.io/pod-index']".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    [pod_name, replica, value("MATVIEW_LOG_FORMAT", "json")]
        .into_iter()
        .chain(
            settings
                .bootstrap_override
                .as_deref()
                .map(|servers| value("MATVIEW_BOOTSTRAP_SERVERS", servers)),
        )
        .collect()
}

/// The restricted Pod Security Standard, for the container.
fn restricted_container() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The restricted Pod Security Standard, for the pod: the image's non-root
/// user, its group owning the data volume, the runtime's seccomp profile.
fn restricted_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(NON_ROOT),
        run_as_group: Some(NON_ROOT),
        fs_group: Some(NON_ROOT),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}
