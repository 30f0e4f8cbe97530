//! An event a binary decoder read, as a tape: its values in document order,
//! each knowing where its subtree ends, scalars kept as their JSON text in one
//! buffer. Shaping reads it like JSON (see [`super::node`]) without JSON
//! text being written and parsed back; one tape is reused for every event of
//! a batch, so decoding allocates nothing once it is warm. Hand-written
//! because it is the hot path: `cargo bench --bench formats` compares the
//! decoded-to-tape path with decoding to JSON text.

use std::borrow::Cow;

use super::json::{JsonKind, RawJson, parse_index};
use super::node::{EventLevel, EventNode};

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

    /// The values directly inside this one.
    fn children(self) -> impl Iterator<Item = TapeNode<'a>> {
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

    fn member_name(self) -> Option<&'a str> {
        self.entry().name.map(|span| self.tape.str(span))
    }

    fn write_json(self, out: &mut Vec<u8>) {
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

impl<'a> EventNode<'a> for TapeNode<'a> {
    type Level = TapeNode<'a>;

    fn kind(self) -> JsonKind {
        self.entry().kind
    }

    fn level(self) -> TapeNode<'a> {
        self
    }

    fn text(self) -> Cow<'a, str> {
        match self.kind() {
            JsonKind::Object | JsonKind::Array => {
                let mut out = Vec::new();
                self.write_json(&mut out);
                Cow::Owned(String::from_utf8(out).unwrap_or_default())
            }
            _ => Cow::Borrowed(self.tape.str(self.entry().span)),
        }
    }

    fn to_raw(self) -> RawJson {
        RawJson::from_text(&self.text())
    }
}

impl<'a> EventLevel<'a> for TapeNode<'a> {
    type Node = TapeNode<'a>;

    fn get(&self, token: &str) -> Option<TapeNode<'a>> {
        match self.kind() {
            JsonKind::Object => self
                .children()
                .filter(|c| c.member_name() == Some(token))
                .last(),
            JsonKind::Array => self.children().nth(parse_index(token)?),
            _ => None,
        }
    }

    fn elements(&self) -> Option<Vec<TapeNode<'a>>> {
        (self.kind() == JsonKind::Array).then(|| self.children().collect())
    }
}

#[cfg(test)]
#[path = "tape_tests.rs"]
pub(crate) mod tests;
