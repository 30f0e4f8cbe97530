//! A pooled, keep-alive client of the projector's internal API, returning the
//! typed bodies of [`super::projector`].

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;

use super::problem::ProblemBody;
use super::projector::{KeysPage, Positions, ProjectorInfo, ProjectorStats, RowView, RowsPage};

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

    /// A failure worth retrying on another replica: no answer, or a 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport { .. } => true,
            ClientError::Status { status, .. } => status.is_server_error(),
            ClientError::Address(_) => false,
        }
    }
}

/// One client per process: connections are pooled and kept alive.
#[derive(Debug, Clone)]
pub struct ProjectorClient {
    http: reqwest::Client,
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
        ProjectorClient { http }
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
        let text = url.to_string();
        let transport = |source| ClientError::Transport {
            url: text.clone(),
            source,
        };
        let response = self.http.get(url).send().await.map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            let problem = response.json::<ProblemBody>().await.ok();
            return Err(ClientError::Status {
                url: text,
                status,
                problem,
            });
        }
        response.json::<T>().await.map_err(transport)
    }

    pub async fn row(&self, base: &str, key: &str) -> Result<Option<RowView>, ClientError> {
        match self.get(Self::url(base, &["v1", "rows", key], &[])?).await {
            Ok(row) => Ok(Some(row)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn scan_group(
        &self,
        base: &str,
        group: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<RowsPage, ClientError> {
        let query = page_query(after, limit);
        self.get(Self::url(base, &["v1", "groups", group, "rows"], &query)?)
            .await
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
        let transport = |source| ClientError::Transport {
            url: text.clone(),
            source,
        };
        let response = self.http.get(url).send().await.map_err(transport)?;
        response.text().await.map_err(transport)
    }

    pub async fn stats(&self, base: &str) -> Result<ProjectorStats, ClientError> {
        self.get(Self::url(base, &["v1", "stats"], &[])?).await
    }
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
