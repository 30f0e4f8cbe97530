//! A schema registry for `matview dev` only, so an Avro or Protobuf view
//! runs with nothing but the binary: the part of the Confluent REST API
//! that producers' serializers and matview call (register a schema under
//! a subject, a schema by id, a subject's versions), served on the dev
//! address under `/schema-registry`. Ids are kept in one JSON file under
//! the data directory, so a restart reads the events it framed with the
//! same ids. Not for production: no compatibility rules, no auth, one
//! process; point `--schema-registry` at a real one to use that instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use matview_formats::registry::{
    NamedSchema, RegisterSchema, RegisteredId, RegistryProblem, ResolvedSchema, SchemaById,
    SubjectVersion,
};
use serde::{Deserialize, Serialize};

/// Where the registry's API is served on the dev address.
pub const PREFIX: &str = "/schema-registry";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Registered {
    /// Schemas; id n is at n - 1.
    schemas: Vec<RegisterSchema>,
    /// Each subject's versions as ids; version n at n - 1.
    subjects: BTreeMap<String, Vec<u32>>,
}

pub struct DevRegistry {
    registered: Mutex<Registered>,
    file: PathBuf,
}

impl DevRegistry {
    /// The registry kept in `file` (empty when it does not exist yet).
    pub fn open(file: &Path) -> Result<DevRegistry, std::io::Error> {
        let registered = match std::fs::read(file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Registered::default(),
            Err(e) => return Err(e),
        };
        Ok(DevRegistry {
            registered: Mutex::new(registered),
            file: file.to_path_buf(),
        })
    }

    pub fn router(self: Arc<Self>) -> axum::Router {
        let api = axum::Router::new()
            .route("/subjects", get(subjects))
            .route("/subjects/{subject}/versions", post(register))
            .route("/subjects/{subject}/versions/{version}", get(version))
            .route("/schemas/ids/{id}", get(by_id))
            .with_state(self);
        axum::Router::new().nest(PREFIX, api)
    }

    /// Registers `schema` under `subject`: the same schema keeps its id,
    /// and is a new version of the subject only if it is not one already.
    fn register(&self, subject: &str, schema: RegisterSchema) -> Result<u32, Problem> {
        let mut registered = self.registered.lock().map_err(|_| Problem::internal())?;
        check(&registered, &schema)?;
        let id = match registered.schemas.iter().position(|s| *s == schema) {
            Some(index) => index as u32 + 1,
            None => {
                registered.schemas.push(schema);
                registered.schemas.len() as u32
            }
        };
        let versions = registered.subjects.entry(subject.to_string()).or_default();
        if !versions.contains(&id) {
            versions.push(id);
            let text = serde_json::to_vec_pretty(&*registered).map_err(|_| Problem::internal())?;
            let temporary = self.file.with_extension("json.tmp");
            std::fs::write(&temporary, text)
                .and_then(|()| std::fs::rename(&temporary, &self.file))
                .map_err(|e| Problem::storage(&self.file, &e))?;
        }
        Ok(id)
    }
}

/// A schema must compile, with its references, before it gets an id.
fn check(registered: &Registered, schema: &RegisterSchema) -> Result<(), Problem> {
    let mut references = Vec::new();
    for reference in &schema.references {
        let found = registered
            .subjects
            .get(&reference.subject)
            .and_then(|versions| versions.get(usize::try_from(reference.version - 1).ok()?))
            .and_then(|id| registered.schemas.get(*id as usize - 1))
            .ok_or_else(|| {
                Problem::unprocessable(format!(
                    "reference {} names {} version {}, which does not exist",
                    reference.name, reference.subject, reference.version
                ))
            })?;
        references.push(NamedSchema {
            name: reference.name.clone(),
            schema: found.schema.clone(),
        });
    }
    let resolved = ResolvedSchema {
        id: 0,
        schema_type: schema.schema_type.clone().unwrap_or_else(|| "AVRO".into()),
        schema: schema.schema.clone(),
        references,
    };
    matview_formats::Shape::of(&resolved)
        .map(|_| ())
        .map_err(|e| Problem::unprocessable(e.to_string()))
}

/// An error answer in the registry API's own form.
struct Problem {
    status: StatusCode,
    body: RegistryProblem,
}

impl Problem {
    fn new(status: StatusCode, code: i64, message: String) -> Problem {
        Problem {
            status,
            body: RegistryProblem {
                error_code: Some(code),
                message: Some(message),
            },
        }
    }
    fn internal() -> Problem {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            50001,
            "internal error".into(),
        )
    }
    fn storage(file: &Path, e: &std::io::Error) -> Problem {
        let message = format!("cannot write {}: {e}", file.display());
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, 50002, message)
    }
    fn unprocessable(message: String) -> Problem {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, 42201, message)
    }
    fn not_found(code: i64, message: String) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, code, message)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

async fn subjects(State(registry): State<Arc<DevRegistry>>) -> Result<Json<Vec<String>>, Problem> {
    let registered = registry
        .registered
        .lock()
        .map_err(|_| Problem::internal())?;
    Ok(Json(registered.subjects.keys().cloned().collect()))
}

async fn register(
    State(registry): State<Arc<DevRegistry>>,
    UrlPath(subject): UrlPath<String>,
    body: axum::body::Bytes,
) -> Result<Json<RegisteredId>, Problem> {
    let schema: RegisterSchema = serde_json::from_slice(&body)
        .map_err(|e| Problem::unprocessable(format!("not a schema registration: {e}")))?;
    Ok(Json(RegisteredId {
        id: registry.register(&subject, schema)?,
    }))
}

async fn by_id(
    State(registry): State<Arc<DevRegistry>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<SchemaById>, Problem> {
    let registered = registry
        .registered
        .lock()
        .map_err(|_| Problem::internal())?;
    let schema = id
        .parse::<usize>()
        .ok()
        .and_then(|id| registered.schemas.get(id.checked_sub(1)?))
        .ok_or_else(|| Problem::not_found(40403, format!("schema {id} not found")))?;
    Ok(Json(SchemaById {
        schema: schema.schema.clone(),
        schema_type: schema.schema_type.clone(),
        references: schema.references.clone(),
    }))
}

async fn version(
    State(registry): State<Arc<DevRegistry>>,
    UrlPath((subject, version)): UrlPath<(String, String)>,
) -> Result<Json<SubjectVersion>, Problem> {
    let registered = registry
        .registered
        .lock()
        .map_err(|_| Problem::internal())?;
    let versions = registered
        .subjects
        .get(&subject)
        .ok_or_else(|| Problem::not_found(40401, format!("subject {subject} not found")))?;
    let index = match version.as_str() {
        "latest" => versions.len().checked_sub(1),
        number => number.parse::<usize>().ok().and_then(|n| n.checked_sub(1)),
    };
    let (index, id) = index
        .and_then(|i| Some((i, *versions.get(i)?)))
        .ok_or_else(|| {
            Problem::not_found(40402, format!("version {version} of {subject} not found"))
        })?;
    let schema = registered
        .schemas
        .get(id as usize - 1)
        .ok_or_else(Problem::internal)?;
    Ok(Json(SubjectVersion {
        subject: Some(subject),
        version: Some(index as i64 + 1),
        id: Some(id),
        schema: schema.schema.clone(),
        schema_type: schema.schema_type.clone(),
        references: schema.references.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: &str =
        r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}"#;

    fn registration(schema: &str) -> RegisterSchema {
        RegisterSchema {
            schema: schema.into(),
            schema_type: None,
            references: Vec::new(),
        }
    }

    #[test]
    fn ids_are_stable_across_subjects_versions_and_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("registry.json");
        let registry = DevRegistry::open(&file).expect("opens");
        let v2 = ORDER.replace(
            "}]}",
            r#"},{"name":"note","type":["null","string"],"default":null}]}"#,
        );
        assert_eq!(
            registry.register("orders-value", registration(ORDER)).ok(),
            Some(1)
        );
        assert_eq!(
            registry.register("orders-value", registration(&v2)).ok(),
            Some(2)
        );
        assert_eq!(
            registry.register("orders-value", registration(ORDER)).ok(),
            Some(1)
        );
        assert_eq!(
            registry.register("copy-value", registration(ORDER)).ok(),
            Some(1)
        );
        let bad = registry
            .register("orders-value", registration("{not avro"))
            .expect_err("refused");
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        drop(registry);
        let again = DevRegistry::open(&file).expect("reopens");
        let registered = again.registered.lock().expect("lock");
        assert_eq!(registered.subjects["orders-value"], vec![1, 2]);
        assert_eq!(registered.schemas[1].schema, v2);
    }
}
