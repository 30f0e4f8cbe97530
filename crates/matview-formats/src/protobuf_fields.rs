//! Protobuf's wire format at the level of one field: tags, varints, groups,
//! and each scalar kind's value written as JSON text (see `protobuf_wire`
//! for messages).

use std::io::Write;

use super::DecodeError;
use super::avro_values as values;
use super::protobuf_plan::{FieldKind, FieldPlan};

/// Nesting deeper than this is refused (recursive message types, groups).
pub const MAX_DEPTH: usize = 64;

fn bad(detail: impl Into<String>) -> DecodeError {
    DecodeError::BadEncoding(detail.into())
}

/// One field's value as the wire holds it.
#[derive(Debug, Clone, Copy)]
pub enum Wire<'b> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'b [u8]),
    /// A proto2 group's fields, between its start and end tags.
    Group(&'b [u8]),
}

impl Wire<'_> {
    fn name(&self) -> &'static str {
        match self {
            Wire::Varint(_) => "varint",
            Wire::Fixed64(_) => "64-bit",
            Wire::Fixed32(_) => "32-bit",
            Wire::Bytes(_) => "length-delimited",
            Wire::Group(_) => "group",
        }
    }
}

/// The bytes of a message (or group) value.
pub fn message_bytes<'b>(field: &FieldPlan, value: Wire<'b>) -> Result<&'b [u8], DecodeError> {
    match value {
        Wire::Bytes(b) | Wire::Group(b) => Ok(b),
        other => Err(mismatch(field, other)),
    }
}

pub fn mismatch(field: &FieldPlan, found: Wire<'_>) -> DecodeError {
    bad(format!(
        "field {} ({}) has a {} value",
        field.name,
        field.number,
        found.name()
    ))
}

/// The value a key field has when the entry leaves it out.
pub fn default_wire(field: &FieldPlan) -> Wire<'static> {
    match field.kind {
        FieldKind::String | FieldKind::Bytes => Wire::Bytes(&[]),
        FieldKind::Fixed32 | FieldKind::Sfixed32 | FieldKind::Float => Wire::Fixed32(0),
        FieldKind::Fixed64 | FieldKind::Sfixed64 | FieldKind::Double => Wire::Fixed64(0),
        _ => Wire::Varint(0),
    }
}

/// A map key as a member name: a string as is, numbers and booleans as text.
pub fn map_key(field: &FieldPlan, value: Wire<'_>) -> Result<String, DecodeError> {
    if let (FieldKind::String, Wire::Bytes(b)) = (&field.kind, value) {
        return std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|e| bad(format!("a map key is not UTF-8: {e}")));
    }
    Ok(scalar_text(field, value)?.trim_matches('"').to_string())
}

/// A scalar value as JSON text (where it is not written to the tape).
pub fn scalar_text(field: &FieldPlan, value: Wire<'_>) -> Result<String, DecodeError> {
    let mut out = Vec::new();
    write_scalar(field, value, &mut out)?;
    Ok(String::from_utf8(out).unwrap_or_else(|_| "null".into()))
}

/// Appends a scalar value as JSON text.
pub fn write_scalar(
    field: &FieldPlan,
    value: Wire<'_>,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    match (&field.kind, value) {
        (FieldKind::Double, Wire::Fixed64(v)) => values::float64(f64::from_bits(v), out),
        (FieldKind::Float, Wire::Fixed32(v)) => values::float32(f32::from_bits(v), out),
        // Truncation and reinterpretation are how Protobuf reads these.
        (FieldKind::Int32, Wire::Varint(v)) => values::integer(i64::from(v as i32), out),
        (FieldKind::Int64, Wire::Varint(v)) => values::integer(v as i64, out),
        (FieldKind::Uint32, Wire::Varint(v)) => values::integer(i64::from(v as u32), out),
        (FieldKind::Uint64, Wire::Varint(v)) | (FieldKind::Fixed64, Wire::Fixed64(v)) => {
            let _ = write!(out, "{v}");
        }
        (FieldKind::Sint32, Wire::Varint(v)) => {
            let n = v as u32;
            values::integer(i64::from((n >> 1) as i32 ^ -((n & 1) as i32)), out);
        }
        (FieldKind::Sint64, Wire::Varint(v)) => {
            values::integer((v >> 1) as i64 ^ -((v & 1) as i64), out);
        }
        (FieldKind::Fixed32, Wire::Fixed32(v)) => values::integer(i64::from(v), out),
        (FieldKind::Sfixed32, Wire::Fixed32(v)) => {
            values::integer(i64::from(v as i32), out);
        }
        (FieldKind::Sfixed64, Wire::Fixed64(v)) => values::integer(v as i64, out),
        (FieldKind::Bool, Wire::Varint(v)) => {
            out.extend_from_slice(if v != 0 { b"true" } else { b"false" });
        }
        (FieldKind::String, Wire::Bytes(b)) => {
            let s = std::str::from_utf8(b)
                .map_err(|e| bad(format!("field {} is not UTF-8: {e}", field.name)))?;
            values::string(s, out);
        }
        (FieldKind::Bytes, Wire::Bytes(b)) => values::base64(b, out),
        (FieldKind::Enum(names), Wire::Varint(v)) => match names.get(&(v as i32)) {
            Some(name) => values::string(name, out),
            // A number this schema does not name (a newer writer's).
            None => values::integer(i64::from(v as i32), out),
        },
        (_, other) => return Err(mismatch(field, other)),
    }
    Ok(())
}

/// `units` and `nanos` (same sign) as one exact decimal: 12 and 500000000
/// are 12.5.
pub fn seconds_and_nanos(units: i64, nanos: i64, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let total = i128::from(units) * 1_000_000_000 + i128::from(nanos);
    let sign = if total < 0 { "-" } else { "" };
    let magnitude = total.unsigned_abs();
    let (whole, fraction) = (magnitude / 1_000_000_000, magnitude % 1_000_000_000);
    if fraction == 0 {
        let _ = write!(out, "{sign}{whole}");
    } else {
        let digits = format!("{fraction:09}");
        let _ = write!(out, "{sign}{whole}.{}", digits.trim_end_matches('0'));
    }
    Ok(())
}

/// A `google.type.Decimal`: a number with its digits when it is a decimal
/// JSON readers take (up to about 1.8e308), else its text.
pub fn decimal_text(text: &str, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let integer_digits = text
        .trim_start_matches('-')
        .split('.')
        .next()
        .map_or(0, str::len);
    if is_decimal(text) && integer_digits <= 300 {
        out.extend_from_slice(text.as_bytes());
    } else {
        values::string(text, out);
    }
    Ok(())
}

/// A JSON number token of the decimal kind: `-?digits(.digits)?`.
fn is_decimal(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && digits(fraction) && (whole == "0" || !whole.starts_with('0'))
}

/// A field's number and value from the front of `input`.
pub fn read_field<'b>(input: &mut &'b [u8], depth: usize) -> Result<(u32, Wire<'b>), DecodeError> {
    let tag = read_varint(input)?;
    let number = u32::try_from(tag >> 3)
        .ok()
        .filter(|n| (1..=536_870_911).contains(n))
        .ok_or_else(|| bad(format!("field number {} is not valid", tag >> 3)))?;
    let value = match tag & 7 {
        0 => Wire::Varint(read_varint(input)?),
        1 => Wire::Fixed64(u64::from_le_bytes(take(input)?)),
        2 => {
            let len = read_varint(input)?;
            let len = usize::try_from(len)
                .ok()
                .filter(|n| *n <= input.len())
                .ok_or_else(|| {
                    bad(format!(
                        "truncated: {len} bytes wanted, {} left",
                        input.len()
                    ))
                })?;
            let (bytes, rest) = input.split_at(len);
            *input = rest;
            Wire::Bytes(bytes)
        }
        3 => Wire::Group(group(input, number, depth + 1)?),
        5 => Wire::Fixed32(u32::from_le_bytes(take(input)?)),
        4 => {
            return Err(bad(format!(
                "an end-group tag ({number}) with no group open"
            )));
        }
        other => return Err(bad(format!("wire type {other} is not valid"))),
    };
    Ok((number, value))
}

/// A group's fields, up to its end tag (which `input` moves past).
pub fn group<'b>(input: &mut &'b [u8], number: u32, depth: usize) -> Result<&'b [u8], DecodeError> {
    if depth > MAX_DEPTH {
        return Err(bad(format!("nested deeper than {MAX_DEPTH} levels")));
    }
    let whole: &'b [u8] = input;
    loop {
        let body = &whole[..whole.len() - input.len()];
        let mut peek = *input;
        let tag =
            read_varint(&mut peek).map_err(|_| bad(format!("group {number} is not closed")))?;
        if tag & 7 == 4 {
            *input = peek;
            if tag >> 3 != u64::from(number) {
                return Err(bad(format!("group {number} is closed as {}", tag >> 3)));
            }
            return Ok(body);
        }
        read_field(input, depth)?;
    }
}

pub fn take<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], DecodeError> {
    let (head, rest) = input
        .split_first_chunk::<N>()
        .ok_or_else(|| bad(format!("truncated: {N} bytes wanted, {} left", input.len())))?;
    *input = rest;
    Ok(*head)
}

/// A base-128 varint, at most 10 bytes.
pub fn read_varint(input: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let (&byte, rest) = input
            .split_first()
            .ok_or_else(|| bad("truncated: the input ends inside a number"))?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // A tenth byte holds one bit of a 64-bit value at most.
            if i == 9 && byte > 1 {
                break;
            }
            return Ok(value);
        }
    }
    Err(bad("a variable-length integer runs past 64 bits"))
}
