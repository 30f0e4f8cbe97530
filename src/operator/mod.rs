//! The operator: turns each MaterializedView into projector workloads.
//!
//! This part builds the desired objects of a revision as pure functions
//! ([`desired::desired_objects`]); `matview render` prints them.

pub mod controller;
pub mod desired;
pub mod kafka;
pub mod leader;
pub mod metrics;
pub mod objects;
pub mod run;
pub mod status;

use serde::Serialize;

use crate::crd::MaterializedView;
use crate::engine::{CompileError, compile, revision};
use desired::{DesiredObjects, PodSettings, desired_objects};

/// Why a view cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("view {name}: {source}")]
    Invalid { name: String, source: CompileError },
    #[error("cannot render YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

/// Validates a view and builds the objects of its current revision.
pub fn plan(
    view: &MaterializedView,
    settings: &PodSettings,
) -> Result<(String, DesiredObjects), RenderError> {
    compile(&view.spec).map_err(|source| RenderError::Invalid {
        name: view.metadata.name.clone().unwrap_or_default(),
        source,
    })?;
    let revision = revision(&view.spec);
    let objects = desired_objects(view, &revision, settings);
    Ok((revision, objects))
}

fn document<T: Serialize>(
    kind: &str,
    api_version: &str,
    object: &T,
) -> Result<String, RenderError> {
    let mut value = serde_yaml::to_value(object)?;
    if let serde_yaml::Value::Mapping(map) = &mut value {
        map.insert("apiVersion".into(), api_version.into());
        map.insert("kind".into(), kind.into());
    }
    Ok(serde_yaml::to_string(&value)?)
}

/// The objects as a multi-document YAML stream, in apply order.
pub fn render(objects: &DesiredObjects) -> Result<String, RenderError> {
    let mut docs = vec![
        document("ConfigMap", "v1", &objects.config_map)?,
        document("Service", "v1", &objects.service)?,
    ];
    for set in &objects.stateful_sets {
        docs.push(document("StatefulSet", "apps/v1", set)?);
    }
    for pdb in &objects.disruption_budgets {
        docs.push(document("PodDisruptionBudget", "policy/v1", pdb)?);
    }
    Ok(docs.join("---\n"))
}

#[cfg(test)]
mod tests;
