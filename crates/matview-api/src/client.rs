//! A pooled, keep-alive client of the projector's internal API, returning the
//! typed bodies of [`super::projector`].

use std::time::Duration;

use bytes::Bytes;
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;

use super::problem::ProblemBody;
use super::projector::{
    KeysPage, LookupRequest, LookupResponse, POSITIONS_HEADER, Positions, ProjectorInfo,
    ProjectorStats, REVISION_HEADER, ReadQuery, RowView, parse_positions,
};

/// A projector's answer with what it reflects.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<T> {
    pub body: T,
    /// The revision the projector serves ([`REVISION_HEADER`]).
    pub revision: Option<String>,
    /// Applied offsets of the shard's partitions ([`POSITIONS_HEADER`]).
    pub positions: Vec<(i32, i64)>,
}

impl<T> Answer<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Answer<U> {
        Answer {
            body: f(self.body),
            revision: self.revision,
            positions: self.positions,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad projector address {0:?}")]
    Address(String),
    #[error("request to {url} failed")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered with a body that is not what was asked for")]
    Body {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{url} answered {status}: {}", .problem.as_ref().map(|p| p.detail.as_str()).unwrap_or(""))]
    Status {
        url: String,
        status: StatusCode,
        problem: Option<ProblemBody>,
    },
}

impl ClientError {
    /// The peer answered and said the thing does not exist (not a failure of the peer).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Status { status, .. } if *status == StatusCode::NOT_FOUND)
    }

    /// A failure worth retrying on another replica: no answer, or a 5xx
    /// (but not 504: a read-your-writes wait that ran out is an answer).
    pub fn is_retryable(&self) -> bool {
        match self {
            // A replica that answers garbage is broken: another may not be.
            ClientError::Transport { .. } | ClientError::Body { .. } => true,
            ClientError::Status { status, .. } => {
                status.is_server_error() && *status != StatusCode::GATEWAY_TIMEOUT
            }
            ClientError::Address(_) => false,
        }
    }
}

/// One client per process: connections are pooled and kept alive.
#[derive(Debug, Clone)]
pub struct ProjectorClient {
    http: reqwest::Client,
    /// Replaces the client's timeout for each request ([`Self::with_timeout`]).
    timeout: Option<Duration>,
}

impl ProjectorClient {
    /// `timeout` bounds every request: nothing may hang on a stuck peer.
    pub fn new(timeout: Duration) -> ProjectorClient {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .build()
            .unwrap_or_default();
        ProjectorClient {
            http,
            timeout: None,
        }
    }

    /// The same connections, with another bound on each request: for calls
    /// whose caller bounds them itself (a read's deadline).
    pub fn with_timeout(&self, timeout: Duration) -> ProjectorClient {
        ProjectorClient {
            http: self.http.clone(),
            timeout: Some(timeout),
        }
    }

    fn get_request(&self, url: Url) -> reqwest::RequestBuilder {
        self.bounded(self.http.get(url))
    }

    fn bounded(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.timeout {
            Some(timeout) => request.timeout(timeout),
            None => request,
        }
    }

    /// `base` is `http://host:port`; `segments` are path segments, encoded here.
    fn url(base: &str, segments: &[&str], query: &[(&str, String)]) -> Result<Url, ClientError> {
        let mut url = Url::parse(base).map_err(|_| ClientError::Address(base.into()))?;
        url.path_segments_mut()
            .map_err(|_| ClientError::Address(base.into()))?
            .clear()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    async fn get<T: DeserializeOwned>(&self, url: Url) -> Result<T, ClientError> {
        Ok(self.send(self.get_request(url.clone()), url).await?.body)
    }

    /// Sends a request; a non-2xx answer becomes [`ClientError::Status`].
    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: Url,
    ) -> Result<Answer<T>, ClientError> {
        let text = url.to_string();
        let answer = self.send_bytes(request, url).await?;
        let body = serde_json::from_slice(&answer.body).map_err(|e| ClientError::Body {
            url: text,
            source: e,
        })?;
        Ok(answer.map(|_| body))
    }

    /// [`Self::send`] with the body as the peer sent it.
    async fn send_bytes(
        &self,
        request: reqwest::RequestBuilder,
        url: Url,
    ) -> Result<Answer<Bytes>, ClientError> {
        let text = url.to_string();
        let transport = |source| ClientError::Transport {
            url: text.clone(),
            source,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            let problem = response.json::<ProblemBody>().await.ok();
            return Err(ClientError::Status {
                url: text,
                status,
                problem,
            });
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let revision = header(REVISION_HEADER);
        let positions = header(POSITIONS_HEADER)
            .and_then(|p| parse_positions(&p))
            .unwrap_or_default();
        let body = response.bytes().await.map_err(transport)?;
        Ok(Answer {
            body,
            revision,
            positions,
        })
    }

    /// One row; `None` when no record has the key.
    pub async fn row(
        &self,
        base: &str,
        key: &str,
        read: &ReadQuery,
    ) -> Result<Answer<Option<RowView>>, ClientError> {
        let answer = self.row_bytes(base, key, read).await?;
        let row = match &answer.body {
            Some(bytes) => {
                Some(
                    serde_json::from_slice(bytes).map_err(|source| ClientError::Body {
                        url: format!("{base}/v1/rows/{key}"),
                        source,
                    })?,
                )
            }
            None => None,
        };
        Ok(answer.map(|_| row))
    }

    /// One row as the projector encoded it (JSON of a [`RowView`]); `None`
    /// when no record has the key.
    pub async fn row_bytes(
        &self,
        base: &str,
        key: &str,
        read: &ReadQuery,
    ) -> Result<Answer<Option<Bytes>>, ClientError> {
        let url = Self::url(base, &["v1", "rows", key], &read_query(read))?;
        match self.send_bytes(self.get_request(url.clone()), url).await {
            Ok(answer) => Ok(answer.map(Some)),
            Err(e) if e.is_not_found() => Ok(Answer {
                body: None,
                revision: None,
                positions: Vec::new(),
            }),
            Err(e) => Err(e),
        }
    }

    /// The rows of several keys in one request.
    pub async fn lookup(
        &self,
        base: &str,
        keys: &[String],
        read: &ReadQuery,
    ) -> Result<Answer<LookupResponse>, ClientError> {
        let url = Self::url(base, &["v1", "lookup"], &read_query(read))?;
        let body = LookupRequest {
            keys: keys.to_vec(),
        };
        self.send(self.bounded(self.http.post(url.clone()).json(&body)), url)
            .await
    }

    /// A group's rows after `after`: as [`super::projector::RowsPage`], or with the rows kept
    /// as the projector encoded them ([`super::projector::EncodedRowsPage`]).
    pub async fn scan_group<T: DeserializeOwned>(
        &self,
        base: &str,
        group: &str,
        after: Option<&str>,
        limit: usize,
        read: &ReadQuery,
    ) -> Result<Answer<T>, ClientError> {
        self.group_page(base, group, "rows", after, limit, read)
            .await
    }

    /// The keys of the page [`Self::scan_group`] would answer, without the rows.
    pub async fn scan_group_keys(
        &self,
        base: &str,
        group: &str,
        after: Option<&str>,
        limit: usize,
        read: &ReadQuery,
    ) -> Result<Answer<KeysPage>, ClientError> {
        self.group_page(base, group, "keys", after, limit, read)
            .await
    }

    /// `GET /v1/groups/{group}/{what}` with paging and read-your-writes.
    async fn group_page<T: DeserializeOwned>(
        &self,
        base: &str,
        group: &str,
        what: &str,
        after: Option<&str>,
        limit: usize,
        read: &ReadQuery,
    ) -> Result<Answer<T>, ClientError> {
        let mut query = page_query(after, limit);
        query.extend(read_query(read));
        let url = Self::url(base, &["v1", "groups", group, what], &query)?;
        self.send(self.get_request(url.clone()), url).await
    }

    /// A page of rows with every record's group (`GET /v1/records`).
    pub async fn records(
        &self,
        base: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Answer<crate::records::RecordsPage>, ClientError> {
        let url = Self::url(base, &["v1", "records"], &page_query(after, limit))?;
        self.send(self.get_request(url.clone()), url).await
    }

    pub async fn keys(
        &self,
        base: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<KeysPage, ClientError> {
        self.get(Self::url(base, &["v1", "keys"], &page_query(after, limit))?)
            .await
    }

    pub async fn positions(&self, base: &str) -> Result<Positions, ClientError> {
        self.get(Self::url(base, &["v1", "positions"], &[])?).await
    }

    pub async fn info(&self, base: &str) -> Result<ProjectorInfo, ClientError> {
        self.get(Self::url(base, &["v1", "info"], &[])?).await
    }

    /// The Prometheus exposition, for tools that read stage timings.
    pub async fn metrics_text(&self, base: &str) -> Result<String, ClientError> {
        let url = Self::url(base, &["metrics"], &[])?;
        let text = url.to_string();
        let transport = |source| ClientError::Transport { url: text, source };
        match self.get_request(url).send().await {
            Ok(response) => response.text().await.map_err(transport),
            Err(e) => Err(transport(e)),
        }
    }

    pub async fn stats(&self, base: &str) -> Result<ProjectorStats, ClientError> {
        self.get(Self::url(base, &["v1", "stats"], &[])?).await
    }

    pub async fn figures(
        &self,
        base: &str,
    ) -> Result<crate::figures::ProjectorFigures, ClientError> {
        self.get(Self::url(base, &["v1", "figures"], &[])?).await
    }

    /// The latest `limit` letters of the view's dead-letter topic.
    pub async fn dead_letters(
        &self,
        base: &str,
        limit: usize,
    ) -> Result<crate::dead_letters::DeadLetters, ClientError> {
        let query = [("limit", limit.to_string())];
        self.get(Self::url(base, &["v1", "dead-letters"], &query)?)
            .await
    }

    /// The projector's troubles' version once it is not `after` (at once
    /// when it already is not; else within about 25 s, maybe unchanged):
    /// give this client a timeout above that ([`Self::with_timeout`]).
    pub async fn troubles_after(&self, base: &str, after: u64) -> Result<u64, ClientError> {
        let query = [("after", after.to_string())];
        let answer: crate::projector::TroublesVersion = self
            .get(Self::url(base, &["v1", "troubles"], &query)?)
            .await?;
        Ok(answer.version)
    }
}

fn read_query(read: &ReadQuery) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if let Some(at_least) = &read.at_least {
        query.push(("atLeast", at_least.clone()));
    }
    if let Some(wait) = read.wait_ms {
        query.push(("waitMs", wait.to_string()));
    }
    query
}

fn page_query(after: Option<&str>, limit: usize) -> Vec<(&'static str, String)> {
    let mut query = vec![("limit", limit.to_string())];
    if let Some(after) = after {
        query.push(("after", after.to_string()));
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_cursors_are_encoded_as_path_segments_and_query_values() {
        let url = ProjectorClient::url(
            "http://127.0.1.1:8080",
            &["v1", "rows", "a/b c?"],
            &page_query(Some("x&y"), 5),
        )
        .expect("url");
        assert_eq!(
            url.as_str(),
            "http://127.0.1.1:8080/v1/rows/a%2Fb%20c%3F?limit=5&after=x%26y"
        );
        assert!(ProjectorClient::url("not a url", &[], &[]).is_err());
    }
}
