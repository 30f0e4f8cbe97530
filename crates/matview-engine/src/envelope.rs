//! What a Kafka message means for a view, by the source's envelope: new
//! records (`append`), the latest state of one source entity (`upsert`), or
//! a Debezium change event (`debezium`). Pure: message in, change out.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::compile::CompiledView;
use super::json::JsonKind;
use super::pointer::FieldPointer;
use super::shape::{EventError, Position, Record};
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

/// The Debezium change event, its members read lazily.
#[derive(Deserialize)]
struct ChangeEvent<'a> {
    #[serde(default, borrow)]
    op: Option<&'a RawValue>,
    #[serde(default, borrow)]
    after: Option<&'a RawValue>,
    /// The JSON converter's wrapper (`schemas.enable=true`) puts the event here.
    #[serde(default, borrow)]
    payload: Option<&'a RawValue>,
}

impl CompiledView {
    /// Turns one message (key, value; `None` is Kafka's null) into its change.
    pub fn shape_message(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        position: Position,
    ) -> Result<MessageChange, EventError> {
        match self.envelope {
            Envelope::Append => self
                .shape(value.unwrap_or_default(), position)
                .map(MessageChange::Add),
            Envelope::Upsert => {
                let source = key.ok_or(EventError::MissingKey)?.to_vec();
                let records = match value {
                    None => Vec::new(),
                    Some(value) => self.shape(value, position)?,
                };
                Ok(MessageChange::Replace { source, records })
            }
            Envelope::Debezium => self.debezium(key, value, position),
        }
    }

    fn debezium(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        position: Position,
    ) -> Result<MessageChange, EventError> {
        // The tombstone after a delete: the delete already removed the key.
        let Some(value) = value else {
            return Ok(MessageChange::Ignore);
        };
        let root = self.parse_root(value)?;
        let bad = |detail: String| EventError::BadEnvelope { detail };
        let mut event: ChangeEvent<'_> =
            serde_json::from_str(root.get()).map_err(|e| bad(format!("not an object: {e}")))?;
        if event.op.is_none()
            && let Some(payload) = event
                .payload
                .filter(|p| JsonKind::of(p.get()) != JsonKind::Null)
        {
            event = serde_json::from_str(payload.get())
                .map_err(|e| bad(format!("payload is not an object: {e}")))?;
        }
        let op = event
            .op
            .and_then(|op| serde_json::from_str::<&str>(op.get()).ok())
            .ok_or_else(|| bad("no op (a string: c, r, u, d or t)".into()))?;
        match op {
            "c" | "r" | "u" => {
                let after = present(event.after)
                    .ok_or_else(|| bad(format!("op {op:?} without the row image in after")))?;
                if JsonKind::of(after.get()) != JsonKind::Object {
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

/// A member that is there and not null.
fn present(value: Option<&RawValue>) -> Option<&RawValue> {
    value.filter(|v| JsonKind::of(v.get()) != JsonKind::Null)
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
