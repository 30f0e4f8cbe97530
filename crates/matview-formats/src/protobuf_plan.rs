//! What the wire reader needs of each message type, looked up once when a
//! schema is compiled rather than through the descriptor for every field of
//! every event: fields in declaration order (the order they are written in),
//! by number, their kinds, presence, `oneof`, and the JSON text of the
//! default an absent implicit-presence scalar is written as.

use std::collections::HashMap;
use std::sync::Arc;

use prost_reflect::{Cardinality, FieldDescriptor, Kind, MessageDescriptor, Value};

use super::avro_values as values;

/// How a field's values are encoded and written.
#[derive(Debug, Clone)]
pub enum FieldKind {
    Double,
    Float,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Bool,
    String,
    Bytes,
    /// A message (or a proto2 group), by its plan's index.
    Message(usize),
    /// An enum: value names by number (the first name of an aliased number).
    Enum(Arc<HashMap<i32, String>>),
}

impl FieldKind {
    /// Whether repeated values of this kind may be packed into one record.
    pub fn packable(&self) -> bool {
        !matches!(
            self,
            FieldKind::String | FieldKind::Bytes | FieldKind::Message(_)
        )
    }
}

#[derive(Debug, Clone)]
pub struct FieldPlan {
    pub name: String,
    pub number: u32,
    pub kind: FieldKind,
    pub repeated: bool,
    /// A map field: `kind` is its entry message (key 1, value 2).
    pub map: bool,
    /// Written only when set (`optional`, messages, `oneof` members).
    pub presence: bool,
    /// The `oneof` it belongs to, by index within its message.
    pub oneof: Option<usize>,
    /// JSON text of the value written when an implicit-presence field is absent.
    pub default: String,
}

/// Well-known types written as their value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WellKnown {
    Timestamp,
    Duration,
    /// `google.protobuf.*Value`: the wrapped value.
    Wrapper,
    Decimal,
    Money,
}

#[derive(Debug, Clone)]
pub struct MessagePlan {
    pub full_name: String,
    pub well_known: Option<WellKnown>,
    pub fields: Vec<FieldPlan>,
    /// (number, index in `fields`), sorted: a binary search beats hashing
    /// for the few fields a message has.
    by_number: Vec<(u32, usize)>,
    pub oneofs: usize,
}

impl MessagePlan {
    /// The index in `fields` of field `number`, if the type declares it.
    pub fn field(&self, number: u32) -> Option<usize> {
        self.by_number
            .binary_search_by_key(&number, |(n, _)| *n)
            .ok()
            .map(|i| self.by_number[i].1)
    }
}

/// The plans of every message type reachable from some roots.
#[derive(Debug, Clone, Default)]
pub struct Plans {
    pub messages: Vec<MessagePlan>,
    by_name: HashMap<String, usize>,
}

impl Plans {
    pub fn of(roots: &[MessageDescriptor]) -> Plans {
        let mut plans = Plans::default();
        for root in roots {
            plans.index(root);
        }
        plans
    }

    /// The plan of a message type by full name.
    pub fn get(&self, full_name: &str) -> Option<usize> {
        self.by_name.get(full_name).copied()
    }

    fn index(&mut self, message: &MessageDescriptor) -> usize {
        if let Some(&i) = self.by_name.get(message.full_name()) {
            return i;
        }
        let at = self.messages.len();
        self.by_name.insert(message.full_name().to_string(), at);
        // Reserved first, so recursive types point back at it.
        self.messages.push(MessagePlan {
            full_name: message.full_name().to_string(),
            well_known: well_known(message.full_name()),
            fields: Vec::new(),
            by_number: Vec::new(),
            oneofs: 0,
        });
        for nested in message.child_messages() {
            self.index(&nested);
        }
        let oneofs: Vec<String> = message
            .oneofs()
            .map(|o| o.full_name().to_string())
            .collect();
        let fields: Vec<FieldPlan> = message.fields().map(|f| self.field(&f, &oneofs)).collect();
        let plan = &mut self.messages[at];
        plan.by_number = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.number, i))
            .collect();
        plan.by_number.sort_unstable();
        plan.fields = fields;
        plan.oneofs = oneofs.len();
        at
    }

    fn field(&mut self, field: &FieldDescriptor, oneofs: &[String]) -> FieldPlan {
        let kind = self.kind(&field.kind());
        let oneof = field
            .containing_oneof()
            .and_then(|o| oneofs.iter().position(|n| n == o.full_name()));
        let repeated = field.cardinality() == Cardinality::Repeated && !field.is_map();
        FieldPlan {
            name: field.name().to_string(),
            number: field.number(),
            default: default_text(&kind, &field.default_value()),
            kind,
            repeated,
            map: field.is_map(),
            presence: field.supports_presence(),
            oneof,
        }
    }

    fn kind(&mut self, kind: &Kind) -> FieldKind {
        match kind {
            Kind::Double => FieldKind::Double,
            Kind::Float => FieldKind::Float,
            Kind::Int32 => FieldKind::Int32,
            Kind::Int64 => FieldKind::Int64,
            Kind::Uint32 => FieldKind::Uint32,
            Kind::Uint64 => FieldKind::Uint64,
            Kind::Sint32 => FieldKind::Sint32,
            Kind::Sint64 => FieldKind::Sint64,
            Kind::Fixed32 => FieldKind::Fixed32,
            Kind::Fixed64 => FieldKind::Fixed64,
            Kind::Sfixed32 => FieldKind::Sfixed32,
            Kind::Sfixed64 => FieldKind::Sfixed64,
            Kind::Bool => FieldKind::Bool,
            Kind::String => FieldKind::String,
            Kind::Bytes => FieldKind::Bytes,
            Kind::Message(m) => FieldKind::Message(self.index(m)),
            Kind::Enum(e) => {
                let mut names = HashMap::new();
                for v in e.values() {
                    names
                        .entry(v.number())
                        .or_insert_with(|| v.name().to_string());
                }
                FieldKind::Enum(Arc::new(names))
            }
        }
    }
}

fn well_known(full_name: &str) -> Option<WellKnown> {
    Some(match full_name {
        "google.protobuf.Timestamp" => WellKnown::Timestamp,
        "google.protobuf.Duration" => WellKnown::Duration,
        "google.protobuf.DoubleValue"
        | "google.protobuf.FloatValue"
        | "google.protobuf.Int64Value"
        | "google.protobuf.UInt64Value"
        | "google.protobuf.Int32Value"
        | "google.protobuf.UInt32Value"
        | "google.protobuf.BoolValue"
        | "google.protobuf.StringValue"
        | "google.protobuf.BytesValue" => WellKnown::Wrapper,
        "google.type.Decimal" => WellKnown::Decimal,
        "google.type.Money" => WellKnown::Money,
        _ => return None,
    })
}

/// The default as the reader writes a value of its kind.
fn default_text(kind: &FieldKind, value: &Value) -> String {
    let mut out = Vec::new();
    match value {
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::I32(v) => values::integer(i64::from(*v), &mut out),
        Value::I64(v) => values::integer(*v, &mut out),
        Value::U32(v) => values::integer(i64::from(*v), &mut out),
        Value::U64(v) => out.extend_from_slice(v.to_string().as_bytes()),
        Value::F32(v) => values::float32(*v, &mut out),
        Value::F64(v) => values::float64(*v, &mut out),
        Value::String(s) => values::string(s, &mut out),
        Value::Bytes(b) => values::base64(b, &mut out),
        Value::EnumNumber(n) => match kind {
            FieldKind::Enum(names) => match names.get(n) {
                Some(name) => values::string(name, &mut out),
                None => values::integer(i64::from(*n), &mut out),
            },
            _ => values::integer(i64::from(*n), &mut out),
        },
        // Messages, lists and maps are never written as a default.
        Value::Message(_) | Value::List(_) | Value::Map(_) => out.extend_from_slice(b"null"),
    }
    String::from_utf8(out).unwrap_or_else(|_| "null".into())
}
