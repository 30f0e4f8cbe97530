//! A view's latest dead letters, read from its dead-letter topic: what the
//! console lists and the gateway serves.
//!
//! | route | answer |
//! |---|---|
//! | projector `GET /v1/dead-letters?limit=N` | [`DeadLetters`] |
//! | gateway `GET /v1/namespaces/{ns}/views/{name}/dead-letters?limit=N` | [`DeadLetters`] |
//!
//! Events are shown, not kept whole: a value longer than
//! [`SHOWN_VALUE_BYTES`] is cut, and one that is not UTF-8 is given in base64.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The most letters one answer holds.
pub const MAX_LETTERS: usize = 500;
/// Letters in an answer unless the caller asks for another number.
pub const DEFAULT_LETTERS: usize = 50;
/// Of each event's value, at most this many bytes are shown.
pub const SHOWN_VALUE_BYTES: usize = 1024;
/// Of each event's key, at most this many bytes are shown.
pub const SHOWN_KEY_BYTES: usize = 256;

/// The query of both routes: `?limit=N`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    /// How many of the latest letters (1 to [`MAX_LETTERS`], default [`DEFAULT_LETTERS`]).
    pub limit: Option<usize>,
}

impl DeadLetterQuery {
    /// The number of letters asked for, or a 400 saying what is allowed.
    pub fn letters(&self) -> Result<usize, crate::problem::Problem> {
        let limit = self.limit.unwrap_or(DEFAULT_LETTERS);
        if (1..=MAX_LETTERS).contains(&limit) {
            return Ok(limit);
        }
        Err(crate::problem::Problem::new(
            http::StatusCode::BAD_REQUEST,
            "bad limit",
            format!("limit must be 1 to {MAX_LETTERS}"),
        ))
    }
}

/// How shown bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The bytes are UTF-8 text (possibly cut at a character boundary).
    Utf8,
    /// The bytes are not text: base64 (standard alphabet, padded).
    Base64,
}

/// Part of a key or value, as it can be shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShownBytes {
    pub text: String,
    pub encoding: Encoding,
    /// The whole key or value's length in bytes.
    pub bytes: u64,
    /// Whether `text` holds less than the whole.
    pub truncated: bool,
}

/// Where a rejected event came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourcePosition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// One letter of the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// The letter's own place in the dead-letter topic.
    pub partition: i32,
    pub offset: i64,
    /// When the letter was written, ms since the Unix epoch (Kafka's timestamp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
    /// The machine-readable reason (`not-json`, `missing-field`, …); absent
    /// on a message not written by matview.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What was wrong, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The view revision that rejected it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourcePosition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<ShownBytes>,
    pub value: ShownBytes,
}

/// The latest letters, newest first, and what the topic holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetters {
    pub topic: String,
    /// Letters the topic retains now, over all its partitions.
    pub retained: u64,
    /// Of the letters listed, how many per reason.
    pub by_reason: BTreeMap<String, u64>,
    pub letters: Vec<DeadLetter>,
}

impl DeadLetters {
    /// The answer for `letters` read from `topic` (any order): newest
    /// first, at most `limit`, counted per reason.
    pub fn latest(
        topic: String,
        retained: u64,
        mut letters: Vec<DeadLetter>,
        limit: usize,
    ) -> DeadLetters {
        letters.sort_by(|a, b| {
            (b.timestamp_ms, b.offset, b.partition).cmp(&(a.timestamp_ms, a.offset, a.partition))
        });
        letters.truncate(limit);
        let mut by_reason = BTreeMap::new();
        for letter in &letters {
            let reason = letter.reason.clone().unwrap_or_else(|| "unknown".into());
            *by_reason.entry(reason).or_insert(0) += 1;
        }
        DeadLetters {
            topic,
            retained,
            by_reason,
            letters,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(partition: i32, offset: i64, at: i64, reason: &str) -> DeadLetter {
        DeadLetter {
            partition,
            offset,
            timestamp_ms: Some(at),
            reason: Some(reason.into()),
            error: None,
            revision: None,
            source: None,
            key: None,
            value: ShownBytes {
                text: String::new(),
                encoding: Encoding::Utf8,
                bytes: 0,
                truncated: false,
            },
        }
    }

    #[test]
    fn the_newest_letters_are_kept_and_counted_by_reason() {
        let letters = vec![
            letter(0, 1, 100, "not-json"),
            letter(1, 7, 300, "missing-field"),
            letter(0, 2, 200, "not-json"),
            letter(1, 8, 400, "not-json"),
        ];
        let answer = DeadLetters::latest("t.dlq".into(), 9, letters, 3);
        let order: Vec<(i32, i64)> = answer
            .letters
            .iter()
            .map(|l| (l.partition, l.offset))
            .collect();
        assert_eq!(order, vec![(1, 8), (1, 7), (0, 2)]);
        assert_eq!(
            answer.by_reason,
            BTreeMap::from([("missing-field".into(), 1), ("not-json".into(), 2)])
        );
        assert_eq!(answer.retained, 9);
    }
}
