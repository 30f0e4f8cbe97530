//! An event a binary decoder read, as a tape: its values in document order,
//! each knowing where its subtree ends, scalars kept as their JSON text in one
//! buffer. The engine shapes it like JSON without JSON text being written
//! and parsed back; one tape is reused for every event of a batch, so
//! decoding allocates nothing once it is warm. Hand-written because it is
//! the hot path: `cargo bench --bench formats` compares the decoded-to-tape
//! path with decoding to JSON text.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy)]
struct Entry {
    kind: JsonKind,
    /// The member's name in `text`, when the parent is an object.
    name: Option<(u32, u32)>,
    /// A scalar's JSON text in `text`.
    span: (u32, u32),
    /// The index past this value's subtree.
    end: u32,
}

/// A decoded event. Writers call [`Tape::name`] before each member of an
/// object, then one of [`Tape::scalar`] or [`Tape::open`] … [`Tape::close`].
#[derive(Debug, Default, Clone)]
pub struct Tape {
    entries: Vec<Entry>,
    text: String,
    /// Where a scalar is written before it joins `text` (checked UTF-8 once).
    scratch: Vec<u8>,
    open: Vec<u32>,
    name: Option<(u32, u32)>,
}

impl Tape {
    pub fn new() -> Tape {
        Tape::default()
    }

    /// `value` written as a decoder would write it (names, then values):
    /// for tests and tools that start from JSON.
    pub fn of_json(value: &serde_json::Value) -> Tape {
        fn write(tape: &mut Tape, value: &serde_json::Value) {
            match value {
                serde_json::Value::Object(members) => {
                    tape.open(JsonKind::Object);
                    for (name, member) in members {
                        tape.name(name);
                        write(tape, member);
                    }
                    tape.close();
                }
                serde_json::Value::Array(items) => {
                    tape.open(JsonKind::Array);
                    items.iter().for_each(|item| write(tape, item));
                    tape.close();
                }
                scalar => {
                    // Writing JSON text into a Vec cannot fail.
                    let _ = tape.scalar(|out| serde_json::to_writer(out, scalar));
                }
            }
        }
        let mut tape = Tape::new();
        write(&mut tape, value);
        tape
    }

    /// Empties the tape, keeping its buffers.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.text.clear();
        self.open.clear();
        self.name = None;
    }

    /// Names the next value a member of the open object.
    pub fn name(&mut self, name: &str) {
        let start = self.text.len();
        self.text.push_str(name);
        self.name = Some((offset(start), offset(self.text.len())));
    }

    /// A scalar, whose JSON text `write` appends (its kind is read from the
    /// text; text that is not UTF-8, which no JSON writer makes, is null);
    /// `write`'s error leaves the tape to be cleared.
    pub fn scalar<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.scratch.clear();
        write(&mut self.scratch)?;
        let start = self.text.len();
        self.text
            .push_str(std::str::from_utf8(&self.scratch).unwrap_or("null"));
        let span = (offset(start), offset(self.text.len()));
        let kind = JsonKind::of(&self.text[start..]);
        self.push(kind, span);
        Ok(())
    }

    /// Opens an object or an array; its members follow until [`Tape::close`].
    pub fn open(&mut self, kind: JsonKind) {
        self.open.push(offset(self.entries.len()));
        self.push(kind, (0, 0));
    }

    pub fn close(&mut self) {
        if let Some(at) = self.open.pop() {
            let end = offset(self.entries.len());
            if let Some(entry) = self.entries.get_mut(at as usize) {
                entry.end = end;
            }
        }
    }

    fn push(&mut self, kind: JsonKind, span: (u32, u32)) {
        let index = self.entries.len();
        self.entries.push(Entry {
            kind,
            name: self.name.take(),
            span,
            end: offset(index + 1),
        });
    }

    /// The first value written, when there is one.
    pub fn root(&self) -> Option<TapeNode<'_>> {
        (!self.entries.is_empty()).then_some(TapeNode {
            tape: self,
            index: 0,
        })
    }

    /// The whole event as JSON text.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        if let Some(root) = self.root() {
            root.write_json(out);
        }
    }

    fn str(&self, (start, end): (u32, u32)) -> &str {
        self.text.get(start as usize..end as usize).unwrap_or("")
    }
}

fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// One value on a tape.
#[derive(Debug, Clone, Copy)]
pub struct TapeNode<'a> {
    tape: &'a Tape,
    index: u32,
}

impl<'a> TapeNode<'a> {
    fn entry(self) -> Entry {
        self.tape.entries[self.index as usize]
    }

    pub fn kind(self) -> JsonKind {
        self.entry().kind
    }

    /// The value as exact JSON text (borrowed for a scalar).
    pub fn text(self) -> Cow<'a, str> {
        match self.kind() {
            JsonKind::Object | JsonKind::Array => {
                let mut out = Vec::new();
                self.write_json(&mut out);
                Cow::Owned(String::from_utf8(out).unwrap_or_default())
            }
            _ => Cow::Borrowed(self.tape.str(self.entry().span)),
        }
    }

    /// The member named `token` (the last one, when a name repeats) or the
    /// element at index `token`.
    pub fn get(self, token: &str) -> Option<TapeNode<'a>> {
        match self.kind() {
            JsonKind::Object => self
                .children()
                .filter(|c| c.member_name() == Some(token))
                .last(),
            JsonKind::Array => self.children().nth(parse_index(token)?),
            _ => None,
        }
    }

    /// The elements, when this is an array.
    pub fn elements(self) -> Option<Vec<TapeNode<'a>>> {
        (self.kind() == JsonKind::Array).then(|| self.children().collect())
    }

    /// The values directly inside this one.
    pub fn children(self) -> impl Iterator<Item = TapeNode<'a>> {
        let end = self.entry().end;
        let tape = self.tape;
        let mut next = self.index + 1;
        std::iter::from_fn(move || {
            (next < end).then(|| {
                let child = TapeNode { tape, index: next };
                next = child.entry().end;
                child
            })
        })
    }

    /// Its name, when it is a member of an object.
    pub fn member_name(self) -> Option<&'a str> {
        self.entry().name.map(|span| self.tape.str(span))
    }

    /// The value as JSON text, appended to `out`.
    pub fn write_json(self, out: &mut Vec<u8>) {
        let entry = self.entry();
        let (open, close) = match entry.kind {
            JsonKind::Object => (b'{', b'}'),
            JsonKind::Array => (b'[', b']'),
            _ => {
                out.extend_from_slice(self.tape.str(entry.span).as_bytes());
                return;
            }
        };
        out.push(open);
        for (i, child) in self.children().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if entry.kind == JsonKind::Object {
                // Writing JSON text into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *out, child.member_name().unwrap_or(""));
                out.push(b':');
            }
            child.write_json(out);
        }
        out.push(close);
    }
}

/// The JSON type of a value, from its first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl JsonKind {
    pub fn of(text: &str) -> JsonKind {
        match text.trim_start().as_bytes().first() {
            Some(b'"') => JsonKind::String,
            Some(b't' | b'f') => JsonKind::Bool,
            Some(b'[') => JsonKind::Array,
            Some(b'{') => JsonKind::Object,
            Some(b'n') | None => JsonKind::Null,
            Some(_) => JsonKind::Number,
        }
    }

    /// "a string", "a number", … for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            JsonKind::Null => "null",
            JsonKind::Bool => "a boolean",
            JsonKind::Number => "a number",
            JsonKind::String => "a string",
            JsonKind::Array => "an array",
            JsonKind::Object => "an object",
        }
    }
}

/// An array index as RFC 6901 writes it: digits, no leading zero.
pub fn parse_index(token: &str) -> Option<usize> {
    if token.is_empty() || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    if !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests;
