//! The operator: turns each MaterializedView into projector workloads.
//!
//! This part builds the desired objects of a revision as pure functions
//! ([`desired::desired_objects`]); `matview render` prints them.

pub mod caches;
pub mod comparisons;
pub mod context;
pub mod controller;
pub mod desired;
pub mod diagnosis;
pub mod history;
pub mod k8s;
pub mod kafka;
pub mod kafka_connection;
pub mod leader;
pub mod metrics;
pub mod network;
mod objects;
pub mod pacing;
pub mod pod;
pub mod projectors;
pub mod rebuild_history;
mod reconcile;
pub mod refusal;
pub mod rollout;
pub mod run;
mod schema_admission;
pub mod status;
pub mod trouble_watch;

use kube::Resource;
use serde::Serialize;

use desired::{DesiredObjects, PodSettings, desired_objects};
use matview_api::view::{ValidatedView, ViewError};
use matview_crd::MaterializedView;

/// Why a view cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Invalid(#[from] ViewError),
    #[error("cannot render YAML")]
    Yaml(#[from] serde_yaml_ng::Error),
}

/// Validates a view and builds the objects of its current revision.
pub fn plan(
    view: &MaterializedView,
    settings: &PodSettings,
) -> Result<(String, DesiredObjects), RenderError> {
    let validated = ValidatedView::new(view)?;
    let objects = desired_objects(view, &validated.revision, settings);
    Ok((validated.revision, objects))
}

/// One object as a YAML document, with the apiVersion and kind of its type.
fn document<K>(object: &K) -> Result<String, RenderError>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let mut value = serde_yaml_ng::to_value(object)?;
    if let serde_yaml_ng::Value::Mapping(map) = &mut value {
        map.insert("apiVersion".into(), K::api_version(&()).as_ref().into());
        map.insert("kind".into(), K::kind(&()).as_ref().into());
    }
    Ok(serde_yaml_ng::to_string(&value)?)
}

/// The objects as a multi-document YAML stream, in apply order.
pub fn render(objects: &DesiredObjects) -> Result<String, RenderError> {
    let mut docs = vec![document(&objects.config_map)?, document(&objects.service)?];
    for set in &objects.stateful_sets {
        docs.push(document(set)?);
    }
    for pdb in &objects.disruption_budgets {
        docs.push(document(pdb)?);
    }
    if let Some(policy) = &objects.network_policy {
        docs.push(document(policy)?);
    }
    Ok(docs.join("---\n"))
}

#[cfg(test)]
mod tests;
