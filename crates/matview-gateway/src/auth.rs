//! Authorization the Kubernetes way: a bearer token is checked with a
//! TokenReview, the caller's right to read a view with a SubjectAccessReview
//! on `materializedviews/data` (verbs get, list, watch). Both are cached
//! briefly, keyed by a hash of the token (the token itself is not kept).

use std::time::Duration;

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};
use tracing::warn;

use super::auth_cache::{Answers, NEGATIVE_TTL};
use matview_api::problem::Problem;

/// The subresource whose verbs grant reading a view's data.
pub const DATA_SUBRESOURCE: &str = "data";
/// The subresource whose `get` grants reading a view's dead letters: the
/// raw events it rejected, which its rows never show, so granted apart.
pub const DEAD_LETTERS_SUBRESOURCE: &str = "deadletters";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// TokenReview and SubjectAccessReview against the API server.
    Kubernetes,
    /// Everyone may read everything: local use only.
    None,
}

/// Who asks: `None` when authorization is off.
#[derive(Debug, Clone)]
pub struct Caller {
    token_hash: [u8; 32],
    user: Option<UserInfo>,
}

type Decision = (String, String, String, [u8; 32]);

pub struct Authorizer {
    mode: AuthMode,
    client: Option<Client>,
    identities: Answers<[u8; 32], Option<UserInfo>>,
    decisions: Answers<Decision, bool>,
}

impl Authorizer {
    pub fn new(mode: AuthMode, client: Option<Client>, ttl: Duration) -> Authorizer {
        Authorizer {
            mode,
            client,
            identities: Answers::new(ttl, NEGATIVE_TTL, STALE_IF_UNAVAILABLE),
            decisions: Answers::new(ttl, NEGATIVE_TTL, STALE_IF_UNAVAILABLE),
        }
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// The caller of a request: 401 without a valid bearer token.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, Problem> {
        let (AuthMode::Kubernetes, Some(client)) = (self.mode, &self.client) else {
            return Ok(Caller {
                token_hash: [0; 32],
                user: None,
            });
        };
        let token =
            bearer(headers).ok_or_else(|| unauthorized("send Authorization: Bearer <token>"))?;
        let token_hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                ..Default::default()
            },
            ..Default::default()
        };
        let reviewed = self.identities.get_or_review(token_hash, async {
            let answer = Api::<TokenReview>::all(client.clone())
                .create(&PostParams::default(), &review)
                .await?;
            let status = answer.status.unwrap_or_default();
            Ok::<_, kube::Error>(
                status
                    .authenticated
                    .unwrap_or(false)
                    .then_some(status.user)
                    .flatten(),
            )
        });
        let user = settled(reviewed.await)?;
        let user = user.ok_or_else(|| unauthorized("the token is not valid"))?;
        Ok(Caller {
            token_hash,
            user: Some(user),
        })
    }

    /// May `caller` do `verb` on the data of view `namespace/name`?
    pub async fn may(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        verb: &str,
    ) -> Result<bool, Problem> {
        self.may_on(caller, namespace, name, DATA_SUBRESOURCE, verb)
            .await
    }

    /// May `caller` do `verb` on `subresource` of view `namespace/name`?
    pub async fn may_on(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        subresource: &str,
        verb: &str,
    ) -> Result<bool, Problem> {
        let (Some(client), Some(user)) = (&self.client, &caller.user) else {
            return Ok(self.mode == AuthMode::None);
        };
        let key = (
            namespace.to_string(),
            name.to_string(),
            format!("{subresource}/{verb}"),
            caller.token_hash,
        );
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username.clone(),
                groups: user.groups.clone(),
                uid: user.uid.clone(),
                extra: user.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    group: Some("matview.dev".into()),
                    resource: Some("materializedviews".into()),
                    subresource: Some(subresource.into()),
                    namespace: Some(namespace.into()),
                    name: Some(name.into()),
                    verb: Some(verb.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let reviewed = self.decisions.get_or_review(key, async {
            let answer = Api::<SubjectAccessReview>::all(client.clone())
                .create(&PostParams::default(), &review)
                .await?;
            Ok::<_, kube::Error>(answer.status.is_some_and(|s| s.allowed))
        });
        settled(reviewed.await)
    }

    /// 403 unless allowed (404 would hide the view, but the caller named it).
    pub async fn require(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        verb: &str,
    ) -> Result<(), Problem> {
        self.require_on(caller, namespace, name, DATA_SUBRESOURCE, verb)
            .await
    }

    /// 403 unless `caller` may do `verb` on `subresource` of the view.
    pub async fn require_on(
        &self,
        caller: &Caller,
        namespace: &str,
        name: &str,
        subresource: &str,
        verb: &str,
    ) -> Result<(), Problem> {
        if self
            .may_on(caller, namespace, name, subresource, verb)
            .await?
        {
            return Ok(());
        }
        let role = if subresource == DEAD_LETTERS_SUBRESOURCE {
            "matview-dead-letter-reader"
        } else {
            "matview-view-reader"
        };
        let who = caller
            .user
            .as_ref()
            .and_then(|u| u.username.clone())
            .unwrap_or_default();
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{who} may not {verb} materializedviews/{subresource} {namespace}/{name}; bind the {role} ClusterRole"
            ),
        ))
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
}

/// While the API server does not answer, an answer it gave this long ago
/// still stands: reads go on through an API server restart, and a revoked
/// token is honoured at most this much longer than with the API server up.
const STALE_IF_UNAVAILABLE: Duration = Duration::from_secs(300);

fn warn_stale(e: &kube::Error) {
    warn!(error = %matview_api::errors::chain(e), "the Kubernetes API did not answer; reusing an earlier authorization answer");
}

fn api_unavailable(e: &kube::Error) -> Problem {
    warn!(error = %matview_api::errors::chain(e), "authorization check failed");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "authorization unavailable",
        "the Kubernetes API did not answer the authorization check; retry",
    )
}

/// A review's answer, or the fallback answer while the API server does not
/// answer (logged), or 503.
fn settled<V>(
    reviewed: Result<(V, Option<Arc<kube::Error>>), Arc<kube::Error>>,
) -> Result<V, Problem> {
    match reviewed {
        Ok((answer, None)) => Ok(answer),
        Ok((answer, Some(e))) => {
            warn_stale(&e);
            Ok(answer)
        }
        Err(e) => Err(api_unavailable(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bearer_token_is_taken() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().expect("header"));
        assert_eq!(bearer(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            "Bearer  t0k ".parse().expect("header"),
        );
        assert_eq!(bearer(&headers), Some("t0k"));
        headers.insert(header::AUTHORIZATION, "bearer ".parse().expect("header"));
        assert_eq!(bearer(&headers), None);
    }
}
