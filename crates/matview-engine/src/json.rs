//! JSON read without building a tree and without floats: an event is
//! validated once, then only the pointed-at members are looked up, level by
//! level, as borrowed slices of the event's text. A number stays the exact
//! token the producer wrote, so it reaches the exact decimal (and the served
//! item) digit for digit.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::decimal::{Decimal, DecimalError};
pub use matview_tape::{JsonKind, parse_index};

/// The members of one object or array level, borrowed from the text.
pub enum Level<'a> {
    Object(Vec<(Cow<'a, str>, &'a RawValue)>),
    Array(Vec<&'a RawValue>),
    Scalar,
}

impl<'a> Level<'a> {
    /// Reads the members of `node` (one level deep; deeper levels stay text).
    pub fn of(node: &'a RawValue) -> Level<'a> {
        let text = node.get();
        let parsed = match JsonKind::of(text) {
            JsonKind::Object => {
                serde_json::from_str::<Members<'a>>(text).map(|m| Level::Object(m.0))
            }
            JsonKind::Array => serde_json::from_str::<Vec<&'a RawValue>>(text).map(Level::Array),
            _ => return Level::Scalar,
        };
        // The whole event was validated already: a level always parses.
        parsed.unwrap_or(Level::Scalar)
    }
}

/// An object's members in order, names unescaped only when they need it.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v)))
            }
        }
        d.deserialize_str(NameVisitor)
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
                    members.push((name, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(members))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Members<'de>, A::Error> {
                Err(de::Error::custom("expected an object"))
            }
        }
        d.deserialize_map(MembersVisitor)
    }
}

/// A JSON value kept as its exact text: what a record stores of a field and
/// what an item serves. Numbers are never read into a float.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    pub fn null() -> RawJson {
        RawJson::from_text("null")
    }

    /// The exact decimal as a JSON number.
    pub fn number(value: Decimal) -> RawJson {
        RawJson::from_text(&value.to_string())
    }

    /// A string as a JSON string.
    pub fn string(value: &str) -> RawJson {
        RawJson::from_text(&serde_json::Value::from(value).to_string())
    }

    /// `text` must be JSON; callers pass what they just wrote or read.
    pub(crate) fn from_text(text: &str) -> RawJson {
        match RawValue::from_string(text.to_string()) {
            Ok(raw) => RawJson(raw),
            Err(_) => RawJson::null(),
        }
    }

    pub fn borrowed(raw: &RawValue) -> RawJson {
        RawJson(raw.to_owned())
    }

    pub fn text(&self) -> &str {
        self.0.get()
    }

    pub fn kind(&self) -> JsonKind {
        JsonKind::of(self.text())
    }

    /// The unescaped string, when this is one.
    pub fn as_string(&self) -> Option<Cow<'_, str>> {
        (self.kind() == JsonKind::String)
            .then(|| serde_json::from_str::<Cow<'_, str>>(self.text()).ok())
            .flatten()
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.text() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }

    /// The exact decimal of a number; `None` when this is not a number.
    pub fn as_decimal(&self) -> Option<Result<Decimal, DecimalError>> {
        (self.kind() == JsonKind::Number).then(|| Decimal::parse_exact(self.text()))
    }
}

/// A tree value as text (numbers as serde_json writes them).
impl From<serde_json::Value> for RawJson {
    fn from(value: serde_json::Value) -> RawJson {
        RawJson::from_text(&value.to_string())
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &RawJson) -> bool {
        self.text() == other.text()
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

impl schemars::JsonSchema for RawJson {
    fn schema_name() -> Cow<'static, str> {
        "AnyValue".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Any JSON value, as the event carried it; numbers keep every digit."
        })
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
