//! The reference reading of Protobuf the wire reader (`protobuf_wire`) is
//! tested against: a prost-reflect `DynamicMessage` written as the JSON
//! paths address: field
//! names as in the `.proto`; fields with presence (`optional`, message
//! fields, `oneof` members) only when set — so of a `oneof`, only the set
//! member — and other scalars always, defaults included (a price of 0 is 0,
//! not absent); enums by name; 64-bit integers as numbers; bytes as base64;
//! well-known types as their value (see [`well_known`]). Unknown fields are
//! ignored.

use std::io::Write;

use matview_tape::JsonKind;
use matview_tape::Tape;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, ReflectMessage, Value};

use super::avro_values as values;
use super::protobuf_fields::{decimal_text, seconds_and_nanos};
use super::{DecodeError, Projection};

/// Nesting deeper than this is refused (recursive message types).
const MAX_DEPTH: usize = 64;

pub fn message(
    msg: &DynamicMessage,
    projection: &Projection,
    out: &mut Tape,
    depth: usize,
) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::BadEncoding(format!(
            "nested deeper than {MAX_DEPTH} levels"
        )));
    }
    if well_known(msg, out)? {
        return Ok(());
    }
    out.open(JsonKind::Object);
    for field in msg.descriptor().fields() {
        let Some(inner) = projection.member(field.name()) else {
            continue;
        };
        if field.supports_presence() && !msg.has_field(&field) {
            continue;
        }
        out.name(field.name());
        field_value(&field, &msg.get_field(&field), inner, out, depth)?;
    }
    out.close();
    Ok(())
}

fn field_value(
    field: &FieldDescriptor,
    value: &Value,
    projection: &Projection,
    out: &mut Tape,
    depth: usize,
) -> Result<(), DecodeError> {
    match value {
        Value::List(items) => {
            out.open(JsonKind::Array);
            for item in items {
                scalar(&field.kind(), item, projection, out, depth)?;
            }
            out.close();
        }
        Value::Map(entries) => {
            let value_kind = match field.kind() {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                other => other,
            };
            // Sorted keys: the same message always reads as the same text.
            let mut sorted: Vec<_> = entries.iter().map(|(k, v)| (map_key(k), v)).collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            out.open(JsonKind::Object);
            for (key, item) in sorted {
                let Some(inner) = projection.member(&key) else {
                    continue;
                };
                out.name(&key);
                scalar(&value_kind, item, inner, out, depth)?;
            }
            out.close();
        }
        single => scalar(&field.kind(), single, projection, out, depth)?,
    }
    Ok(())
}

fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(v) => v.to_string(),
        MapKey::I64(v) => v.to_string(),
        MapKey::U32(v) => v.to_string(),
        MapKey::U64(v) => v.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

fn scalar(
    kind: &Kind,
    value: &Value,
    projection: &Projection,
    out: &mut Tape,
    depth: usize,
) -> Result<(), DecodeError> {
    let text = |out: &mut Tape, write: &dyn Fn(&mut Vec<u8>)| {
        out.scalar(|b| {
            write(b);
            Ok::<(), DecodeError>(())
        })
    };
    match value {
        Value::Bool(b) => text(out, &|o| {
            o.extend_from_slice(if *b { b"true" } else { b"false" })
        })?,
        Value::I32(v) => text(out, &|o| values::integer(i64::from(*v), o))?,
        Value::I64(v) => text(out, &|o| values::integer(*v, o))?,
        Value::U32(v) => text(out, &|o| values::integer(i64::from(*v), o))?,
        Value::U64(v) => text(out, &|o| {
            let _ = write!(o, "{v}");
        })?,
        Value::F32(v) => text(out, &|o| values::float32(*v, o))?,
        Value::F64(v) => text(out, &|o| values::float64(*v, o))?,
        Value::String(s) => text(out, &|o| values::string(s, o))?,
        Value::Bytes(b) => text(out, &|o| values::base64(b, o))?,
        Value::EnumNumber(n) => match kind {
            Kind::Enum(e) => match e.get_value(*n) {
                Some(v) => text(out, &|o| values::string(v.name(), o))?,
                // A number this schema does not name (a newer writer's).
                None => text(out, &|o| values::integer(i64::from(*n), o))?,
            },
            _ => text(out, &|o| values::integer(i64::from(*n), o))?,
        },
        Value::Message(m) => message(m, projection, out, depth + 1)?,
        Value::List(_) | Value::Map(_) => {
            return Err(DecodeError::BadEncoding(
                "a list or map inside a list or map".into(),
            ));
        }
    }
    Ok(())
}

/// Well-known types as their values: `Timestamp` as RFC 3339 in UTC,
/// `Duration` as seconds (an exact decimal number), the wrappers
/// (`DoubleValue`, `StringValue`, …) as the value, `google.type.Decimal` as
/// a number with its digits (a string if it is not a decimal),
/// `google.type.Money` as `{"currency_code", "amount"}` with the amount an
/// exact decimal. `true` when `msg` was one and is written.
// Names matched here, not through the wire reader's plan table: the
// reference stays independent of the code it checks.
fn well_known(msg: &DynamicMessage, out: &mut Tape) -> Result<bool, DecodeError> {
    let name = msg.descriptor().full_name().to_string();
    let field = |n: u32| msg.get_field_by_number(n).map(|v| v.into_owned());
    let long = |n: u32| match field(n) {
        Some(Value::I64(v)) => v,
        Some(Value::I32(v)) => i64::from(v),
        _ => 0,
    };
    match name.as_str() {
        "google.protobuf.Timestamp" => {
            let nanos = i128::from(long(1)) * 1_000_000_000 + i128::from(long(2));
            out.scalar(|b| values::timestamp(nanos, true, b))?;
        }
        "google.protobuf.Duration" => {
            let (seconds, nanos) = (long(1), long(2));
            out.scalar(|b| seconds_and_nanos(seconds, nanos, b))?;
        }
        "google.protobuf.DoubleValue"
        | "google.protobuf.FloatValue"
        | "google.protobuf.Int64Value"
        | "google.protobuf.UInt64Value"
        | "google.protobuf.Int32Value"
        | "google.protobuf.UInt32Value"
        | "google.protobuf.BoolValue"
        | "google.protobuf.StringValue"
        | "google.protobuf.BytesValue" => {
            let value_field = msg.descriptor().get_field(1);
            match (value_field, field(1)) {
                (Some(f), Some(v)) => scalar(&f.kind(), &v, &Projection::All, out, 0)?,
                _ => out.scalar(|b| {
                    b.extend_from_slice(b"null");
                    Ok::<(), DecodeError>(())
                })?,
            }
        }
        "google.type.Decimal" => {
            let text = match field(1) {
                Some(Value::String(s)) => s,
                _ => String::new(),
            };
            out.scalar(|b| decimal_text(&text, b))?;
        }
        "google.type.Money" => {
            let code = match field(1) {
                Some(Value::String(s)) => s,
                _ => String::new(),
            };
            let (units, nanos) = (long(2), long(3));
            out.open(JsonKind::Object);
            out.name("currency_code");
            out.scalar(|b| {
                values::string(&code, b);
                Ok::<(), DecodeError>(())
            })?;
            out.name("amount");
            out.scalar(|b| seconds_and_nanos(units, nanos, b))?;
            out.close();
        }
        _ => return Ok(false),
    }
    Ok(true)
}
