//! Binary event formats read through a schema registry: the Confluent wire
//! format (magic byte, schema id) around Avro or Protobuf, decoded onto a
//! [`matview_tape::Tape`] the engine shapes directly (or written out as JSON
//! text, for keys), so records, rules and aggregates work unchanged.
//! Numbers stay exact: a decimal becomes its digits, never a float. Pure:
//! bytes and schemas in, a tape or an error out; fetching schemas is the
//! caller's I/O (see [`registry`] for the REST contract).

mod avro;
mod avro_values;
pub mod cache;
mod projection;
mod protobuf;
mod protobuf_fields;
#[cfg(test)]
mod protobuf_json;
mod protobuf_plan;
mod protobuf_wire;
pub mod registry;
mod shape;
pub mod wire;

pub use avro::AvroDecoder;
pub use cache::{Encoding, SchemaCache};
pub use projection::Projection;
pub use protobuf::ProtobufDecoder;
pub use shape::Shape;

/// Why an event's bytes cannot be decoded; each is a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a frame of the wire format, or a body its schema cannot read.
    #[error("{0}")]
    BadEncoding(String),
    /// The registry answered that no schema has this id.
    #[error("the schema registry has no schema with id {0}")]
    UnknownSchema(u32),
}

/// Why a schema from the registry cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("schema {id} is {found}, not {expected}")]
    WrongType {
        id: u32,
        found: String,
        expected: &'static str,
    },
    #[error("schema {id} is not a valid {kind} schema: {detail}")]
    Invalid {
        id: u32,
        kind: &'static str,
        detail: String,
    },
}

#[cfg(test)]
mod avro_tests;
#[cfg(test)]
mod protobuf_tests;
#[cfg(test)]
mod protobuf_wire_tests;
