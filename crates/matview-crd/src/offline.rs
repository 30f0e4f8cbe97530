//! The API server's admission checks of a MaterializedView, offline: the
//! CRD's own structural schema (types, required fields, enums, patterns,
//! lengths, bounds, unknown fields as `kubectl apply` reports them) and its
//! CEL rules, evaluated on a manifest. `matview validate` runs them before
//! compiling, so it gives the verdict `kubectl apply` would; since they are
//! read from the CRD itself, the two cannot drift.

use kube::CustomResourceExt;
use serde_json::{Map, Value};

use super::MaterializedView;

/// Every problem the API server would report for this manifest, as
/// `<field path>: <what is wrong>`.
pub fn check(manifest: &Value) -> Vec<String> {
    // The CRD is the same for every document: rendered once.
    static CRD: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let crd = CRD.get_or_init(|| serde_json::to_value(MaterializedView::crd()).unwrap_or_default());
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut problems = Vec::new();
    // The envelope (apiVersion, kind, metadata) is checked by the caller.
    if let (Some(spec_schema), Some(spec)) =
        (schema["properties"].get("spec"), manifest.get("spec"))
    {
        walk(spec_schema, spec, "spec", &mut problems);
    } else if manifest.get("spec").is_none() {
        problems.push("spec: Required value".into());
    }
    // Rules on the whole object (they may read metadata.name).
    check_rules(schema, manifest, "", &mut problems);
    problems
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(expected: &str, value: &Value) -> bool {
    match (expected, value) {
        ("number", Value::Number(_)) => true,
        (t, v) => t == type_name(v),
    }
}

fn walk(schema: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    let flag = |key: &str| schema.get(key).and_then(Value::as_bool) == Some(true);
    if value.is_null() {
        if !flag("nullable") {
            problems.push(format!("{path}: Invalid value: null: must not be null"));
        }
        return;
    }
    if flag("x-kubernetes-int-or-string") {
        if !matches!(type_name(value), "integer" | "string") {
            problems.push(format!(
                "{path}: Invalid value: must be an integer or a string"
            ));
        }
        return;
    }
    if let Some(expected) = schema.get("type").and_then(Value::as_str)
        && !type_ok(expected, value)
    {
        problems.push(format!(
            "{path}: Invalid value: \"{}\": {path} in body must be of type {expected}",
            type_name(value)
        ));
        return;
    }
    let before = problems.len();
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        problems.push(format!(
            "{path}: Unsupported value: {value}: supported values: {}",
            allowed
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    match value {
        Value::String(s) => check_string(schema, s, path, problems),
        Value::Number(n) => check_number(schema, n.as_f64().unwrap_or_default(), path, problems),
        Value::Array(items) => check_array(schema, items, path, problems),
        Value::Object(map) => check_object(schema, map, path, problems),
        Value::Bool(_) | Value::Null => {}
    }
    // CEL rules run on values that passed the structural checks.
    if problems.len() == before {
        check_rules(schema, &with_defaults(schema, value), path, problems);
    }
}

fn check_number(schema: &Value, v: f64, path: &str, problems: &mut Vec<String>) {
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    if let Some(min) = bound("minimum").filter(|min| v < *min) {
        problems.push(format!(
            "{path}: Invalid value: {v}: should be greater than or equal to {min}"
        ));
    }
    if let Some(max) = bound("maximum").filter(|max| v > *max) {
        problems.push(format!(
            "{path}: Invalid value: {v}: should be less than or equal to {max}"
        ));
    }
}

fn check_array(schema: &Value, items: &[Value], path: &str, problems: &mut Vec<String>) {
    let count = |key: &str| schema.get(key).and_then(Value::as_u64);
    let len = items.len() as u64;
    if let Some(min) = count("minItems").filter(|min| len < *min) {
        problems.push(format!(
            "{path}: Invalid value: must have at least {min} items"
        ));
    }
    if let Some(max) = count("maxItems").filter(|max| len > *max) {
        problems.push(format!(
            "{path}: Too many: {len}: must have at most {max} items"
        ));
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            walk(item_schema, item, &format!("{path}[{i}]"), problems);
        }
    }
}

fn check_string(schema: &Value, s: &str, path: &str, problems: &mut Vec<String>) {
    let number = |key: &str| schema.get(key).and_then(Value::as_u64);
    let length = s.chars().count() as u64;
    if number("minLength").is_some_and(|m| length < m) {
        problems.push(format!(
            "{path}: Invalid value: {s:?}: should be at least {} chars long",
            number("minLength").unwrap_or_default()
        ));
    }
    if number("maxLength").is_some_and(|m| length > m) {
        problems.push(format!(
            "{path}: Too long: may not be more than {} bytes",
            number("maxLength").unwrap_or_default()
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        let matches = regex::Regex::new(pattern).map(|re| re.is_match(s));
        if matches == Ok(false) {
            problems.push(format!(
                "{path}: Invalid value: {s:?}: {path} in body should match '{pattern}'"
            ));
        }
    }
}

fn check_object(schema: &Value, map: &Map<String, Value>, path: &str, problems: &mut Vec<String>) {
    let number = |key: &str| schema.get(key).and_then(Value::as_u64);
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(required) {
            problems.push(format!("{path}.{required}: Required value"));
        }
    }
    let count = map.len() as u64;
    if number("minProperties").is_some_and(|m| count < m) {
        problems.push(format!(
            "{path}: Invalid value: should have at least {} properties",
            number("minProperties").unwrap_or_default()
        ));
    }
    if number("maxProperties").is_some_and(|m| count > m) {
        problems.push(format!(
            "{path}: Too many: {count}: must have at most {} properties",
            number("maxProperties").unwrap_or_default()
        ));
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    for (key, child) in map {
        let child_path = match additional {
            Some(_) if properties.is_none() => format!("{path}[{key}]"),
            _ => format!("{path}.{key}"),
        };
        match (properties.and_then(|p| p.get(key)), additional) {
            (Some(child_schema), _) | (None, Some(child_schema)) => {
                walk(child_schema, child, &child_path, problems)
            }
            // What `kubectl apply` (strict field validation) refuses.
            (None, None) if !preserve => {
                problems.push(format!("{child_path}: unknown field \"{key}\""))
            }
            (None, None) => {}
        }
    }
}

/// The value as the API server sees it after defaulting the object's
/// direct properties.
fn with_defaults(schema: &Value, value: &Value) -> Value {
    let (Some(properties), Value::Object(map)) =
        (schema.get("properties").and_then(Value::as_object), value)
    else {
        return value.clone();
    };
    let mut out = map.clone();
    for (key, property) in properties {
        if let Some(default) = property.get("default")
            && !out.contains_key(key)
        {
            out.insert(key.clone(), default.clone());
        }
    }
    Value::Object(out)
}

fn check_rules(schema: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    else {
        return;
    };
    for rule in rules {
        let Some(expression) = rule.get("rule").and_then(Value::as_str) else {
            continue;
        };
        // Transition rules compare with the stored object: the API server
        // evaluates them on updates only, and a manifest alone has none.
        if expression.contains("oldSelf") {
            continue;
        }
        let field = rule
            .get("fieldPath")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let at = format!("{path}{field}").trim_start_matches('.').to_string();
        let message = rule
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| format!("failed rule: {expression}"), str::to_string);
        match evaluate(expression, value) {
            Ok(true) => {}
            // A rule on the whole object names its field in its message.
            Ok(false) if at.is_empty() => problems.push(message),
            Ok(false) => problems.push(format!("{at}: Invalid value: {message}")),
            Err(e) => problems.push(format!(
                "{at}: cannot evaluate the rule {expression:?}: {e}"
            )),
        }
    }
}

/// One CEL rule with `self` bound to the value.
fn evaluate(expression: &str, value: &Value) -> Result<bool, String> {
    let program = cel::Program::compile(expression).map_err(|e| e.to_string())?;
    let mut context = cel::Context::default();
    context
        .add_variable("self", value)
        .map_err(|e| e.to_string())?;
    match program.execute(&context).map_err(|e| e.to_string())? {
        cel::Value::Bool(b) => Ok(b),
        other => Err(format!("the rule gave {other:?}, not a boolean")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Value {
        let text = include_str!("../../../examples/items-by-price.yaml");
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).expect("yaml");
        serde_json::to_value(yaml).expect("json")
    }

    #[test]
    fn the_example_passes_and_each_kind_of_mistake_is_named() {
        assert_eq!(check(&example()), Vec::<String>::new());
        let cases: Vec<(&str, Value, &str)> = vec![
            ("/spec/shards", Value::from(0), "spec.shards"),
            (
                "/spec/source/kafka/topic",
                Value::from("a b"),
                "spec.source.kafka.topic",
            ),
            (
                "/spec/source/kafka/topic",
                Value::from(".."),
                "spec.source.kafka.topic",
            ),
            (
                "/spec/source/startFrom",
                Value::from("yesterday"),
                "spec.source.startFrom",
            ),
            (
                "/spec/classify/otherwise",
                Value::from("cheap"),
                "spec.classify",
            ),
            (
                "/spec/records/typo",
                Value::from(1),
                "spec.records.typo: unknown field",
            ),
            ("/spec/shards", Value::from("two"), "spec.shards"),
        ];
        for (pointer, replacement, expected) in cases {
            let mut manifest = example();
            let (parent, key) = pointer.rsplit_once('/').expect("pointer");
            manifest
                .pointer_mut(parent)
                .and_then(Value::as_object_mut)
                .expect("parent")
                .insert(key.to_string(), replacement.clone());
            let problems = check(&manifest);
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with(expected) || p.contains(expected)),
                "{pointer} = {replacement}: {problems:?}"
            );
        }
    }
}
