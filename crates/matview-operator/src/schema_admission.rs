//! Admission knows the schema: a view reading Avro or Protobuf has its
//! paths checked against the latest schema of its topic's value subject
//! (`<topic>-value`, the default subject naming of Confluent serializers)
//! before any workload is made. Paths that no message can satisfy refuse
//! the spec, naming the field; a registry that cannot answer is said in an
//! Event and does not hold the view (its projectors report it in status).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use matview_api::view::ValidatedView;
use matview_crd::{ConditionType, ConfigFrom, EventFormat, MaterializedView};
use matview_formats::Shape;
use matview_registry::{Fetched, RegistryAccess, RegistryClient, check};

use super::context::{Context, publish};

/// What admission found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum SchemaAdmission {
    /// JSON, or checked before for this generation.
    NothingToCheck,
    Fits,
    /// The paths that no message of the schema can satisfy, said in full.
    Refused(String),
    /// Why no check was possible; the view goes on.
    Unchecked(String),
}

/// Whether status already describes this generation as accepted: its spec
/// was admitted (and built) before, so a schema that moved on since (or an
/// operator restarted) does not refuse a view that serves.
pub(super) fn admitted_before(view: &MaterializedView) -> bool {
    let Some(status) = view.status.as_ref() else {
        return false;
    };
    let refused = status
        .conditions
        .iter()
        .any(|c| c.type_ == ConditionType::Ready && c.reason == "InvalidSpec");
    status.observed_generation.is_some()
        && status.observed_generation == view.meta().generation
        && !refused
}

/// The check of a spec not admitted before, once per generation that fits.
pub(super) async fn admit(
    ctx: &Context,
    view: &MaterializedView,
    validated: &ValidatedView,
) -> SchemaAdmission {
    let Some(registry) = view.spec.source.schema_registry.as_ref() else {
        return SchemaAdmission::NothingToCheck;
    };
    if view.spec.source.format == EventFormat::Json {
        return SchemaAdmission::NothingToCheck;
    }
    let uid = view.uid().unwrap_or_default();
    let generation = view.meta().generation;
    if ctx.memo.schema_fitted(&uid, generation) || admitted_before(view) {
        return SchemaAdmission::NothingToCheck;
    }
    let outcome = match access(ctx, view, registry.config_from.as_ref()).await {
        Ok(access) => check_against(&registry.url, &access, validated).await,
        Err(said) => SchemaAdmission::Unchecked(said),
    };
    match &outcome {
        SchemaAdmission::Fits => ctx.memo.schema_fits(&uid, generation),
        SchemaAdmission::Unchecked(why) if ctx.memo.schema_warn(&uid, generation) => {
            let note = format!("could not check the view's paths against the schema: {why}");
            publish(ctx, view, EventType::Warning, "SchemaNotChecked", note);
        }
        _ => {}
    }
    outcome
}

async fn check_against(
    url: &str,
    access: &RegistryAccess,
    validated: &ValidatedView,
) -> SchemaAdmission {
    let subject = format!("{}-value", validated.topic);
    let client = match RegistryClient::new(url, access) {
        Ok(client) => client,
        Err(e) => return SchemaAdmission::Unchecked(e.to_string()),
    };
    let latest = match client.latest(&subject).await {
        Ok(Fetched::Found(latest)) => latest,
        Ok(Fetched::Missing(said)) => {
            return SchemaAdmission::Unchecked(format!(
                "the registry has no subject {subject} yet ({said})"
            ));
        }
        Err(e) => return SchemaAdmission::Unchecked(e.to_string()),
    };
    let shape = match Shape::of(&latest) {
        Ok(shape) => shape,
        Err(e) => return SchemaAdmission::Unchecked(format!("{subject}: {e}")),
    };
    let which = format!("{subject}, schema id {}", latest.id);
    let issues = check::check_paths(&validated.compiled, &shape, &which);
    if issues.is_empty() {
        return SchemaAdmission::Fits;
    }
    let said: Vec<String> = issues.iter().map(ToString::to_string).collect();
    SchemaAdmission::Refused(format!(
        "the view's paths do not fit the topic's schema: {}",
        said.join("; ")
    ))
}

/// The registry's settings from the Secret or ConfigMap the view names.
async fn access(
    ctx: &Context,
    view: &MaterializedView,
    from: Option<&ConfigFrom>,
) -> Result<RegistryAccess, String> {
    let ns = view.namespace().unwrap_or_default();
    let not_read = |kind: &str, name: &str, e: kube::Error| {
        format!("cannot read {kind} {name} named by spec.source.schemaRegistry.configFrom: {e}")
    };
    let entries: BTreeMap<String, Vec<u8>> = match from {
        Some(ConfigFrom {
            secret_name: Some(name),
            ..
        }) => {
            let secret = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
                .get(name)
                .await
                .map_err(|e| not_read("Secret", name, e))?;
            let data = secret.data.unwrap_or_default().into_iter();
            data.map(|(k, v)| (k, v.0))
                .chain(
                    secret
                        .string_data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes())),
                )
                .collect()
        }
        Some(ConfigFrom {
            config_map_name: Some(name),
            ..
        }) => {
            let map = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
                .get(name)
                .await
                .map_err(|e| not_read("ConfigMap", name, e))?;
            map.data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect()
        }
        _ => BTreeMap::new(),
    };
    RegistryAccess::from_entries(&entries).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use matview_crd::{Condition, ConditionStatus, MaterializedViewStatus};

    fn view(generation: i64, status: Option<(i64, &str)>) -> MaterializedView {
        let text = include_str!("../../../examples/items-by-price-avro.yaml");
        let mut view: MaterializedView = serde_yaml_ng::from_str(text).expect("example");
        view.metadata.generation = Some(generation);
        view.status = status.map(|(observed, reason)| MaterializedViewStatus {
            observed_generation: Some(observed),
            conditions: vec![Condition {
                type_: ConditionType::Ready,
                status: ConditionStatus::True,
                reason: reason.into(),
                message: String::new(),
                observed_generation: Some(observed),
                last_transition_time: None,
            }],
            ..Default::default()
        });
        view
    }

    #[test]
    fn a_spec_is_checked_until_status_says_it_was_accepted() {
        assert!(!admitted_before(&view(1, None)), "new");
        assert!(!admitted_before(&view(2, Some((1, "CaughtUp")))), "changed");
        assert!(
            !admitted_before(&view(2, Some((2, "InvalidSpec")))),
            "refused"
        );
        assert!(admitted_before(&view(2, Some((2, "CaughtUp")))), "accepted");
    }
}
