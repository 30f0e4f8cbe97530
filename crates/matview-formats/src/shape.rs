//! The JSON form of a schema, as the decoders write its messages: which
//! paths exist and what each holds. Admission checks a view's paths
//! against it (a field that does not exist, a sum over text, an exploded
//! path that is no array) before any event is read.

use std::collections::{BTreeMap, BTreeSet};

use apache_avro::Schema;
use prost_reflect::{Kind, MessageDescriptor};

use super::registry::ResolvedSchema;
use super::{AvroDecoder, ProtobufDecoder, SchemaError};

/// What a JSON value written for a schema can be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// An object with these members (a record, a message); `name` is the
    /// schema's name for it, to say where a path went wrong.
    Record {
        name: String,
        fields: BTreeMap<String, Shape>,
    },
    /// An object with any member names, each value of one shape.
    Map(Box<Shape>),
    Array(Box<Shape>),
    Number,
    String,
    Boolean,
    /// One of several (an Avro union of several non-null branches).
    OneOf(Vec<Shape>),
    /// Not known ahead of reading (a recursive type's second visit, a
    /// duration object): every path is allowed.
    Any,
}

impl Shape {
    /// The shape of a registry schema's values (Protobuf: the file's
    /// first message, as a frame with message index 0 names it).
    pub fn of(resolved: &ResolvedSchema) -> Result<Shape, SchemaError> {
        match resolved.schema_type.as_str() {
            "AVRO" => {
                let texts: Vec<String> = resolved
                    .references
                    .iter()
                    .map(|r| r.schema.clone())
                    .collect();
                Ok(AvroDecoder::new(resolved.id, &resolved.schema, &texts)?.shape())
            }
            "PROTOBUF" => {
                Ok(
                    ProtobufDecoder::new(resolved.id, &resolved.schema, &resolved.references)?
                        .shape(),
                )
            }
            other => Err(SchemaError::WrongType {
                id: resolved.id,
                found: other.to_string(),
                expected: "AVRO or PROTOBUF",
            }),
        }
    }

    /// Short words for what values of this shape are, for messages.
    pub fn describe(&self) -> String {
        match self {
            Shape::Record { name, .. } => format!("a record ({name})"),
            Shape::Map(_) => "a map".into(),
            Shape::Array(_) => "an array".into(),
            Shape::Number => "a number".into(),
            Shape::String => "a string".into(),
            Shape::Boolean => "a boolean".into(),
            Shape::OneOf(shapes) => {
                let each: Vec<String> = shapes.iter().map(Shape::describe).collect();
                format!("one of {}", each.join(", "))
            }
            Shape::Any => "any value".into(),
        }
    }
}

/// The Avro schema's JSON form: a union's null branch is absence, so
/// `[null, T]` is `T`; decimals are numbers; dates, times, uuids, enums,
/// bytes and fixed are strings.
pub(crate) fn avro_shape(
    schema: &Schema,
    names: &std::collections::HashMap<String, Schema>,
    visiting: &mut BTreeSet<String>,
) -> Shape {
    match schema {
        Schema::Null => Shape::Any,
        Schema::Boolean => Shape::Boolean,
        Schema::Int
        | Schema::Long
        | Schema::Float
        | Schema::Double
        | Schema::Decimal(_)
        | Schema::BigDecimal => Shape::Number,
        Schema::Bytes
        | Schema::String
        | Schema::Fixed(_)
        | Schema::Enum(_)
        | Schema::Uuid(_)
        | Schema::Date
        | Schema::TimeMillis
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Shape::String,
        Schema::Array(a) => Shape::Array(Box::new(avro_shape(&a.items, names, visiting))),
        Schema::Map(m) => Shape::Map(Box::new(avro_shape(&m.types, names, visiting))),
        Schema::Union(u) => {
            let branches: Vec<Shape> = u
                .variants()
                .iter()
                .filter(|v| !matches!(v, Schema::Null))
                .map(|v| avro_shape(v, names, visiting))
                .collect();
            match <[Shape; 1]>::try_from(branches) {
                Ok([one]) => one,
                Err(many) if many.is_empty() => Shape::Any,
                Err(many) => Shape::OneOf(many),
            }
        }
        Schema::Record(r) => {
            let name = r.name.fullname(None);
            if !visiting.insert(name.clone()) {
                return Shape::Any;
            }
            let fields = r
                .fields
                .iter()
                .map(|f| (f.name.clone(), avro_shape(&f.schema, names, visiting)))
                .collect();
            visiting.remove(&name);
            Shape::Record { name, fields }
        }
        Schema::Ref { name } => match names.get(&name.fullname(None)) {
            Some(named) => avro_shape(named, names, visiting),
            None => Shape::Any,
        },
        // A duration is an object of its own parts; anything newer is not
        // checked rather than refused.
        _ => Shape::Any,
    }
}

/// The message's JSON form (see `protobuf_json`): field names as in the
/// `.proto`, enums and bytes as strings, well-known types as their values.
pub(crate) fn message_shape(message: &MessageDescriptor, visiting: &mut BTreeSet<String>) -> Shape {
    let name = message.full_name().to_string();
    if let Some(known) = well_known(&name) {
        return known;
    }
    if !visiting.insert(name.clone()) {
        return Shape::Any;
    }
    let fields = message
        .fields()
        .map(|field| {
            let shape = if field.is_map() {
                let value = match field.kind() {
                    Kind::Message(entry) => entry.map_entry_value_field().kind(),
                    other => other,
                };
                Shape::Map(Box::new(kind_shape(&value, visiting)))
            } else if field.is_list() {
                Shape::Array(Box::new(kind_shape(&field.kind(), visiting)))
            } else {
                kind_shape(&field.kind(), visiting)
            };
            (field.name().to_string(), shape)
        })
        .collect();
    visiting.remove(&name);
    Shape::Record { name, fields }
}

fn kind_shape(kind: &Kind, visiting: &mut BTreeSet<String>) -> Shape {
    match kind {
        Kind::Bool => Shape::Boolean,
        Kind::String | Kind::Bytes | Kind::Enum(_) => Shape::String,
        Kind::Message(m) => message_shape(m, visiting),
        _ => Shape::Number,
    }
}

fn well_known(name: &str) -> Option<Shape> {
    Some(match name {
        "google.protobuf.Timestamp" => Shape::String,
        "google.protobuf.Duration"
        | "google.protobuf.DoubleValue"
        | "google.protobuf.FloatValue"
        | "google.protobuf.Int64Value"
        | "google.protobuf.UInt64Value"
        | "google.protobuf.Int32Value"
        | "google.protobuf.UInt32Value"
        | "google.type.Decimal" => Shape::Number,
        "google.protobuf.BoolValue" => Shape::Boolean,
        "google.protobuf.StringValue" | "google.protobuf.BytesValue" => Shape::String,
        "google.type.Money" => Shape::Record {
            name: name.to_string(),
            fields: BTreeMap::from([
                ("currency_code".to_string(), Shape::String),
                ("amount".to_string(), Shape::Number),
            ]),
        },
        _ => return None,
    })
}
