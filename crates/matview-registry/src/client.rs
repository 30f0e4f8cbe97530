//! The client of a schema registry (the Confluent REST API): a schema by
//! id, or a subject's latest, with the schemas it references resolved,
//! transitively. A 404 is an answer (the id does not exist: its events are
//! dead letters); anything else that is not a schema means the registry
//! cannot answer now, and the shard waits for it (the registry is not the
//! data). A 401 or 403 says so apart: the fix is the credentials.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use super::access::{AccessError, BasicAuth, RegistryAccess};
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
    /// It answered 401 or 403: the credentials, not the registry, need a fix.
    pub refused: bool,
}

pub struct RegistryClient {
    http: reqwest::Client,
    base: String,
    access: RegistryAccess,
}

/// An answer: the thing, or the registry's words for why it has none.
pub enum Fetched<T> {
    Found(T),
    Missing(String),
}

impl RegistryClient {
    /// A client of the registry at `base`, with the credentials and CA of `access`.
    pub fn new(base: &str, access: &RegistryAccess) -> Result<RegistryClient, AccessError> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5));
        if let Some(pem) = &access.ca_pem {
            let bad = |e: reqwest::Error| AccessError::BadCa {
                detail: e.to_string(),
            };
            for certificate in reqwest::Certificate::from_pem_bundle(pem).map_err(bad)? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|e| AccessError::Client {
            detail: describe(&e),
        })?;
        let (base, in_url) = without_user_info(base);
        let mut access = access.clone();
        // Credentials written into the URL work as a client's would, and
        // stay out of every message that quotes the URL.
        if access.basic_auth.is_none() {
            access.basic_auth = in_url;
        }
        Ok(RegistryClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            access,
        })
    }

    /// The latest version of `subject` (e.g. `orders-value`), resolved; missing
    /// when the registry has no such subject.
    pub async fn latest(
        &self,
        subject: &str,
    ) -> Result<Fetched<ResolvedSchema>, RegistryUnavailable> {
        let latest: SubjectVersion = match self
            .get(&["subjects", subject, "versions", "latest"])
            .await?
        {
            Fetched::Found(latest) => latest,
            Fetched::Missing(said) => return Ok(Fetched::Missing(said)),
        };
        self.with_references(latest.id.unwrap_or_default(), latest)
            .await
    }

    /// The schema with this id and the texts of all it references; missing
    /// when the registry says the id (or a schema it references) does not exist.
    pub async fn resolve(&self, id: u32) -> Result<Fetched<ResolvedSchema>, RegistryUnavailable> {
        let id_text = id.to_string();
        let root: SchemaById = match self.get(&["schemas", "ids", &id_text]).await? {
            Fetched::Found(root) => root,
            Fetched::Missing(said) => return Ok(Fetched::Missing(said)),
        };
        let root = SubjectVersion {
            subject: None,
            version: None,
            id: Some(id),
            schema: root.schema,
            schema_type: root.schema_type,
            references: root.references,
        };
        self.with_references(id, root).await
    }

    /// `root` with the texts of all it references, transitively.
    async fn with_references(
        &self,
        id: u32,
        root: SubjectVersion,
    ) -> Result<Fetched<ResolvedSchema>, RegistryUnavailable> {
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
        let mut request = self.http.get(url);
        if let Some(auth) = &self.access.basic_auth {
            request = request.basic_auth(&auth.username, Some(&auth.password));
        }
        let response = request
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
            let refused = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
            let mut trouble = self.unavailable(format!("GET …/{path} answered {status}: {said}"));
            trouble.refused = refused;
            return Err(trouble);
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
            refused: false,
        }
    }
}

/// The URL without `user:password@`, and those credentials.
fn without_user_info(base: &str) -> (String, Option<BasicAuth>) {
    let Ok(mut url) = url::Url::parse(base) else {
        return (base.to_string(), None);
    };
    if url.username().is_empty() {
        return (base.to_string(), None);
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let auth = BasicAuth {
        username: decode(url.username()),
        password: url.password().map(decode).unwrap_or_default(),
    };
    // Only fails for URLs that cannot have credentials, which this one had.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    (url.to_string(), Some(auth))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_url_leave_it_and_become_basic_auth() {
        let (base, auth) = without_user_info("https://reader:p%40ss+w@registry.kafka:8081/apis");
        assert_eq!(base, "https://registry.kafka:8081/apis");
        let auth = auth.expect("credentials");
        assert_eq!(
            (auth.username.as_str(), auth.password.as_str()),
            ("reader", "p@ss+w")
        );
        let (plain, none) = without_user_info("http://registry:8081");
        assert_eq!(plain, "http://registry:8081");
        assert!(none.is_none());
    }
}
