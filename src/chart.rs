//! The Helm chart's values table (docs/reference/chart-values.md), generated from
//! `charts/matview/values.schema.json` and the defaults in `values.yaml`.

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("values.schema.json is not JSON")]
    Schema(#[from] serde_json::Error),
    #[error("values.yaml is not YAML")]
    Values(#[from] serde_yaml_ng::Error),
}

/// A Markdown table: one row per leaf value (key, type, default, description).
pub fn values_table(schema: &str, values: &str) -> Result<String, ChartError> {
    let schema: Value = serde_json::from_str(schema)?;
    let defaults: Value = serde_yaml_ng::from_str(values)?;
    let mut rows = Vec::new();
    leaves(&schema, &defaults, "", &mut rows);
    let mut out = String::from("| key | type | default | description |\n|---|---|---|---|\n");
    for (key, kind, default, description) in rows {
        out.push_str(&format!(
            "| `{key}` | {kind} | `{default}` | {description} |\n"
        ));
    }
    Ok(out)
}

fn leaves(
    schema: &Value,
    defaults: &Value,
    prefix: &str,
    rows: &mut Vec<(String, String, String, String)>,
) {
    let Some(properties) = schema["properties"].as_object() else {
        return;
    };
    for (name, property) in properties {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let default = &defaults[name.as_str()];
        let nested = property["properties"].as_object().is_some_and(|p| {
            p.values()
                .any(|v| v.get("description").is_some() || v.get("properties").is_some())
        });
        if nested && property.get("description").is_none() {
            leaves(property, default, &key, rows);
            continue;
        }
        let mut kind = property["type"].as_str().unwrap_or("any").to_string();
        if let Some(choices) = property["enum"].as_array() {
            let choices: Vec<String> = choices
                .iter()
                .filter_map(|c| c.as_str())
                .map(str::to_string)
                .collect();
            kind = choices.join(" \\| ");
        }
        let default = serde_json::to_string(default).unwrap_or_default();
        let description = property["description"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        rows.push((key, kind, default, description));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_values_become_dotted_rows_with_their_defaults() {
        let schema = r#"{"properties": {
            "image": {"properties": {"tag": {"type": "string", "description": "Tag."}}},
            "logFormat": {"type": "string", "enum": ["json", "text"], "description": "Format."}}}"#;
        let table = values_table(schema, "image: {tag: v1}\nlogFormat: json\n").expect("table");
        assert!(
            table.contains("| `image.tag` | string | `\"v1\"` | Tag. |"),
            "{table}"
        );
        assert!(
            table.contains("| `logFormat` | json \\| text | `\"json\"` | Format. |"),
            "{table}"
        );
    }
}
