//! JSON pointers (RFC 6901) that address either the current array element or,
//! with a leading `^`, the whole event.

use matview_tape::parse_index;
use serde_json::Value;

/// What a path is resolved against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The exploded element (or the event, when nothing is exploded).
    Element,
    /// The whole event.
    Event,
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPointer {
    pub scope: Scope,
    tokens: Vec<String>,
    text: String,
}

/// Why a path does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointerError {
    #[error("must start with '/' (or '^/' for the whole event)")]
    NoLeadingSlash,
    #[error("has '~' not followed by 0 or 1 (write '~0' for '~' and '~1' for '/')")]
    BadEscape,
}

impl FieldPointer {
    pub fn parse(text: &str) -> Result<Self, PointerError> {
        let (scope, rest) = match text.strip_prefix('^') {
            Some(rest) => (Scope::Event, rest),
            None => (Scope::Element, text),
        };
        let rest = rest.strip_prefix('/').ok_or(PointerError::NoLeadingSlash)?;
        let tokens = rest
            .split('/')
            .map(unescape)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FieldPointer {
            scope,
            tokens,
            text: text.to_string(),
        })
    }

    /// The path as written in the spec.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The unescaped reference tokens.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The pointed-at value, from the event's or the element's level by scope.
    pub fn resolve_in<'a, L: super::node::EventLevel<'a>>(
        &self,
        event: &L,
        element: &L,
    ) -> Option<L::Node> {
        let level = match self.scope {
            Scope::Event => event,
            Scope::Element => element,
        };
        super::node::resolve(level, &self.tokens)
    }

    pub fn resolve<'v>(&self, event: &'v Value, element: &'v Value) -> Option<&'v Value> {
        let mut current = match self.scope {
            Scope::Event => event,
            Scope::Element => element,
        };
        for token in &self.tokens {
            current = match current {
                Value::Object(map) => map.get(token.as_str())?,
                Value::Array(items) => items.get(parse_index(token)?)?,
                _ => return None,
            };
        }
        Some(current)
    }
}

fn unescape(token: &str) -> Result<String, PointerError> {
    if !token.contains('~') {
        return Ok(token.to_string());
    }
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return Err(PointerError::BadEscape),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resolves_element_and_event_scopes() {
        let event = json!({"userId": "u1", "items": [{"price": 3}], "a/b": {"~x": 7}});
        let element = &event["items"][0];
        let price = FieldPointer::parse("/price").expect("parses");
        assert_eq!(price.resolve(&event, element), Some(&json!(3)));
        let user = FieldPointer::parse("^/userId").expect("parses");
        assert_eq!(user.resolve(&event, element), Some(&json!("u1")));
        let escaped = FieldPointer::parse("^/a~1b/~0x").expect("parses");
        assert_eq!(escaped.resolve(&event, element), Some(&json!(7)));
        let index = FieldPointer::parse("^/items/0/price").expect("parses");
        assert_eq!(index.resolve(&event, element), Some(&json!(3)));
        assert_eq!(
            FieldPointer::parse("^/items/01")
                .expect("parses")
                .resolve(&event, element),
            None
        );
        assert_eq!(
            FieldPointer::parse("/nope")
                .expect("parses")
                .resolve(&event, element),
            None
        );
    }

    #[test]
    fn rejects_bad_paths() {
        assert_eq!(
            FieldPointer::parse("price"),
            Err(PointerError::NoLeadingSlash)
        );
        assert_eq!(
            FieldPointer::parse("^price"),
            Err(PointerError::NoLeadingSlash)
        );
        assert_eq!(FieldPointer::parse("/a~2"), Err(PointerError::BadEscape));
    }
}
