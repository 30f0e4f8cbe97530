//! A desired object the API server refuses (seen by a dry run before a
//! revision is created), told in terms of the view: which field of the
//! MaterializedView to fix, and what the API server said.

use kube::core::Status;

/// The view's field behind a field of an object the operator writes.
pub fn view_field(object_field: &str) -> &'static str {
    const TABLE: &[(&str, &str)] = &[
        ("spec.template.spec.containers", "spec.projector.resources"),
        (
            "spec.template.spec.tolerations",
            "spec.projector.tolerations",
        ),
        ("spec.template.spec.affinity", "spec.projector.affinity"),
        (
            "spec.template.spec.nodeSelector",
            "spec.projector.nodeSelector",
        ),
        (
            "spec.template.spec.priorityClassName",
            "spec.projector.priorityClassName",
        ),
        ("spec.replicas", "spec.replicasPerShard"),
        ("spec.minAvailable", "spec.replicasPerShard"),
        ("spec.maxUnavailable", "spec.replicasPerShard"),
        ("metadata", "metadata.name"),
    ];
    if object_field.starts_with("spec.volumeClaimTemplates") {
        return if object_field.contains("storageClassName") {
            "spec.projector.storageClassName"
        } else {
            "spec.projector.storageSize"
        };
    }
    TABLE
        .iter()
        .find(|(prefix, _)| object_field.starts_with(prefix))
        .map_or("spec.projector", |(_, field)| field)
}

/// Whether an API error is the server refusing the object itself (rather
/// than being unreachable or forbidding the operator).
pub fn is_refusal(status: &Status) -> bool {
    matches!(status.code, 400 | 422)
}

/// `<view field>: the API server refuses StatefulSet x: <cause>`, one line
/// per cause (the whole message when it gives none).
pub fn describe(kind: &str, name: &str, status: &Status) -> String {
    let causes = status
        .details
        .as_ref()
        .map(|d| d.causes.as_slice())
        .unwrap_or_default();
    if causes.is_empty() {
        return format!(
            "spec.projector: the API server refuses {kind} {name}: {}",
            status.message
        );
    }
    causes
        .iter()
        .map(|c| {
            format!(
                "{}: the API server refuses {kind} {name}: {}: {}",
                view_field(&c.field),
                c.field,
                c.message
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::response::{StatusCause, StatusDetails};

    #[test]
    fn object_fields_map_to_the_view_field_to_fix() {
        for (object, view) in [
            (
                "spec.template.spec.tolerations[0].operator",
                "spec.projector.tolerations",
            ),
            (
                "spec.template.spec.containers[0].resources.requests",
                "spec.projector.resources",
            ),
            (
                "spec.volumeClaimTemplates[0].spec.resources.requests[storage]",
                "spec.projector.storageSize",
            ),
            (
                "spec.volumeClaimTemplates[0].spec.storageClassName",
                "spec.projector.storageClassName",
            ),
            (
                "spec.template.spec.affinity.nodeAffinity",
                "spec.projector.affinity",
            ),
            ("metadata.labels", "metadata.name"),
            ("spec.template.spec.something", "spec.projector"),
        ] {
            assert_eq!(view_field(object), view, "{object}");
        }
    }

    #[test]
    fn a_refusal_names_the_view_field_and_keeps_the_server_words() {
        let status = Status {
            code: 422,
            message: "StatefulSet.apps \"x\" is invalid".into(),
            details: Some(StatusDetails {
                name: "x".into(),
                group: "apps".into(),
                kind: "StatefulSet".into(),
                uid: String::new(),
                causes: vec![StatusCause {
                    reason: "FieldValueNotSupported".into(),
                    message: "Unsupported value: \"Sometimes\"".into(),
                    field: "spec.template.spec.tolerations[0].operator".into(),
                }],
                retry_after_seconds: 0,
            }),
            ..Status::failure("", "Invalid")
        };
        assert!(is_refusal(&status));
        let text = describe("StatefulSet", "x", &status);
        assert!(
            text.starts_with("spec.projector.tolerations: the API server refuses StatefulSet x: ")
                && text.contains("Unsupported value"),
            "{text}"
        );
        assert!(!is_refusal(&Status {
            code: 403,
            ..status
        }));
    }
}
