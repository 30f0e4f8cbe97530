//! Record shaping: event bytes become records (explode, key, id, fields), each
//! classified. An event with any bad part is rejected whole, with the reason.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::compile::CompiledView;
use super::decimal::Decimal;
use super::rules::{GroupId, Operand, ValueKind, classify};

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
    /// Field values in [`CompiledView::fields`] order (null when optional and absent).
    pub fields: Vec<Value>,
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
    #[error("number for {what} at {path} {problem}")]
    BadNumber {
        what: String,
        path: String,
        problem: String,
    },
}

impl EventError {
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
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl CompiledView {
    /// Turns one event into its records, or says why it cannot.
    pub fn shape(&self, bytes: &[u8], position: Position) -> Result<Vec<Record>, EventError> {
        if bytes.len() > self.max_event_bytes {
            return Err(EventError::TooLarge {
                size: bytes.len(),
                max: self.max_event_bytes,
            });
        }
        let event: Value = serde_json::from_slice(bytes).map_err(|e| EventError::NotJson {
            detail: e.to_string(),
        })?;
        match &self.explode {
            None => Ok(vec![self.record(&event, &event, position, 0)?]),
            Some(pointer) => {
                let target =
                    pointer
                        .resolve(&event, &event)
                        .ok_or_else(|| EventError::MissingField {
                            what: "explode array".into(),
                            path: pointer.as_str().into(),
                        })?;
                let Value::Array(elements) = target else {
                    return Err(EventError::ExplodeNotArray {
                        path: pointer.as_str().into(),
                        found: type_name(target),
                    });
                };
                elements
                    .iter()
                    .enumerate()
                    .map(|(i, element)| self.record(&event, element, position, i))
                    .collect()
            }
        }
    }

    fn record(
        &self,
        event: &Value,
        element: &Value,
        position: Position,
        index: usize,
    ) -> Result<Record, EventError> {
        let key = identity(
            self.key.resolve(event, element),
            "row key",
            self.key.as_str(),
        )?;
        if key.is_empty() {
            return Err(EventError::EmptyKey {
                path: self.key.as_str().into(),
            });
        }
        let id = match &self.id {
            Some(p) => identity(p.resolve(event, element), "record id", p.as_str())?,
            None => format!("{}-{}-{}", position.partition, position.offset, index),
        };
        let mut fields = Vec::with_capacity(self.fields.len());
        for field in &self.fields {
            let value = match field.pointer.resolve(event, element) {
                None | Some(Value::Null) if field.optional => Value::Null,
                None | Some(Value::Null) => {
                    return Err(EventError::MissingField {
                        what: format!("field {:?}", field.name),
                        path: field.pointer.as_str().into(),
                    });
                }
                Some(v) => typed(v, field.kind, &field.name, field.pointer.as_str())?,
            };
            fields.push(value);
        }
        let mut sums = Vec::with_capacity(self.aggregate.sums.len());
        for &fi in &self.aggregate.sums {
            let sum = match &fields[fi] {
                Value::Number(n) => Decimal::from_json(n).map_err(|e| EventError::BadNumber {
                    what: format!("field {:?}", self.fields[fi].name),
                    path: self.fields[fi].pointer.as_str().into(),
                    problem: e.to_string(),
                })?,
                _ => Decimal::ZERO, // optional and absent
            };
            sums.push(sum);
        }
        let operand = match &fields[self.classify.field] {
            Value::Null => None,
            Value::Number(n) => Some(Operand::Number(Decimal::from_json(n).map_err(|e| {
                EventError::BadNumber {
                    what: format!("field {:?}", self.fields[self.classify.field].name),
                    path: self.fields[self.classify.field].pointer.as_str().into(),
                    problem: e.to_string(),
                }
            })?)),
            Value::String(s) => Some(Operand::String(s)),
            Value::Bool(b) => Some(Operand::Boolean(*b)),
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

/// A key or id: a string, or a number written as text.
fn identity(value: Option<&Value>, what: &str, path: &str) -> Result<String, EventError> {
    match value {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        None | Some(Value::Null) => Err(EventError::MissingField {
            what: what.into(),
            path: path.into(),
        }),
        Some(other) => Err(EventError::WrongType {
            what: what.into(),
            path: path.into(),
            expected: "a string or a number",
            found: type_name(other),
        }),
    }
}

/// Checks a value against its field's kind; numeric strings become numbers.
fn typed(value: &Value, kind: ValueKind, name: &str, path: &str) -> Result<Value, EventError> {
    let ok = match (kind, value) {
        (ValueKind::Any, _) => true,
        (ValueKind::Number | ValueKind::NumericString, Value::Number(_)) => true,
        (ValueKind::NumericString, Value::String(s)) => {
            let d = Decimal::parse(s).map_err(|e| EventError::BadNumber {
                what: format!("field {name:?}"),
                path: path.into(),
                problem: format!("{s:?} {e}"),
            })?;
            return Ok(d.to_json());
        }
        (ValueKind::String, Value::String(_)) => true,
        (ValueKind::Boolean, Value::Bool(_)) => true,
        _ => false,
    };
    if ok {
        Ok(value.clone())
    } else {
        Err(EventError::WrongType {
            what: format!("field {name:?}"),
            path: path.into(),
            expected: kind.describe(),
            found: type_name(value),
        })
    }
}
