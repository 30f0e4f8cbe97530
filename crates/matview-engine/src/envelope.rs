//! What a Kafka message means for a view, by the source's envelope: new
//! records (`append`), the latest state of one source entity (`upsert`), or
//! a Debezium change event (`debezium`). Pure: message in, change out.

use super::compile::CompiledView;
use super::json::JsonKind;
use super::node::{EventLevel, EventNode};
use super::pointer::FieldPointer;
use super::shape::{EventError, Position, Record};
use super::tape::{Tape, TapeNode};
use matview_crd::Envelope;

/// What one message does to the view.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageChange {
    /// Records added (`append`): each replaces an earlier one of its id.
    Add(Vec<Record>),
    /// The records of one source key are now exactly these; an empty list
    /// removes the key's records (a tombstone, a Debezium delete).
    Replace {
        source: Vec<u8>,
        records: Vec<Record>,
    },
    /// Nothing to apply: the tombstone Debezium sends after a delete.
    Ignore,
}

/// A message's value as it reaches the engine.
#[derive(Debug, Clone, Copy)]
pub enum EventValue<'a> {
    /// JSON text, as produced (validated here).
    Json(&'a [u8]),
    /// A binary event a decoder read.
    Decoded(&'a Tape),
}

impl CompiledView {
    /// Turns one message (key, value; `None` is Kafka's null) into its change.
    pub fn shape_message(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        position: Position,
    ) -> Result<MessageChange, EventError> {
        self.shape_event(key, value.map(EventValue::Json), position)
    }

    /// [`Self::shape_message`] for a value in either form.
    pub fn shape_event(
        &self,
        key: Option<&[u8]>,
        value: Option<EventValue<'_>>,
        position: Position,
    ) -> Result<MessageChange, EventError> {
        match self.envelope {
            Envelope::Append => self
                .records(value.unwrap_or(EventValue::Json(&[])), position)
                .map(MessageChange::Add),
            Envelope::Upsert => {
                let source = key.ok_or(EventError::MissingKey)?.to_vec();
                let records = match value {
                    None => Vec::new(),
                    Some(value) => self.records(value, position)?,
                };
                Ok(MessageChange::Replace { source, records })
            }
            // The tombstone after a delete: the delete already removed the key.
            Envelope::Debezium => match value {
                None => Ok(MessageChange::Ignore),
                Some(EventValue::Json(bytes)) => {
                    self.debezium(key, self.parse_root(bytes)?, position)
                }
                Some(EventValue::Decoded(tape)) => {
                    self.debezium(key, decoded_root(tape)?, position)
                }
            },
        }
    }

    fn records(
        &self,
        value: EventValue<'_>,
        position: Position,
    ) -> Result<Vec<Record>, EventError> {
        match value {
            EventValue::Json(bytes) => self.shape(bytes, position),
            EventValue::Decoded(tape) => self.shape_tape(tape, position),
        }
    }

    /// A Debezium change event (or the JSON converter's wrapper of one,
    /// `schemas.enable=true`, with the event in `payload`).
    fn debezium<'a, N: EventNode<'a>>(
        &self,
        key: Option<&[u8]>,
        root: N,
        position: Position,
    ) -> Result<MessageChange, EventError> {
        let bad = |detail: String| EventError::BadEnvelope { detail };
        if root.kind() != JsonKind::Object {
            return Err(bad(format!("not an object but {}", root.kind().describe())));
        }
        let mut event = root.level();
        if event.get("op").is_none()
            && let Some(payload) = present(event.get("payload"))
        {
            if payload.kind() != JsonKind::Object {
                return Err(bad(format!(
                    "payload is not an object but {}",
                    payload.kind().describe()
                )));
            }
            event = payload.level();
        }
        let op = event
            .get("op")
            .and_then(EventNode::as_str)
            .ok_or_else(|| bad("no op (a string: c, r, u, d or t)".into()))?;
        match op.as_ref() {
            "c" | "r" | "u" => {
                let after = present(event.get("after"))
                    .ok_or_else(|| bad(format!("op {op:?} without the row image in after")))?;
                if after.kind() != JsonKind::Object {
                    return Err(bad("after is not an object".into()));
                }
                let source = key.ok_or(EventError::MissingKey)?.to_vec();
                let records = self.shape_root(after, position)?;
                Ok(MessageChange::Replace { source, records })
            }
            "d" => {
                let source = key.ok_or(EventError::MissingKey)?.to_vec();
                Ok(MessageChange::Replace {
                    source,
                    records: Vec::new(),
                })
            }
            "t" => Err(EventError::Truncate),
            other => Err(bad(format!(
                "unknown op {other:?} (expected c, r, u, d or t)"
            ))),
        }
    }
}

pub(crate) fn decoded_root(tape: &Tape) -> Result<TapeNode<'_>, EventError> {
    tape.root().ok_or_else(|| EventError::BadEncoding {
        detail: "the decoder read no value".into(),
    })
}

/// A member that is there and not null.
fn present<'a, N: EventNode<'a>>(value: Option<N>) -> Option<N> {
    value.filter(|v| v.kind() != JsonKind::Null)
}

/// Why a path cannot apply to an envelope (`None`: it can). With
/// `debezium`, paths address the row image, so a path through the
/// envelope's own members is a mistake.
pub fn path_problem(envelope: Envelope, pointer: &FieldPointer) -> Option<String> {
    const ENVELOPE_MEMBERS: [&str; 4] = ["before", "after", "payload", "schema"];
    if envelope != Envelope::Debezium {
        return None;
    }
    let first = pointer.tokens().first()?;
    ENVELOPE_MEMBERS.contains(&first.as_str()).then(|| {
        format!(
            "{:?} reaches into the change event's {first:?}; with envelope debezium, paths address the row image (the table's columns, as in `after`): write /price, not /after/price",
            pointer.as_str()
        )
    })
}
