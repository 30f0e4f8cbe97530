//! RFC 9457 problem details: the body of every error answer.

use axum::Json;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The JSON body of an `application/problem+json` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProblemBody {
    #[serde(rename = "type", default = "about_blank")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    #[serde(default)]
    pub detail: String,
}

fn about_blank() -> String {
    "about:blank".into()
}

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

impl ProblemBody {
    pub fn new(status: u16, title: &str, detail: impl Into<String>) -> ProblemBody {
        ProblemBody {
            type_: about_blank(),
            title: title.into(),
            status,
            detail: detail.into(),
        }
    }
}

/// An error answer: status, a short title, and what happened in words.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
}

impl Problem {
    /// A 500 whose detail is the error's own words.
    pub fn internal(e: impl std::fmt::Display) -> Problem {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
            e.to_string(),
        )
    }

    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            title,
            detail: detail.into(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = ProblemBody::new(self.status.as_u16(), self.title, self.detail);
        (
            self.status,
            [(header::CONTENT_TYPE, PROBLEM_CONTENT_TYPE)],
            Json(body),
        )
            .into_response()
    }
}

/// A query string as a typed value; a bad one is a 400 problem that says
/// what is wrong (not axum's plain-text rejection).
pub struct TypedQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for TypedQuery<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| TypedQuery(q))
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad query", e.body_text()))
    }
}

impl From<crate::revision_rows::PageError> for Problem {
    fn from(e: crate::revision_rows::PageError) -> Problem {
        Problem::new(
            StatusCode::BAD_GATEWAY,
            "bad answer from a projector",
            e.to_string(),
        )
    }
}
