//! Record shaping: event bytes become records (explode, key, id, fields), each
//! classified. An event with any bad part is rejected whole, with the reason.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::compile::CompiledView;
use super::decimal::Decimal;
use super::json::{JsonKind, RawJson};
use super::node::{EventLevel, EventNode};
use super::rules::{GroupId, Operand, ValueKind, classify};
use super::tape::Tape;

/// Where an event sits in its topic; also the version of the records it yields
/// (a later position replaces an earlier one with the same id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
}

/// One record of a row.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub key: String,
    pub id: String,
    /// `None`: matched no rule and the view has no `otherwise` group.
    pub group: Option<GroupId>,
    /// Field values in [`CompiledView::fields`] order (null when optional
    /// and absent), as the exact JSON text the event carried.
    pub fields: Vec<RawJson>,
    /// Values of the summed fields, in `aggregate.sum` order.
    pub sums: Vec<Decimal>,
    pub version: Position,
}

/// Why an event cannot become records. Each becomes a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("event is not JSON: {detail}")]
    NotJson { detail: String },
    #[error("event is {size} bytes, over the limit of {max}")]
    TooLarge { size: usize, max: usize },
    #[error("missing {what} at {path}")]
    MissingField { what: String, path: String },
    #[error("wrong type for {what} at {path}: expected {expected}, found {found}")]
    WrongType {
        what: String,
        path: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("explode target at {path} is not an array but {found}")]
    ExplodeNotArray { path: String, found: &'static str },
    #[error("row key at {path} is empty: no request could read the row back")]
    EmptyKey { path: String },
    #[error(
        "row key at {path} is {key:?}, a URL dot segment that clients rewrite: no request could read the row back"
    )]
    UnaddressableKey { path: String, key: String },
    #[error("message has no key: with envelope upsert or debezium, the key names the entity")]
    MissingKey,
    #[error("not a Debezium change event: {detail}")]
    BadEnvelope { detail: String },
    #[error(
        "a TRUNCATE of the source table cannot be applied per key: the view keeps its rows (delete rows instead, or rebuild the view from a topic without the truncate)"
    )]
    Truncate,
    #[error("number for {what} at {path} {problem}")]
    BadNumber {
        what: String,
        path: String,
        problem: String,
    },
    #[error("cannot decode the event: {detail}")]
    BadEncoding { detail: String },
    #[error("the schema registry has no schema with id {id}")]
    UnknownSchema { id: u32 },
}

impl EventError {
    /// Every reason, as [`EventError::reason`] gives them.
    pub const REASONS: [&'static str; 13] = [
        "not-json",
        "too-large",
        "missing-field",
        "wrong-type",
        "explode-not-array",
        "bad-number",
        "empty-key",
        "unaddressable-key",
        "missing-key",
        "bad-envelope",
        "truncate",
        "bad-encoding",
        "unknown-schema",
    ];

    /// A stable, machine-readable reason (dead-letter header, metric label).
    pub fn reason(&self) -> &'static str {
        match self {
            EventError::NotJson { .. } => "not-json",
            EventError::TooLarge { .. } => "too-large",
            EventError::MissingField { .. } => "missing-field",
            EventError::WrongType { .. } => "wrong-type",
            EventError::ExplodeNotArray { .. } => "explode-not-array",
            EventError::BadNumber { .. } => "bad-number",
            EventError::EmptyKey { .. } => "empty-key",
            EventError::UnaddressableKey { .. } => "unaddressable-key",
            EventError::MissingKey => "missing-key",
            EventError::BadEnvelope { .. } => "bad-envelope",
            EventError::Truncate => "truncate",
            EventError::BadEncoding { .. } => "bad-encoding",
            EventError::UnknownSchema { .. } => "unknown-schema",
        }
    }
}

impl CompiledView {
    /// Turns one event into its records, or says why it cannot.
    pub fn shape(&self, bytes: &[u8], position: Position) -> Result<Vec<Record>, EventError> {
        let root = self.parse_root(bytes)?;
        self.shape_root(root, position)
    }

    /// Turns one event a binary decoder wrote to `tape` into its records.
    pub fn shape_tape(&self, tape: &Tape, position: Position) -> Result<Vec<Record>, EventError> {
        self.shape_root(super::envelope::decoded_root(tape)?, position)
    }

    /// The event as JSON, checked whole once (members are then read as slices).
    pub(crate) fn parse_root<'a>(&self, bytes: &'a [u8]) -> Result<&'a RawValue, EventError> {
        if bytes.len() > self.max_event_bytes {
            return Err(EventError::TooLarge {
                size: bytes.len(),
                max: self.max_event_bytes,
            });
        }
        let not_json = |detail: String| EventError::NotJson { detail };
        let text = std::str::from_utf8(bytes).map_err(|e| not_json(e.to_string()))?;
        serde_json::from_str(text).map_err(|e| not_json(e.to_string()))
    }

    /// The records of an event (or of a row image) already parsed.
    pub(crate) fn shape_root<'a, N: EventNode<'a>>(
        &self,
        root: N,
        position: Position,
    ) -> Result<Vec<Record>, EventError> {
        let event = root.level();
        match &self.explode {
            None => Ok(vec![self.record(&event, &event, position, 0)?]),
            Some(pointer) => {
                let target =
                    pointer
                        .resolve_in(&event, &event)
                        .ok_or_else(|| EventError::MissingField {
                            what: "explode array".into(),
                            path: pointer.as_str().into(),
                        })?;
                let Some(elements) = target.level().elements() else {
                    return Err(EventError::ExplodeNotArray {
                        path: pointer.as_str().into(),
                        found: target.kind().describe(),
                    });
                };
                elements
                    .into_iter()
                    .enumerate()
                    .map(|(i, element)| self.record(&event, &element.level(), position, i))
                    .collect()
            }
        }
    }

    fn record<'a, L: EventLevel<'a>>(
        &self,
        event: &L,
        element: &L,
        position: Position,
        index: usize,
    ) -> Result<Record, EventError> {
        let key = identity(
            self.key.resolve_in(event, element),
            "row key",
            self.key.as_str(),
        )?;
        if key.is_empty() {
            return Err(EventError::EmptyKey {
                path: self.key.as_str().into(),
            });
        }
        // Every other key is read back percent-encoded in the URL path.
        if key == "." || key == ".." {
            return Err(EventError::UnaddressableKey {
                path: self.key.as_str().into(),
                key,
            });
        }
        let id = match &self.id {
            Some(p) => identity(p.resolve_in(event, element), "record id", p.as_str())?,
            None => format!("{}-{}-{}", position.partition, position.offset, index),
        };
        let mut fields = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            let found = field
                .pointer
                .resolve_in(event, element)
                .filter(|v| v.kind() != JsonKind::Null);
            let value = match found {
                None if field.optional => RawJson::null(),
                None => {
                    return Err(EventError::MissingField {
                        what: format!("field {:?}", field.name),
                        path: field.pointer.as_str().into(),
                    });
                }
                Some(v) => typed(v, field.kind, &field.name, field.pointer.as_str())?,
            };
            fields.push(value);
        }
        let number = |fi: usize| -> Result<Option<Decimal>, EventError> {
            fields[fi]
                .as_decimal()
                .transpose()
                .map_err(|e| EventError::BadNumber {
                    what: format!("field {:?}", self.fields[fi].name),
                    path: self.fields[fi].pointer.as_str().into(),
                    problem: format!("{} {e}", fields[fi].text()),
                })
        };
        let mut sums = Vec::with_capacity(self.aggregate.sums.len());
        for &fi in &self.aggregate.sums {
            // Absent optional fields add nothing.
            sums.push(number(fi)?.unwrap_or(Decimal::ZERO));
        }
        let classified = &fields[self.classify.field];
        let text = classified.as_string();
        let operand = match classified.kind() {
            JsonKind::Null => None,
            JsonKind::Number => number(self.classify.field)?.map(Operand::Number),
            JsonKind::String => Some(Operand::String(text.as_deref().unwrap_or_default())),
            JsonKind::Bool => classified.as_bool().map(Operand::Boolean),
            _ => Some(Operand::Other),
        };
        let group = classify(&self.classify, operand.as_ref());
        Ok(Record {
            key,
            id,
            group,
            fields,
            sums,
            version: position,
        })
    }
}

/// A key or id: a string, or a number written as its text.
fn identity<'a, N: EventNode<'a>>(
    value: Option<N>,
    what: &str,
    path: &str,
) -> Result<String, EventError> {
    let missing = || EventError::MissingField {
        what: what.into(),
        path: path.into(),
    };
    let Some(value) = value else {
        return Err(missing());
    };
    match value.kind() {
        JsonKind::String => {
            value
                .as_str()
                .map(Cow::into_owned)
                .ok_or_else(|| EventError::WrongType {
                    what: what.into(),
                    path: path.into(),
                    expected: "a string or a number",
                    found: "a string that is not valid Unicode",
                })
        }
        JsonKind::Number => Ok(value.text().into_owned()),
        JsonKind::Null => Err(missing()),
        other => Err(EventError::WrongType {
            what: what.into(),
            path: path.into(),
            expected: "a string or a number",
            found: other.describe(),
        }),
    }
}

/// Checks a value against its field's kind; numeric strings become numbers.
fn typed<'a, N: EventNode<'a>>(
    value: N,
    kind: ValueKind,
    name: &str,
    path: &str,
) -> Result<RawJson, EventError> {
    let found = value.kind();
    let bad_number = |problem: String| EventError::BadNumber {
        what: format!("field {name:?}"),
        path: path.into(),
        problem,
    };
    let ok = match (kind, found) {
        (ValueKind::Any, _) => true,
        (ValueKind::Number | ValueKind::NumericString, JsonKind::Number) => {
            // Kept as written, once known to be an exact decimal.
            let text = value.text();
            Decimal::parse_exact(&text).map_err(|e| bad_number(format!("{text} {e}")))?;
            true
        }
        (ValueKind::NumericString, JsonKind::String) => {
            let text = value.as_str().unwrap_or_default();
            let d = Decimal::parse_exact(&text).map_err(|e| bad_number(format!("{text:?} {e}")))?;
            return Ok(RawJson::number(d));
        }
        (ValueKind::String, JsonKind::String) => true,
        (ValueKind::Boolean, JsonKind::Bool) => true,
        _ => false,
    };
    if !ok {
        return Err(EventError::WrongType {
            what: format!("field {name:?}"),
            path: path.into(),
            expected: kind.describe(),
            found: found.describe(),
        });
    }
    Ok(value.to_raw())
}
