//! A view's paths checked against the JSON form of its topic's schema:
//! a path to a field that does not exist, a numeric field that is text, an
//! exploded path that is not an array — each named, with the schema's own
//! fields, before any event is read. Pure.

use matview_crd::Envelope;
use matview_engine::compile::ValueKind;
use matview_engine::pointer::{FieldPointer, Scope};
use matview_engine::{CompiledView, SpecIssue};
use matview_formats::Shape;

/// Every path of `view` the values of `shape` cannot satisfy; `schema`
/// says which schema it is in messages (e.g. `orders-value version 3`).
pub fn check_paths(view: &CompiledView, shape: &Shape, schema: &str) -> Vec<SpecIssue> {
    let mut issues = Vec::new();
    let mut issue = |path: String, message: String| {
        issues.push(SpecIssue {
            path,
            message: format!("{message} (in {schema})"),
        });
    };
    // A Debezium event's paths address its row image, the `after` member.
    let event = match (view.envelope, shape) {
        (Envelope::Debezium, Shape::Record { fields, .. }) => {
            fields.get("after").unwrap_or(&Shape::Any)
        }
        (Envelope::Debezium, _) => &Shape::Any,
        _ => shape,
    };
    let element = match &view.explode {
        None => event,
        Some(explode) => match resolve(event, explode) {
            Ok(found) => match array_element(found) {
                Some(element) => element,
                None => {
                    issue(
                        "spec.records.explode".into(),
                        format!(
                            "{} is {}, not an array to explode",
                            explode.as_str(),
                            found.describe()
                        ),
                    );
                    &Shape::Any
                }
            },
            Err(miss) => {
                issue("spec.records.explode".into(), miss);
                &Shape::Any
            }
        },
    };
    let at = |pointer: &FieldPointer| match pointer.scope {
        Scope::Event => event,
        Scope::Element => element,
    };
    let identities = [
        ("spec.records.key", Some(&view.key)),
        ("spec.records.id", view.id.as_ref()),
    ];
    for (path, pointer) in identities {
        let Some(pointer) = pointer else { continue };
        match resolve(at(pointer), pointer) {
            Ok(found @ (Shape::Record { .. } | Shape::Map(_) | Shape::Array(_))) => issue(
                path.into(),
                format!(
                    "{} is {}; a key or id is a string or a number",
                    pointer.as_str(),
                    found.describe()
                ),
            ),
            Ok(_) => {}
            Err(miss) => issue(path.into(), miss),
        }
    }
    for field in &view.fields {
        let path = format!("spec.records.fields.{}", field.name);
        match resolve(at(&field.pointer), &field.pointer) {
            Ok(found) if !holds(found, field.kind) => issue(
                path,
                format!(
                    "{} is {}, but the view reads it as {}",
                    field.pointer.as_str(),
                    found.describe(),
                    field.kind.describe()
                ),
            ),
            Ok(_) => {}
            Err(miss) => issue(path, miss),
        }
    }
    issues
}

/// The shape `pointer` leads to, or why no value has it.
fn resolve<'s>(shape: &'s Shape, pointer: &FieldPointer) -> Result<&'s Shape, String> {
    let mut current = shape;
    for (depth, token) in pointer.tokens().iter().enumerate() {
        let so_far = || {
            let walked: Vec<&str> = pointer.tokens()[..depth]
                .iter()
                .map(String::as_str)
                .collect();
            format!("/{}", walked.join("/"))
        };
        current = step(current, token).ok_or_else(|| match current {
            Shape::Record { name, fields } => {
                let names: Vec<&str> = fields.keys().map(String::as_str).collect();
                format!(
                    "{}: {name} has no field {token:?} (its fields: {})",
                    pointer.as_str(),
                    names.join(", ")
                )
            }
            Shape::Array(_) => format!(
                "{}: {} is an array, indexed by numbers, not by {token:?}",
                pointer.as_str(),
                so_far()
            ),
            other => format!(
                "{}: {} is {}, which has no field {token:?}",
                pointer.as_str(),
                so_far(),
                other.describe()
            ),
        })?;
    }
    Ok(current)
}

fn step<'s>(shape: &'s Shape, token: &str) -> Option<&'s Shape> {
    match shape {
        Shape::Record { fields, .. } => fields.get(token),
        Shape::Map(value) => Some(value),
        Shape::Array(element) => {
            (!token.is_empty() && token.bytes().all(|b| b.is_ascii_digit())).then_some(element)
        }
        Shape::OneOf(branches) => branches.iter().find_map(|b| step(b, token)),
        Shape::Any => Some(shape),
        Shape::Number | Shape::String | Shape::Boolean => None,
    }
}

fn array_element(shape: &Shape) -> Option<&Shape> {
    match shape {
        Shape::Array(element) => Some(element),
        Shape::Any => Some(shape),
        Shape::OneOf(branches) => branches.iter().find_map(array_element),
        _ => None,
    }
}

/// Whether values of `shape` can be read as `kind`.
fn holds(shape: &Shape, kind: ValueKind) -> bool {
    match (shape, kind) {
        (_, ValueKind::Any) | (Shape::Any, _) => true,
        (Shape::OneOf(branches), kind) => branches.iter().any(|b| holds(b, kind)),
        (Shape::Number, ValueKind::Number | ValueKind::NumericString) => true,
        (Shape::String, ValueKind::String | ValueKind::NumericString) => true,
        (Shape::Boolean, ValueKind::Boolean) => true,
        _ => false,
    }
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
