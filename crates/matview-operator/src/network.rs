//! Who may reach a revision's projectors: a NetworkPolicy (pure function of
//! the view and the operator's settings) that admits only the gateway and the
//! operator of this installation, and the namespaces allowed to scrape
//! metrics, to the projector port. Egress stays open: projectors talk to Kafka.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use matview_api::names::{HTTP_PORT, LABEL_REVISION, LABEL_VIEW};

/// Where the gateway and operator run, and who else may read `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAccess {
    /// Namespace of the matview installation (gateway and operator pods).
    pub namespace: String,
    /// Namespaces whose pods may reach the projector port (e.g. Prometheus').
    pub metrics_namespaces: Vec<String>,
}

const NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";

fn namespace_is(names: Vec<String>) -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: NAMESPACE_NAME.into(),
            operator: "In".into(),
            values: Some(names),
        }]),
        ..Default::default()
    }
}

/// The policy's spec for the pods of `view` at `revision`.
pub fn projector_ingress(view: &str, revision: &str, access: &NetworkAccess) -> NetworkPolicySpec {
    // The chart labels its gateway and operator pods with these.
    let matview_components = LabelSelector {
        match_labels: Some(BTreeMap::from([(
            "app.kubernetes.io/name".to_string(),
            "matview".to_string(),
        )])),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "app.kubernetes.io/component".into(),
            operator: "In".into(),
            values: Some(vec!["gateway".into(), "operator".into()]),
        }]),
    };
    let mut from = vec![NetworkPolicyPeer {
        namespace_selector: Some(namespace_is(vec![access.namespace.clone()])),
        pod_selector: Some(matview_components),
        ..Default::default()
    }];
    if !access.metrics_namespaces.is_empty() {
        from.push(NetworkPolicyPeer {
            namespace_selector: Some(namespace_is(access.metrics_namespaces.clone())),
            ..Default::default()
        });
    }
    NetworkPolicySpec {
        pod_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([
                (LABEL_VIEW.to_string(), view.to_string()),
                (LABEL_REVISION.to_string(), revision.to_string()),
            ])),
            ..Default::default()
        }),
        policy_types: Some(vec!["Ingress".into()]),
        ingress: Some(vec![NetworkPolicyIngressRule {
            from: Some(from),
            ports: Some(vec![NetworkPolicyPort {
                port: Some(IntOrString::Int(HTTP_PORT)),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
        }]),
        ..Default::default()
    }
}
