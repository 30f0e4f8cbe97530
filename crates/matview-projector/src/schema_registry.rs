//! The projector's client of a schema registry (the Confluent REST API):
//! a schema by id, with the schemas it references resolved, transitively.
//! A 404 is an answer (the id does not exist: its events are dead letters);
//! anything else that is not a schema means the registry cannot answer now,
//! and the shard waits for it (the registry is not the data).

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use matview_formats::registry::{
    NamedSchema, RegistryProblem, ResolvedSchema, SchemaById, SchemaReference, SubjectVersion,
};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

/// References one schema may pull in, transitively, at most.
const MAX_REFERENCES: usize = 256;

/// Why the registry gave no usable answer; the shard holds until it does.
#[derive(Debug, Clone, thiserror::Error)]
#[error("schema registry {url}: {detail}")]
pub struct RegistryUnavailable {
    pub url: String,
    pub detail: String,
}

pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
}

/// An answer: the thing, or the registry's words for why it has none.
pub enum Fetched<T> {
    Found(T),
    Missing(String),
}

impl RegistryClient {
    pub fn new(base: &str) -> RegistryClient {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        RegistryClient {
            http,
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// The schema with this id and the texts of all it references; missing
    /// when the registry says the id (or a schema it references) does not exist.
    pub async fn resolve(&self, id: u32) -> Result<Fetched<ResolvedSchema>, RegistryUnavailable> {
        let id_text = id.to_string();
        let root: SchemaById = match self.get(&["schemas", "ids", &id_text]).await? {
            Fetched::Found(root) => root,
            Fetched::Missing(said) => return Ok(Fetched::Missing(said)),
        };
        let mut seen: BTreeSet<SchemaReference> = BTreeSet::new();
        let mut queue: VecDeque<SchemaReference> = root.references.iter().cloned().collect();
        let mut references = Vec::new();
        while let Some(reference) = queue.pop_front() {
            if !seen.insert(reference.clone()) {
                continue;
            }
            if seen.len() > MAX_REFERENCES {
                return Err(self.unavailable(format!(
                    "schema {id} references more than {MAX_REFERENCES} schemas"
                )));
            }
            let version = reference.version.to_string();
            let path = ["subjects", &reference.subject, "versions", &version];
            match self.get::<SubjectVersion>(&path).await? {
                Fetched::Found(found) => {
                    queue.extend(found.references.iter().cloned());
                    references.push(NamedSchema {
                        name: reference.name.clone(),
                        schema: found.schema,
                    });
                }
                Fetched::Missing(said) => {
                    let subject = &reference.subject;
                    return Ok(Fetched::Missing(format!(
                        "it references {subject} version {version}: {said}"
                    )));
                }
            }
        }
        Ok(Fetched::Found(ResolvedSchema {
            id,
            schema_type: root.kind().to_string(),
            schema: root.schema,
            references,
        }))
    }

    /// GET of the base URL extended by `segments` (each percent-encoded:
    /// subjects may hold `/` or spaces).
    async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
    ) -> Result<Fetched<T>, RegistryUnavailable> {
        let path = segments.join("/");
        let mut url =
            url::Url::parse(&self.base).map_err(|e| self.unavailable(format!("not a URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|_| self.unavailable("not a base URL".into()))?
            .pop_if_empty()
            .extend(segments);
        let response = self
            .http
            .get(url)
            .header(
                "Accept",
                "application/vnd.schemaregistry.v1+json, application/json",
            )
            .send()
            .await
            .map_err(|e| self.unavailable(describe(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.unavailable(describe(&e)))?;
        if status == StatusCode::NOT_FOUND {
            let said = serde_json::from_slice::<RegistryProblem>(&body)
                .ok()
                .and_then(|p| p.message)
                .unwrap_or_else(|| "not found".into());
            return Ok(Fetched::Missing(said));
        }
        if !status.is_success() {
            let said = serde_json::from_slice::<RegistryProblem>(&body)
                .ok()
                .and_then(|p| p.message)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
            return Err(self.unavailable(format!("GET …/{path} answered {status}: {said}")));
        }
        serde_json::from_slice(&body)
            .map(Fetched::Found)
            .map_err(|e| {
                self.unavailable(format!("GET …/{path} answered what is not a schema: {e}"))
            })
    }

    fn unavailable(&self, detail: String) -> RegistryUnavailable {
        RegistryUnavailable {
            url: self.base.clone(),
            detail,
        }
    }
}

/// A transport error with its causes (reqwest's own text omits them).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
