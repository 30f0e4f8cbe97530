//! Decoders by schema id. A registry's schema ids are immutable, so an
//! entry never changes once known; the caller fetches what
//! [`SchemaCache::missing`] names, then decodes without I/O.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use matview_tape::Tape;

use super::registry::ResolvedSchema;
use super::wire::{self, unframe};
use super::{AvroDecoder, DecodeError, Projection, ProtobufDecoder, SchemaError};

/// The encodings a cache decodes, as the registry names schema types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Avro,
    Protobuf,
}

impl Encoding {
    /// The registry's `schemaType`.
    pub fn schema_type(self) -> &'static str {
        match self {
            Encoding::Avro => "AVRO",
            Encoding::Protobuf => "PROTOBUF",
        }
    }
}

#[derive(Debug, Clone)]
enum Decoder {
    Avro(Arc<AvroDecoder>),
    Protobuf(Arc<ProtobufDecoder>),
}

#[derive(Debug, Clone)]
enum Entry {
    Ready(Decoder),
    /// The registry answered that the id does not exist.
    Unknown,
    /// The registry has it, but it cannot decode (wrong type, invalid).
    Unusable(SchemaError),
}

/// Decoders of one encoding by schema id.
#[derive(Debug, Clone)]
pub struct SchemaCache {
    encoding: Encoding,
    entries: HashMap<u32, Entry>,
    /// What of each value to write.
    projection: Projection,
}

impl SchemaCache {
    pub fn new(encoding: Encoding) -> SchemaCache {
        SchemaCache::with_projection(encoding, Projection::All)
    }

    /// A cache whose decodes write only what `projection` keeps.
    pub fn with_projection(encoding: Encoding, projection: Projection) -> SchemaCache {
        SchemaCache {
            encoding,
            entries: HashMap::new(),
            projection,
        }
    }

    /// Schema ids framed in `values` that are not known yet.
    pub fn missing<'a>(&self, values: impl IntoIterator<Item = &'a [u8]>) -> BTreeSet<u32> {
        values
            .into_iter()
            .filter_map(wire::schema_id)
            .filter(|id| !self.entries.contains_key(id))
            .collect()
    }

    /// A schema the registry gave for its id.
    pub fn insert(&mut self, resolved: &ResolvedSchema) {
        let expected = self.encoding.schema_type();
        let entry = if resolved.schema_type != expected {
            Err(SchemaError::WrongType {
                id: resolved.id,
                found: resolved.schema_type.clone(),
                expected,
            })
        } else {
            match self.encoding {
                Encoding::Avro => {
                    let texts: Vec<String> = resolved
                        .references
                        .iter()
                        .map(|r| r.schema.clone())
                        .collect();
                    AvroDecoder::new(resolved.id, &resolved.schema, &texts)
                        .map(|d| Decoder::Avro(Arc::new(d)))
                }
                Encoding::Protobuf => {
                    ProtobufDecoder::new(resolved.id, &resolved.schema, &resolved.references)
                        .map(|d| Decoder::Protobuf(Arc::new(d)))
                }
            }
        };
        let entry = match entry {
            Ok(decoder) => Entry::Ready(decoder),
            Err(e) => Entry::Unusable(e),
        };
        self.entries.insert(resolved.id, entry);
    }

    /// An id the registry answered 404 for.
    pub fn insert_unknown(&mut self, id: u32) {
        self.entries.insert(id, Entry::Unknown);
    }

    /// Decodes a framed value into `out` (cleared first) as JSON. An id
    /// not fetched yet is reported as unknown: fetch [`Self::missing`] first.
    pub fn decode(&self, value: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        out.clear();
        let mut tape = Tape::new();
        self.decode_to_tape(value, &mut tape)?;
        tape.write_json(out);
        Ok(())
    }

    /// Decodes a framed value onto `tape` (cleared first), what the engine
    /// shapes without JSON text between them; the same errors as
    /// [`Self::decode`].
    pub fn decode_to_tape(&self, value: &[u8], tape: &mut Tape) -> Result<(), DecodeError> {
        tape.clear();
        let frame = unframe(value)?;
        match self.entries.get(&frame.schema_id) {
            Some(Entry::Ready(Decoder::Avro(d))) => d.to_tape(frame.body, &self.projection, tape),
            Some(Entry::Ready(Decoder::Protobuf(d))) => {
                d.to_tape(frame.body, &self.projection, tape)
            }
            Some(Entry::Unusable(e)) => Err(DecodeError::BadEncoding(e.to_string())),
            Some(Entry::Unknown) | None => Err(DecodeError::UnknownSchema(frame.schema_id)),
        }
    }
}
