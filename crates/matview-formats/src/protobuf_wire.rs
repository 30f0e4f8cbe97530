//! Protobuf's wire format read straight onto the engine's tape, guided by
//! [`Plans`]. A message's fields are first located (tags and spans only, so
//! a field the view does not read is never decoded), then written in
//! declaration order with Protobuf's rules: the last value of a singular
//! field wins, a message field seen twice is the merge of both, a `oneof`
//! holds its last member, repeated scalars may be packed. Hand-written
//! because decoding into prost-reflect's `DynamicMessage` first cost four
//! times the Avro reader (`cargo bench --bench formats`); the tests compare
//! the two readings on random messages.
//!
//! Values are written as `protobuf_json` describes: fields with presence
//! only when set, others always (defaults included), enums by name, 64-bit
//! integers as numbers, bytes as base64, well-known types as their value.

use matview_tape::JsonKind;
use matview_tape::Tape;

use super::avro_values as values;
use super::protobuf_fields::{
    MAX_DEPTH, Wire, decimal_text, default_wire, map_key, message_bytes, mismatch, read_field,
    read_varint, scalar_text, seconds_and_nanos, take, write_scalar,
};
use super::protobuf_plan::{FieldKind, FieldPlan, MessagePlan, Plans, WellKnown};
use super::{DecodeError, Projection};

/// A field of the message being read: its index in the plan's fields and
/// its place in the wire order.
#[derive(Debug, Clone, Copy)]
struct Occurrence<'b> {
    field: u32,
    seq: u32,
    value: Wire<'b>,
}

fn bad(detail: impl Into<String>) -> DecodeError {
    DecodeError::BadEncoding(detail.into())
}

/// Reads one message of type `root` from `body` onto `out`, only what
/// `projection` keeps.
pub fn read(
    plans: &Plans,
    root: usize,
    body: &[u8],
    projection: &Projection,
    out: &mut Tape,
) -> Result<(), DecodeError> {
    let mut reader = Reader {
        plans,
        found: Vec::new(),
        seq: 0,
    };
    reader
        .message(root, &[body], projection, out, 0)
        .map_err(|e| match e {
            DecodeError::BadEncoding(detail) => bad(format!(
                "not a {} message: {detail}",
                plans.messages[root].full_name
            )),
            other => other,
        })
}

struct Reader<'p, 'b> {
    plans: &'p Plans,
    /// Fields located, message after message (a message's own are at the
    /// end while it is written, and removed after).
    found: Vec<Occurrence<'b>>,
    seq: u32,
}

impl<'p, 'b> Reader<'p, 'b> {
    /// The message that is the merge of `parts` (usually one).
    fn message(
        &mut self,
        plan: usize,
        parts: &[&'b [u8]],
        projection: &Projection,
        out: &mut Tape,
        depth: usize,
    ) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(bad(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let plans = self.plans;
        let plan = &plans.messages[plan];
        let start = self.found.len();
        for part in parts {
            self.locate(plan, part, depth)?;
        }
        // By field, each field's values kept in wire order (a stable sort).
        self.found[start..].sort_by_key(|o| o.field);
        let written = match plan.well_known {
            Some(kind) => self.well_known(plan, kind, start, out),
            None => self.fields(plan, start, projection, out, depth),
        };
        self.found.truncate(start);
        written
    }

    /// Finds the fields of `input` the plan declares (others are skipped).
    fn locate(
        &mut self,
        plan: &MessagePlan,
        mut input: &'b [u8],
        depth: usize,
    ) -> Result<(), DecodeError> {
        while !input.is_empty() {
            let (number, value) = read_field(&mut input, depth)?;
            if let Some(field) = plan.field(number) {
                self.seq += 1;
                self.found.push(Occurrence {
                    field: field as u32,
                    seq: self.seq,
                    value,
                });
            }
        }
        Ok(())
    }

    fn fields(
        &mut self,
        plan: &MessagePlan,
        start: usize,
        projection: &Projection,
        out: &mut Tape,
        depth: usize,
    ) -> Result<(), DecodeError> {
        let end = self.found.len();
        let oneofs = self.oneof_winners(plan, start, end);
        out.open(JsonKind::Object);
        let mut cursor = start;
        for (index, field) in plan.fields.iter().enumerate() {
            let from = cursor;
            while cursor < end && self.found[cursor].field as usize == index {
                cursor += 1;
            }
            let Some(inner) = projection.member(&field.name) else {
                continue;
            };
            let mut values = from..cursor;
            if let Some(oneof) = field.oneof {
                // Only the last member set; its values since another was.
                match oneofs[oneof] {
                    Some((winner, cut)) if winner == index => {
                        while values.start < values.end && self.found[values.start].seq <= cut {
                            values.start += 1;
                        }
                    }
                    _ => continue,
                }
            }
            if values.is_empty() && field.presence && !field.repeated && !field.map {
                continue;
            }
            out.name(&field.name);
            if field.map {
                self.map(field, values, inner, out, depth)?;
            } else if field.repeated {
                out.open(JsonKind::Array);
                for i in values {
                    self.element(field, self.found[i].value, inner, out, depth)?;
                }
                out.close();
            } else {
                self.single(field, values, inner, out, depth)?;
            }
        }
        out.close();
        Ok(())
    }

    /// Per `oneof`: the member whose value came last, and the wire place of
    /// the last value of any other member (earlier values were cleared).
    fn oneof_winners(
        &self,
        plan: &MessagePlan,
        start: usize,
        end: usize,
    ) -> Vec<Option<(usize, u32)>> {
        let mut winners: Vec<Option<(usize, u32)>> = vec![None; plan.oneofs];
        if plan.oneofs == 0 {
            return winners;
        }
        let mut last: Vec<Option<(usize, u32)>> = vec![None; plan.oneofs];
        for o in &self.found[start..end] {
            if let Some(k) = plan.fields[o.field as usize].oneof
                && last[k].is_none_or(|(_, seq)| o.seq > seq)
            {
                last[k] = Some((o.field as usize, o.seq));
            }
        }
        for (k, winner) in last.iter().enumerate() {
            let Some((field, _)) = *winner else { continue };
            let cut = self.found[start..end]
                .iter()
                .filter(|o| plan.fields[o.field as usize].oneof == Some(k))
                .filter(|o| o.field as usize != field)
                .map(|o| o.seq)
                .max()
                .unwrap_or(0);
            winners[k] = Some((field, cut));
        }
        winners
    }

    /// A singular field: the default when absent, the last value, or the
    /// merge of every value of a message field.
    fn single(
        &mut self,
        field: &FieldPlan,
        values: std::ops::Range<usize>,
        projection: &Projection,
        out: &mut Tape,
        depth: usize,
    ) -> Result<(), DecodeError> {
        if let FieldKind::Message(m) = field.kind {
            if values.len() == 1 {
                let part = message_bytes(field, self.found[values.start].value)?;
                return self.message(m, &[part], projection, out, depth + 1);
            }
            let parts = values
                .map(|i| message_bytes(field, self.found[i].value))
                .collect::<Result<Vec<_>, _>>()?;
            return self.message(m, &parts, projection, out, depth + 1);
        }
        let Some(last) = values.end.checked_sub(1).filter(|l| *l >= values.start) else {
            return write_text(out, &field.default);
        };
        // Earlier values are superseded, but must still be readable.
        for i in values.start..last {
            scalar_text(field, self.found[i].value)?;
        }
        let value = self.found[last].value;
        out.scalar(|b| write_scalar(field, value, b))
    }

    /// One wire value of a repeated field: a message, a scalar, or packed scalars.
    fn element(
        &mut self,
        field: &FieldPlan,
        value: Wire<'b>,
        projection: &Projection,
        out: &mut Tape,
        depth: usize,
    ) -> Result<(), DecodeError> {
        match (&field.kind, value) {
            (FieldKind::Message(m), value) => {
                let part = message_bytes(field, value)?;
                self.message(*m, &[part], projection, out, depth + 1)
            }
            (kind, Wire::Bytes(mut packed)) if kind.packable() => {
                while !packed.is_empty() {
                    let one = match kind {
                        FieldKind::Fixed32 | FieldKind::Sfixed32 | FieldKind::Float => {
                            Wire::Fixed32(u32::from_le_bytes(take(&mut packed)?))
                        }
                        FieldKind::Fixed64 | FieldKind::Sfixed64 | FieldKind::Double => {
                            Wire::Fixed64(u64::from_le_bytes(take(&mut packed)?))
                        }
                        _ => Wire::Varint(read_varint(&mut packed)?),
                    };
                    out.scalar(|b| write_scalar(field, one, b))?;
                }
                Ok(())
            }
            (_, value) => out.scalar(|b| write_scalar(field, value, b)),
        }
    }

    /// A map: entries by key (sorted, so a message always reads the same),
    /// the last entry of a key winning.
    fn map(
        &mut self,
        field: &FieldPlan,
        values: std::ops::Range<usize>,
        projection: &Projection,
        out: &mut Tape,
        depth: usize,
    ) -> Result<(), DecodeError> {
        let plans = self.plans;
        let (FieldKind::Message(entry), Some(depth)) = (&field.kind, depth.checked_add(1)) else {
            return Err(bad(format!("map {} has no entry type", field.name)));
        };
        let entry = &plans.messages[*entry];
        let (Some(key_index), Some(value_index)) = (entry.field(1), entry.field(2)) else {
            return Err(bad(format!("map {} has no key or value", field.name)));
        };
        let (key_field, value_field) = (&entry.fields[key_index], &entry.fields[value_index]);
        // Each entry: its key, and where its fields are in `found`.
        let mut entries: Vec<(String, std::ops::Range<usize>)> = Vec::new();
        for i in values {
            let at = self.found.len();
            self.locate(entry, message_bytes(field, self.found[i].value)?, depth)?;
            let mut key = default_wire(key_field);
            for o in &self.found[at..] {
                if o.field as usize == key_index {
                    key = o.value;
                }
            }
            entries.push((map_key(key_field, key)?, at..self.found.len()));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        out.open(JsonKind::Object);
        for (i, (key, range)) in entries.iter().enumerate() {
            let superseded = entries.get(i + 1).is_some_and(|next| &next.0 == key);
            let Some(inner) = projection.member(key).filter(|_| !superseded) else {
                continue;
            };
            let parts: Vec<Wire<'b>> = self.found[range.clone()]
                .iter()
                .filter(|o| o.field as usize == value_index)
                .map(|o| o.value)
                .collect();
            out.name(key);
            match value_field.kind {
                FieldKind::Message(m) => {
                    let parts = parts
                        .into_iter()
                        .map(|w| message_bytes(value_field, w))
                        .collect::<Result<Vec<_>, _>>()?;
                    self.message(m, &parts, inner, out, depth)?;
                }
                _ => {
                    let mut text = None;
                    for w in parts {
                        text = Some(scalar_text(value_field, w)?);
                    }
                    write_text(out, &text.unwrap_or_else(|| value_field.default.clone()))?;
                }
            }
        }
        out.close();
        Ok(())
    }

    /// A well-known type as its value (the last value of each of its fields).
    fn well_known(
        &self,
        plan: &MessagePlan,
        kind: WellKnown,
        start: usize,
        out: &mut Tape,
    ) -> Result<(), DecodeError> {
        let found = &self.found[start..];
        // The field `number`'s last value, checked; its default when absent.
        let text = |number: u32| -> Result<Option<String>, DecodeError> {
            let Some(index) = plan.field(number) else {
                return Ok(None);
            };
            let field = &plan.fields[index];
            let mut text = field.default.clone();
            for o in found.iter().filter(|o| o.field as usize == index) {
                text = scalar_text(field, o.value)?;
            }
            Ok(Some(text))
        };
        let integer = |number: u32| -> Result<i64, DecodeError> {
            Ok(text(number)?.and_then(|t| t.parse().ok()).unwrap_or(0))
        };
        // A string field's last value, straight from the wire.
        let string = |number: u32| -> Result<&str, DecodeError> {
            let Some(index) = plan.field(number) else {
                return Ok("");
            };
            let field = &plan.fields[index];
            let mut last = "";
            for o in found.iter().filter(|o| o.field as usize == index) {
                last = match (&field.kind, o.value) {
                    (FieldKind::String, Wire::Bytes(b)) => std::str::from_utf8(b)
                        .map_err(|e| bad(format!("field {} is not UTF-8: {e}", field.name)))?,
                    (_, other) => return Err(mismatch(field, other)),
                };
            }
            Ok(last)
        };
        match kind {
            WellKnown::Timestamp => {
                let nanos = i128::from(integer(1)?) * 1_000_000_000 + i128::from(integer(2)?);
                out.scalar(|b| values::timestamp(nanos, true, b))
            }
            WellKnown::Duration => {
                let (seconds, nanos) = (integer(1)?, integer(2)?);
                out.scalar(|b| seconds_and_nanos(seconds, nanos, b))
            }
            WellKnown::Wrapper => write_text(out, text(1)?.as_deref().unwrap_or("null")),
            WellKnown::Decimal => {
                let digits = string(1)?;
                out.scalar(|b| decimal_text(digits, b))
            }
            WellKnown::Money => {
                let (code, units, nanos) = (string(1)?, integer(2)?, integer(3)?);
                out.open(JsonKind::Object);
                out.name("currency_code");
                out.scalar(|b| {
                    values::string(code, b);
                    Ok(())
                })?;
                out.name("amount");
                out.scalar(|b| seconds_and_nanos(units, nanos, b))?;
                out.close();
                Ok(())
            }
        }
    }
}

fn write_text(out: &mut Tape, text: &str) -> Result<(), DecodeError> {
    out.scalar(|b| {
        b.extend_from_slice(text.as_bytes());
        Ok(())
    })
}
