//! Protobuf in the Confluent wire format: after the schema id, the message
//! indexes (which message of the `.proto` file, by position, nested levels
//! included), then the message. The registry's `.proto` text (or a
//! serialized descriptor) and its imports (references, by import path) are
//! compiled in Rust with protox; messages are read from the wire onto the
//! engine's tape by `protobuf_wire`, guided by per-type plans.

use std::collections::HashMap;

use base64::Engine;
use matview_tape::Tape;
use prost::Message;
use prost_reflect::{DescriptorPool, MessageDescriptor};
use prost_types::FileDescriptorProto;
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

use super::protobuf_plan::Plans;
use super::registry::NamedSchema;
use super::wire::read_long;
use super::{DecodeError, Projection, SchemaError, protobuf_wire};

/// Message indexes deeper than this are refused (nesting of message types).
const MAX_INDEXES: usize = 32;

/// Definitions of `google/type` messages a schema may import without the
/// registry holding them (as Confluent's serializers treat them), written
/// after the field numbers of googleapis' files.
const GOOGLE_TYPES: [(&str, &str); 2] = [
    (
        "google/type/decimal.proto",
        "syntax = \"proto3\";\npackage google.type;\nmessage Decimal { string value = 1; }\n",
    ),
    (
        "google/type/money.proto",
        "syntax = \"proto3\";\npackage google.type;\nmessage Money { string currency_code = 1; int64 units = 2; int32 nanos = 3; }\n",
    ),
];

/// The schema's file and its imports, from memory.
struct Sources(HashMap<String, String>);

impl FileResolver for Sources {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        let source = self
            .0
            .get(name)
            .ok_or_else(|| protox::Error::file_not_found(name))?;
        match serialized_descriptor(source) {
            Some(mut descriptor) => {
                // Imports find it under the name they use.
                descriptor.name = Some(name.to_string());
                Ok(File::from_file_descriptor_proto(descriptor))
            }
            None => File::from_source(name, source),
        }
    }
}

/// A schema registered as a serialized `FileDescriptorProto` in base64
/// (as some serializers register it and some registries serve it back)
/// rather than as `.proto` text. Text always has spaces or `;`; base64 has
/// neither.
fn serialized_descriptor(source: &str) -> Option<FileDescriptorProto> {
    let text = source.trim();
    if text.is_empty() || text.bytes().any(|b| b.is_ascii_whitespace() || b == b';') {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    FileDescriptorProto::decode(bytes.as_slice()).ok()
}

/// A compiled `.proto` schema, ready to decode messages written with it.
#[derive(Debug, Clone)]
pub struct ProtobufDecoder {
    /// Top-level message types of the schema's file, in declaration order.
    messages: Vec<MessageDescriptor>,
    /// What the wire reader needs of every message type they reach.
    plans: Plans,
    /// The plan of the first message.
    first_plan: usize,
}

impl ProtobufDecoder {
    /// Compiles the schema text and its references (import path, text).
    pub fn new(
        id: u32,
        schema: &str,
        references: &[NamedSchema],
    ) -> Result<ProtobufDecoder, SchemaError> {
        let invalid = |detail: String| SchemaError::Invalid {
            id,
            kind: "Protobuf",
            detail,
        };
        let root = format!("matview-registry-schema-{id}.proto");
        let mut sources: HashMap<String, String> = GOOGLE_TYPES
            .iter()
            .map(|(name, text)| (name.to_string(), text.to_string()))
            .collect();
        for r in references {
            sources.insert(r.name.clone(), r.schema.clone());
        }
        sources.insert(root.clone(), schema.to_string());
        let mut resolver = ChainFileResolver::new();
        resolver.add(Sources(sources));
        resolver.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.include_imports(true);
        compiler
            .open_file(&root)
            .map_err(|e| invalid(e.to_string()))?;
        let pool: DescriptorPool = compiler.descriptor_pool();
        let file = pool
            .get_file_by_name(&root)
            .ok_or_else(|| invalid("the compiled schema lost its file".into()))?;
        let messages: Vec<MessageDescriptor> = file.messages().collect();
        if messages.is_empty() {
            return Err(invalid("the schema defines no message".into()));
        }
        let plans = Plans::of(&messages);
        let first_plan = plans.get(messages[0].full_name()).unwrap_or(0);
        Ok(ProtobufDecoder {
            messages,
            plans,
            first_plan,
        })
    }

    /// The JSON form of the file's first message (message index 0).
    pub fn shape(&self) -> super::Shape {
        self.messages.first().map_or(super::Shape::Any, |m| {
            super::shape::message_shape(m, &mut Default::default())
        })
    }

    /// Appends the framed body (message indexes, then the message) as JSON.
    pub fn to_json(&self, body: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        self.to_json_projected(body, &Projection::All, out)
    }

    /// [`Self::to_json`] writing only the members `projection` keeps.
    pub fn to_json_projected(
        &self,
        body: &[u8],
        projection: &Projection,
        out: &mut Vec<u8>,
    ) -> Result<(), DecodeError> {
        let mut tape = Tape::new();
        self.to_tape(body, projection, &mut tape)?;
        tape.write_json(out);
        Ok(())
    }

    /// The framed body onto `tape` (cleared first), what `projection` keeps
    /// of it: what the engine shapes.
    pub fn to_tape(
        &self,
        body: &[u8],
        projection: &Projection,
        out: &mut Tape,
    ) -> Result<(), DecodeError> {
        out.clear();
        // Most frames name the file's first message with a single 0.
        let (plan, message) = match body.split_first() {
            Some((0, message)) if !self.messages.is_empty() => (self.first_plan, message),
            _ => {
                let (descriptor, message) = self.unframe(body)?;
                let plan = self.plans.get(descriptor.full_name()).ok_or_else(|| {
                    DecodeError::BadEncoding(format!("{} has no plan", descriptor.full_name()))
                })?;
                (plan, message)
            }
        };
        protobuf_wire::read(&self.plans, plan, message, projection, out)
    }

    /// [`Self::to_tape`] through prost-reflect's `DynamicMessage`: the
    /// reference reading the wire reader is compared with.
    #[cfg(test)]
    pub(crate) fn to_tape_dynamic(
        &self,
        body: &[u8],
        projection: &Projection,
        out: &mut Tape,
    ) -> Result<(), DecodeError> {
        out.clear();
        let (descriptor, rest) = self.unframe(body)?;
        let message =
            prost_reflect::DynamicMessage::decode(descriptor.clone(), rest).map_err(|e| {
                DecodeError::BadEncoding(format!("not a {} message: {e}", descriptor.full_name()))
            })?;
        super::protobuf_json::message(&message, projection, out, 0)
    }

    /// The message type the frame's indexes name, and the message's bytes.
    fn unframe<'b>(&self, body: &'b [u8]) -> Result<(MessageDescriptor, &'b [u8]), DecodeError> {
        let bad = |detail: String| DecodeError::BadEncoding(detail);
        let mut rest = body;
        let count = read_long(&mut rest)?;
        // A single 0 stands for [0], the file's first message.
        let indexes: Vec<i64> = match count {
            0 => vec![0],
            n if n < 0 || n as usize > MAX_INDEXES => {
                return Err(bad(format!("{n} message indexes: not a Protobuf frame")));
            }
            n => (0..n)
                .map(|_| read_long(&mut rest))
                .collect::<Result<_, _>>()?,
        };
        Ok((self.message(&indexes)?, rest))
    }

    fn message(&self, indexes: &[i64]) -> Result<MessageDescriptor, DecodeError> {
        let missing = || {
            DecodeError::BadEncoding(format!(
                "message indexes {indexes:?} name no message of the schema"
            ))
        };
        let (first, nested) = indexes.split_first().ok_or_else(missing)?;
        let mut current = usize::try_from(*first)
            .ok()
            .and_then(|i| self.messages.get(i))
            .cloned()
            .ok_or_else(missing)?;
        for &i in nested {
            current = usize::try_from(i)
                .ok()
                .and_then(|i| current.child_messages().nth(i))
                .ok_or_else(missing)?;
        }
        Ok(current)
    }
}
