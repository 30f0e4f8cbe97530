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
        let mut reader = Reader {
            input: body,
            entries: 0,
            names: &self.names,
        };
        reader.value(&self.root, projection, out, 0)?;
        if !reader.input.is_empty() {
            return Err(bad(format!(
                "{} bytes left after the value: the body was not written with this schema",
                reader.input.len()
            )));
        }
        Ok(())
    }
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
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(bad(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        match schema {
            Schema::Null => out.extend_from_slice(b"null"),
            Schema::Boolean => match self.take(1)? {
                [0] => out.extend_from_slice(b"false"),
                [1] => out.extend_from_slice(b"true"),
                other => return Err(bad(format!("boolean byte {:?} is not 0 or 1", other))),
            },
            Schema::Int => values::integer(i64::from(self.int()?), out),
            Schema::Long => values::integer(self.long()?, out),
            Schema::Float => values::float32(f32::from_le_bytes(self.array()?), out),
            Schema::Double => values::float64(f64::from_le_bytes(self.array()?), out),
            Schema::Bytes => values::base64(self.bytes()?, out),
            Schema::String => values::string(self.string()?, out),
            Schema::Fixed(f) => values::base64(self.take(f.size)?, out),
            Schema::Enum(e) => {
                let index = self.int()?;
                let symbol = usize::try_from(index)
                    .ok()
                    .and_then(|i| e.symbols.get(i))
                    .ok_or_else(|| {
                        bad(format!("enum index {index} is not a symbol of {}", e.name))
                    })?;
                values::string(symbol, out)
            }
            Schema::Array(a) => self.entries(out, *b"[]", |r, out| {
                r.value(&a.items, projection, out, depth + 1).map(|()| true)
            })?,
            Schema::Map(m) => self.entries(out, *b"{}", |r, out| {
                let key = r.string()?;
                let Some(inner) = projection.member(key) else {
                    r.skip(&m.types, depth + 1)?;
                    return Ok(false);
                };
                values::string(key, out);
                out.push(b':');
                r.value(&m.types, inner, out, depth + 1).map(|()| true)
            })?,
            Schema::Union(u) => {
                let branch = self.branch(u.variants())?;
                self.value(branch, projection, out, depth + 1)?;
            }
            Schema::Record(r) => self.record(r, projection, out, depth)?,
            Schema::Ref { name } => {
                let named = self.named(name)?;
                self.value(named, projection, out, depth + 1)?;
            }
            logical => self.logical(logical, out)?,
        }
        Ok(())
    }

    /// An array or a map: blocks of entries until an empty one, each entry
    /// written by `entry` (which says whether it wrote one), between
    /// `brackets` and separated by commas.
    fn entries(
        &mut self,
        out: &mut Vec<u8>,
        [open, close]: [u8; 2],
        mut entry: impl FnMut(&mut Self, &mut Vec<u8>) -> Result<bool, DecodeError>,
    ) -> Result<(), DecodeError> {
        out.push(open);
        let mut first = true;
        loop {
            let count = self.block()?;
            if count == 0 {
                break;
            }
            for _ in 0..count {
                let before = out.len();
                if !first {
                    out.push(b',');
                }
                if entry(self, out)? {
                    first = false;
                } else {
                    out.truncate(before);
                }
            }
        }
        out.push(close);
        Ok(())
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
            Schema::Array(a) => self.entries(&mut Vec::new(), *b"[]", |r, _| {
                r.skip(&a.items, depth + 1).map(|()| false)
            })?,
            Schema::Map(m) => self.entries(&mut Vec::new(), *b"{}", |r, _| {
                r.bytes()?;
                r.skip(&m.types, depth + 1).map(|()| false)
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
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), DecodeError> {
        out.push(b'{');
        let mut first = true;
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
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            values::string(&field.name, out);
            out.push(b':');
            self.value(schema, inner, out, depth + 1)?;
        }
        out.push(b'}');
        Ok(())
    }

    /// The logical types: decimals, uuids, dates, times, durations.
    fn logical(&mut self, schema: &Schema, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        const MICROS: i128 = 1_000;
        const MILLIS: i128 = 1_000_000;
        match schema {
            Schema::Decimal(d) => {
                let unscaled = match &d.inner {
                    InnerDecimalSchema::Bytes => self.bytes()?,
                    InnerDecimalSchema::Fixed(f) => self.take(f.size)?,
                };
                values::decimal(unscaled, d.scale, out)
            }
            Schema::BigDecimal => values::big_decimal(self.bytes()?, out),
            Schema::Uuid(UuidSchema::String) => {
                values::string(self.string()?, out);
                Ok(())
            }
            Schema::Uuid(UuidSchema::Bytes) => values::uuid(self.bytes()?, out),
            Schema::Uuid(UuidSchema::Fixed(f)) => values::uuid(self.take(f.size)?, out),
            Schema::Date => values::date(self.int()?, out),
            Schema::TimeMillis => values::time_of_day(i64::from(self.int()?), 1_000, out),
            Schema::TimeMicros => values::time_of_day(self.long()?, 1_000_000, out),
            Schema::TimestampMillis => {
                values::timestamp(i128::from(self.long()?) * MILLIS, true, out)
            }
            Schema::TimestampMicros => {
                values::timestamp(i128::from(self.long()?) * MICROS, true, out)
            }
            Schema::TimestampNanos => values::timestamp(i128::from(self.long()?), true, out),
            Schema::LocalTimestampMillis => {
                values::timestamp(i128::from(self.long()?) * MILLIS, false, out)
            }
            Schema::LocalTimestampMicros => {
                values::timestamp(i128::from(self.long()?) * MICROS, false, out)
            }
            Schema::LocalTimestampNanos => values::timestamp(i128::from(self.long()?), false, out),
            Schema::Duration(_) => {
                values::duration(self.take(12)?, out);
                Ok(())
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
