//! RFC 9457 problem details: the body of every error answer.

use serde::{Deserialize, Serialize};

/// The JSON body of an `application/problem+json` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
