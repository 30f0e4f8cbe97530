//! What shaping reads of an event, whatever form it arrived in: JSON text
//! (read level by level as borrowed slices) or a binary decoder's
//! [`Tape`](super::tape::Tape). Shaping is written once over these two
//! traits, so a decoded Avro or Protobuf event is never written out as JSON
//! text only to be parsed back.

use std::borrow::Cow;

use serde_json::value::RawValue;

use super::json::{JsonKind, Level, RawJson, parse_index};

/// One value of an event.
pub trait EventNode<'a>: Copy {
    /// The value's members (or elements), read once and then looked up.
    type Level: EventLevel<'a, Node = Self>;

    fn kind(self) -> JsonKind;

    fn level(self) -> Self::Level;

    /// The value as exact JSON text.
    fn text(self) -> Cow<'a, str>;

    /// The value kept as a record's field.
    fn to_raw(self) -> RawJson;

    /// The unescaped string, when this is one.
    fn as_str(self) -> Option<Cow<'a, str>> {
        if self.kind() != JsonKind::String {
            return None;
        }
        match self.text() {
            Cow::Borrowed(text) => serde_json::from_str::<Cow<'a, str>>(text).ok(),
            Cow::Owned(text) => serde_json::from_str::<String>(&text).ok().map(Cow::Owned),
        }
    }
}

/// An object's members or an array's elements.
pub trait EventLevel<'a> {
    type Node: EventNode<'a>;

    /// The member named `token` (the last one, when a name repeats) or the
    /// element at index `token`.
    fn get(&self, token: &str) -> Option<Self::Node>;

    /// The elements, when this is an array.
    fn elements(&self) -> Option<Vec<Self::Node>>;
}

/// Follows `tokens` from an already read level.
pub fn resolve<'a, L: EventLevel<'a>>(level: &L, tokens: &[String]) -> Option<L::Node> {
    let (first, rest) = tokens.split_first()?;
    let mut node = level.get(first)?;
    for token in rest {
        node = node.level().get(token)?;
    }
    Some(node)
}

impl<'a> EventNode<'a> for &'a RawValue {
    type Level = Level<'a>;

    fn kind(self) -> JsonKind {
        JsonKind::of(self.get())
    }

    fn level(self) -> Level<'a> {
        Level::of(self)
    }

    fn text(self) -> Cow<'a, str> {
        Cow::Borrowed(self.get())
    }

    fn to_raw(self) -> RawJson {
        RawJson::borrowed(self)
    }
}

impl<'a> EventLevel<'a> for Level<'a> {
    type Node = &'a RawValue;

    fn get(&self, token: &str) -> Option<&'a RawValue> {
        match self {
            Level::Object(members) => members
                .iter()
                .rev()
                .find(|(name, _)| name.as_ref() == token)
                .map(|(_, v)| *v),
            Level::Array(items) => items.get(parse_index(token)?).copied(),
            Level::Scalar => None,
        }
    }

    fn elements(&self) -> Option<Vec<&'a RawValue>> {
        match self {
            Level::Array(items) => Some(items.clone()),
            _ => None,
        }
    }
}
