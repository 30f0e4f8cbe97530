//! What the process kubelet's one node refuses, in the words of the real
//! scheduler and kubelet: a pod whose node selector or resource requests the
//! node cannot meet stays Pending and unschedulable; an image from a
//! registry under the reserved `.invalid` domain cannot be pulled.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use matview::engine::quantity::parse_quantity;

/// What the node offers (also reported in its status).
pub const ALLOCATABLE: [(&str, &str); 3] = [("cpu", "64"), ("memory", "256Gi"), ("pods", "500")];

const NO_PREEMPTION: &str =
    "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";

/// The scheduler's message for a pod whose claims cannot be bound.
pub const UNBOUND_CLAIMS: &str = "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. \
     preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";

/// The scheduler's message when `pod` cannot go to a node labelled `labels`.
pub fn unschedulable(pod: &Pod, labels: &BTreeMap<String, String>) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let selector_fits = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    if !selector_fits {
        return Some(format!(
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. {NO_PREEMPTION}"
        ));
    }
    let mut short = Vec::new();
    for (resource, offered) in ALLOCATABLE {
        let requested = spec
            .containers
            .iter()
            .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get(resource))
            .filter_map(|q| parse_quantity(&q.0))
            .max();
        if let (Some(requested), Some(offered)) = (requested, parse_quantity(offered))
            && requested > offered
        {
            short.push(format!("1 Insufficient {resource}"));
        }
    }
    (!short.is_empty()).then(|| {
        format!(
            "0/1 nodes are available: {}. {NO_PREEMPTION}",
            short.join(", ")
        )
    })
}

/// The kubelet's message when `image` cannot be pulled.
pub fn unpullable(image: &str) -> Option<String> {
    let host = image.split('/').next()?;
    let host_name = host.split(':').next()?;
    (image.contains('/') && host_name.ends_with(".invalid")).then(|| {
        format!(
            "Back-off pulling image \"{image}\": ErrImagePull: failed to pull and unpack image \"{image}\": \
             failed to resolve reference \"{image}\": dial tcp: lookup {host_name}: no such host"
        )
    })
}
