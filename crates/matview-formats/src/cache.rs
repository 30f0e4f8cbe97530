//! Decoders by schema id. A registry's schema ids are immutable, so an
//! entry never changes once known; the caller fetches what
//! [`SchemaCache::missing`] names, then decodes without I/O.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::registry::ResolvedSchema;
use super::wire::{self, unframe};
use super::{AvroDecoder, DecodeError, SchemaError};

#[derive(Debug, Clone)]
enum Entry {
    Ready(Arc<AvroDecoder>),
    /// The registry answered that the id does not exist.
    Unknown,
    /// The registry has it, but it cannot decode (wrong type, invalid).
    Unusable(SchemaError),
}

/// Avro decoders by schema id.
#[derive(Debug, Default, Clone)]
pub struct SchemaCache {
    entries: HashMap<u32, Entry>,
}

impl SchemaCache {
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
        let entry = if resolved.schema_type != "AVRO" {
            Entry::Unusable(SchemaError::WrongType {
                id: resolved.id,
                found: resolved.schema_type.clone(),
                expected: "AVRO",
            })
        } else {
            match AvroDecoder::new(resolved.id, &resolved.schema, &resolved.references) {
                Ok(decoder) => Entry::Ready(Arc::new(decoder)),
                Err(e) => Entry::Unusable(e),
            }
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
        let frame = unframe(value)?;
        match self.entries.get(&frame.schema_id) {
            Some(Entry::Ready(decoder)) => decoder.to_json(frame.body, out),
            Some(Entry::Unusable(e)) => Err(DecodeError::BadEncoding(e.to_string())),
            Some(Entry::Unknown) | None => Err(DecodeError::UnknownSchema(frame.schema_id)),
        }
    }
}
