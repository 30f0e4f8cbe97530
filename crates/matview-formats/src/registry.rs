//! The schema registry's REST contract (the Confluent API, which Confluent
//! Schema Registry, Apicurio's `ccompat` API, Karapace and Redpanda serve):
//! requests and answers as typed structs, for the projector's client and
//! `matview dev`'s built-in registry alike.

use serde::{Deserialize, Serialize};

/// `GET /schemas/ids/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SchemaById {
    pub schema: String,
    /// `AVRO` when absent, as the API defines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_type: Option<String>,
    #[serde(default)]
    pub references: Vec<SchemaReference>,
}

/// `GET /subjects/{subject}/versions/{version}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SubjectVersion {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// The schema's global id (`latest` answers need it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
    pub schema: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_type: Option<String>,
    #[serde(default)]
    pub references: Vec<SchemaReference>,
}

/// `POST /subjects/{subject}/versions`: what a producer registers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RegisterSchema {
    pub schema: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<SchemaReference>,
}

/// The answer to a registration: the schema's global id.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct RegisteredId {
    pub id: u32,
}

/// A named type or import a schema takes from another subject's version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct SchemaReference {
    pub name: String,
    pub subject: String,
    pub version: i64,
}

/// The registry's error body (`{"error_code": 40403, "message": …}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RegistryProblem {
    #[serde(default)]
    pub error_code: Option<i64>,
    #[serde(default)]
    pub message: Option<String>,
}

/// A schema with everything it references, transitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSchema {
    pub id: u32,
    pub schema_type: String,
    pub schema: String,
    pub references: Vec<NamedSchema>,
}

/// A referenced schema under the name the referring one uses (an Avro
/// type's full name, a Protobuf import path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedSchema {
    pub name: String,
    pub schema: String,
}

impl SchemaById {
    /// The schema type, `AVRO` when the registry leaves it out.
    pub fn kind(&self) -> &str {
        self.schema_type.as_deref().unwrap_or("AVRO")
    }
}

impl SubjectVersion {
    /// The schema type, `AVRO` when the registry leaves it out.
    pub fn kind(&self) -> &str {
        self.schema_type.as_deref().unwrap_or("AVRO")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_with_and_without_optional_members() {
        let plain: SchemaById = serde_json::from_str(r#"{"schema":"\"string\""}"#).expect("plain");
        assert_eq!(plain.kind(), "AVRO");
        assert!(plain.references.is_empty());
        let full: SchemaById = serde_json::from_str(
            r#"{"schema":"{}","schemaType":"PROTOBUF","references":[{"name":"a.proto","subject":"a","version":2}]}"#,
        )
        .expect("full");
        assert_eq!(full.kind(), "PROTOBUF");
        assert_eq!(full.references[0].version, 2);
    }
}
