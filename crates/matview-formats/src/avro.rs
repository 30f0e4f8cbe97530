//! Avro binary decoded straight into JSON text, guided by the writer's
//! schema. apache-avro parses the schema and resolves named types (also
//! from referenced schemas); reading the body is done here rather than
//! through the crate's `Value` tree because the JSON wants the schema beside
//! each value anyway (a decimal's scale, a union's null branch as absence)
//! and skipping the tree saves an allocation per field (the benchmark
//! `cargo bench -p matview-formats` compares the two).

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{InnerDecimalSchema, RecordSchema, UuidSchema};

use matview_tape::JsonKind;
use matview_tape::Tape;

use super::avro_values as values;
use super::wire::read_long;
use super::{DecodeError, Projection, SchemaError};

/// Deeper nesting than this is refused: a recursive schema must not let a
/// message exhaust the stack.
const MAX_DEPTH: usize = 64;
/// Array and map entries in one message, at most (entries of a zero-byte
/// type, such as `null`, cost no input, so the input size is no bound).
const MAX_ENTRIES: usize = 1 << 20;

/// A writer schema, ready to decode the bodies written with it.
#[derive(Debug, Clone)]
pub struct AvroDecoder {
    root: Schema,
    /// Named types by full name, from the schema and its references.
    names: HashMap<String, Schema>,
}

impl AvroDecoder {
    /// Parses a schema and the schemas it references (texts, in any order).
    pub fn new(id: u32, schema: &str, references: &[String]) -> Result<AvroDecoder, SchemaError> {
        let invalid = |e: apache_avro::Error| SchemaError::Invalid {
            id,
            kind: "Avro",
            detail: e.to_string(),
        };
        let (root, referenced) = if references.is_empty() {
            (Schema::parse_str(schema).map_err(invalid)?, Vec::new())
        } else {
            Schema::parse_str_with_list(schema, references).map_err(invalid)?
        };
        let mut names = HashMap::new();
        for s in referenced.iter().chain(std::iter::once(&root)) {
            collect_names(s, &mut names);
        }
        Ok(AvroDecoder { root, names })
    }

    /// The JSON form of this schema's values.
    pub fn shape(&self) -> super::Shape {
        super::shape::avro_shape(&self.root, &self.names, &mut Default::default())
    }

    /// Appends the body as JSON to `out`; the whole body must be read.
    pub fn to_json(&self, body: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        self.to_json_projected(body, &Projection::All, out)
    }

    /// [`Self::to_json`] writing only the members `projection` keeps (the
    /// rest is read past, so a bad body is refused all the same).
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

    /// The body onto `tape` (cleared first), what `projection` keeps of it:
    /// what the engine shapes.
    pub fn to_tape(
        &self,
        body: &[u8],
        projection: &Projection,
        tape: &mut Tape,
    ) -> Result<(), DecodeError> {
        tape.clear();
        let mut reader = Reader {
            input: body,
            entries: 0,
            names: &self.names,
        };
        reader.value(&self.root, projection, tape, 0)?;
        if !reader.input.is_empty() {
            return Err(bad(format!(
                "{} bytes left after the value: the body was not written with this schema",
                reader.input.len()
            )));
        }
        Ok(())
    }
}

/// A scalar whose writing cannot fail.
fn text(out: &mut Tape, write: impl FnOnce(&mut Vec<u8>)) -> Result<(), DecodeError> {
    out.scalar(|b| {
        write(b);
        Ok(())
    })
}

fn bad(detail: impl Into<String>) -> DecodeError {
    DecodeError::BadEncoding(detail.into())
}

fn collect_names(schema: &Schema, names: &mut HashMap<String, Schema>) {
    match schema {
        Schema::Record(r) => {
            names.insert(r.name.fullname(None), schema.clone());
            for f in &r.fields {
                collect_names(&f.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(e.name.fullname(None), schema.clone());
        }
        Schema::Fixed(f) | Schema::Duration(f) => {
            names.insert(f.name.fullname(None), schema.clone());
        }
        Schema::Decimal(d) => {
            if let InnerDecimalSchema::Fixed(f) = &d.inner {
                names.insert(f.name.fullname(None), schema.clone());
            }
        }
        Schema::Uuid(UuidSchema::Fixed(f)) => {
            names.insert(f.name.fullname(None), schema.clone());
        }
        Schema::Array(a) => collect_names(&a.items, names),
        Schema::Map(m) => collect_names(&m.types, names),
        Schema::Union(u) => u.variants().iter().for_each(|v| collect_names(v, names)),
        _ => {}
    }
}

struct Reader<'a> {
    input: &'a [u8],
    entries: usize,
    names: &'a HashMap<String, Schema>,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.input.len() {
            return Err(bad(format!(
                "truncated: {n} bytes wanted, {} left",
                self.input.len()
            )));
        }
        let (head, rest) = self.input.split_at(n);
        self.input = rest;
        Ok(head)
    }

    fn long(&mut self) -> Result<i64, DecodeError> {
        read_long(&mut self.input)
    }

    fn int(&mut self) -> Result<i32, DecodeError> {
        let long = self.long()?;
        i32::try_from(long).map_err(|_| bad(format!("{long} does not fit an Avro int")))
    }

    fn length(&mut self) -> Result<usize, DecodeError> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| bad(format!("negative length {n}")))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.length()?;
        self.take(n)
    }

    fn string(&mut self) -> Result<&'a str, DecodeError> {
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes).map_err(|e| bad(format!("a string is not UTF-8: {e}")))
    }

    /// The entry count of the next array or map block (0 ends the value).
    fn block(&mut self) -> Result<usize, DecodeError> {
        let count = self.long()?;
        if count < 0 {
            self.long()?; // the block's size in bytes, for skipping; not needed
        }
        let count = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
        self.entries = self.entries.saturating_add(count);
        if self.entries > MAX_ENTRIES {
            return Err(bad(format!(
                "more than {MAX_ENTRIES} array or map entries in one event"
            )));
        }
        Ok(count)
    }

    /// `N` bytes, as an array.
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.first_chunk::<N>().copied().unwrap_or([0; N]))
    }

    fn value(
        &mut self,
        schema: &Schema,
        projection: &Projection,
        out: &mut Tape,
        depth: usize,
    ) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(bad(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        match schema {
            Schema::Null => text(out, |b| b.extend_from_slice(b"null")),
            Schema::Boolean => match self.take(1)? {
                [0] => text(out, |b| b.extend_from_slice(b"false")),
                [1] => text(out, |b| b.extend_from_slice(b"true")),
                other => Err(bad(format!("boolean byte {:?} is not 0 or 1", other))),
            },
            Schema::Int => {
                let v = i64::from(self.int()?);
                text(out, |b| values::integer(v, b))
            }
            Schema::Long => {
                let v = self.long()?;
                text(out, |b| values::integer(v, b))
            }
            Schema::Float => {
                let v = f32::from_le_bytes(self.array()?);
                text(out, |b| values::float32(v, b))
            }
            Schema::Double => {
                let v = f64::from_le_bytes(self.array()?);
                text(out, |b| values::float64(v, b))
            }
            Schema::Bytes => {
                let v = self.bytes()?;
                text(out, |b| values::base64(v, b))
            }
            Schema::String => {
                let v = self.string()?;
                text(out, |b| values::string(v, b))
            }
            Schema::Fixed(f) => {
                let v = self.take(f.size)?;
                text(out, |b| values::base64(v, b))
            }
            Schema::Enum(e) => {
                let index = self.int()?;
                let symbol = usize::try_from(index)
                    .ok()
                    .and_then(|i| e.symbols.get(i))
                    .ok_or_else(|| {
                        bad(format!("enum index {index} is not a symbol of {}", e.name))
                    })?;
                text(out, |b| values::string(symbol, b))
            }
            Schema::Array(a) => {
                out.open(JsonKind::Array);
                self.entries(|r| r.value(&a.items, projection, out, depth + 1))?;
                out.close();
                Ok(())
            }
            Schema::Map(m) => {
                out.open(JsonKind::Object);
                self.entries(|r| {
                    let key = r.string()?;
                    let Some(inner) = projection.member(key) else {
                        return r.skip(&m.types, depth + 1);
                    };
                    out.name(key);
                    r.value(&m.types, inner, out, depth + 1)
                })?;
                out.close();
                Ok(())
            }
            Schema::Union(u) => {
                let branch = self.branch(u.variants())?;
                self.value(branch, projection, out, depth + 1)
            }
            Schema::Record(r) => self.record(r, projection, out, depth),
            Schema::Ref { name } => {
                let named = self.named(name)?;
                self.value(named, projection, out, depth + 1)
            }
            logical => self.logical(logical, out),
        }
    }

    /// An array or a map: blocks of entries until an empty one, each read
    /// by `entry`.
    fn entries(
        &mut self,
        mut entry: impl FnMut(&mut Self) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        loop {
            let count = self.block()?;
            if count == 0 {
                return Ok(());
            }
            for _ in 0..count {
                entry(self)?;
            }
        }
    }

    fn named(&self, name: &apache_avro::schema::Name) -> Result<&'a Schema, DecodeError> {
        let names = self.names;
        names
            .get(&name.fullname(None))
            .ok_or_else(|| bad(format!("the schema names {name} but does not define it")))
    }

    /// Reads past a value without writing it: a member the view does not
    /// address (its bytes are still checked to be there).
    fn skip(&mut self, schema: &Schema, depth: usize) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(bad(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        match schema {
            Schema::Null => {}
            Schema::Boolean => {
                self.take(1)?;
            }
            Schema::Int
            | Schema::Long
            | Schema::Enum(_)
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => {
                self.long()?;
            }
            Schema::Float => {
                self.take(4)?;
            }
            Schema::Double => {
                self.take(8)?;
            }
            Schema::Bytes
            | Schema::String
            | Schema::BigDecimal
            | Schema::Uuid(UuidSchema::String | UuidSchema::Bytes) => {
                self.bytes()?;
            }
            Schema::Fixed(f) | Schema::Duration(f) | Schema::Uuid(UuidSchema::Fixed(f)) => {
                self.take(f.size)?;
            }
            Schema::Decimal(d) => match &d.inner {
                InnerDecimalSchema::Bytes => {
                    self.bytes()?;
                }
                InnerDecimalSchema::Fixed(f) => {
                    self.take(f.size)?;
                }
            },
            Schema::Array(a) => self.entries(|r| r.skip(&a.items, depth + 1))?,
            Schema::Map(m) => self.entries(|r| {
                r.bytes()?;
                r.skip(&m.types, depth + 1)
            })?,
            Schema::Union(u) => {
                let branch = self.branch(u.variants())?;
                self.skip(branch, depth + 1)?;
            }
            Schema::Record(r) => {
                for field in &r.fields {
                    self.skip(&field.schema, depth + 1)?;
                }
            }
            Schema::Ref { name } => {
                let named = self.named(name)?;
                self.skip(named, depth + 1)?;
            }
        }
        Ok(())
    }

    fn record(
        &mut self,
        record: &RecordSchema,
        projection: &Projection,
        out: &mut Tape,
        depth: usize,
    ) -> Result<(), DecodeError> {
        out.open(JsonKind::Object);
        for field in &record.fields {
            let Some(inner) = projection.member(&field.name) else {
                self.skip(&field.schema, depth + 1)?;
                continue;
            };
            // A null (or a union's null branch) is an absent member.
            let schema = match &field.schema {
                Schema::Null => continue,
                Schema::Union(u) => match self.branch(u.variants())? {
                    Schema::Null => continue,
                    branch => branch,
                },
                other => other,
            };
            out.name(&field.name);
            self.value(schema, inner, out, depth + 1)?;
        }
        out.close();
        Ok(())
    }

    /// The logical types: decimals, uuids, dates, times, durations.
    fn logical(&mut self, schema: &Schema, out: &mut Tape) -> Result<(), DecodeError> {
        const MICROS: i128 = 1_000;
        const MILLIS: i128 = 1_000_000;
        match schema {
            Schema::Decimal(d) => {
                let unscaled = match &d.inner {
                    InnerDecimalSchema::Bytes => self.bytes()?,
                    InnerDecimalSchema::Fixed(f) => self.take(f.size)?,
                };
                out.scalar(|b| values::decimal(unscaled, d.scale, b))
            }
            Schema::BigDecimal => {
                let v = self.bytes()?;
                out.scalar(|b| values::big_decimal(v, b))
            }
            Schema::Uuid(UuidSchema::String) => {
                let v = self.string()?;
                text(out, |b| values::string(v, b))
            }
            Schema::Uuid(UuidSchema::Bytes) => {
                let v = self.bytes()?;
                out.scalar(|b| values::uuid(v, b))
            }
            Schema::Uuid(UuidSchema::Fixed(f)) => {
                let v = self.take(f.size)?;
                out.scalar(|b| values::uuid(v, b))
            }
            Schema::Date => {
                let v = self.int()?;
                out.scalar(|b| values::date(v, b))
            }
            Schema::TimeMillis => {
                let v = i64::from(self.int()?);
                out.scalar(|b| values::time_of_day(v, 1_000, b))
            }
            Schema::TimeMicros => {
                let v = self.long()?;
                out.scalar(|b| values::time_of_day(v, 1_000_000, b))
            }
            Schema::TimestampMillis => {
                let nanos = i128::from(self.long()?) * MILLIS;
                out.scalar(|b| values::timestamp(nanos, true, b))
            }
            Schema::TimestampMicros => {
                let nanos = i128::from(self.long()?) * MICROS;
                out.scalar(|b| values::timestamp(nanos, true, b))
            }
            Schema::TimestampNanos => {
                let nanos = i128::from(self.long()?);
                out.scalar(|b| values::timestamp(nanos, true, b))
            }
            Schema::LocalTimestampMillis => {
                let nanos = i128::from(self.long()?) * MILLIS;
                out.scalar(|b| values::timestamp(nanos, false, b))
            }
            Schema::LocalTimestampMicros => {
                let nanos = i128::from(self.long()?) * MICROS;
                out.scalar(|b| values::timestamp(nanos, false, b))
            }
            Schema::LocalTimestampNanos => {
                let nanos = i128::from(self.long()?);
                out.scalar(|b| values::timestamp(nanos, false, b))
            }
            Schema::Duration(_) => {
                let v = self.take(12)?;
                text(out, |b| values::duration(v, b))
            }
            other => Err(bad(format!("the schema type {other:?} is not read"))),
        }
    }

    fn branch<'s>(&mut self, variants: &'s [Schema]) -> Result<&'s Schema, DecodeError> {
        let index = self.long()?;
        usize::try_from(index)
            .ok()
            .and_then(|i| variants.get(i))
            .ok_or_else(|| {
                bad(format!(
                    "union branch {index} is not one of its {} branches",
                    variants.len()
                ))
            })
    }
}
