//! Record pointers that no event can satisfy because of the explode target:
//! a whole-event path (`^/…`) that names the exploded array where a key or a
//! scalar is declared, or that goes into the array by a field name (arrays
//! are indexed by numbers; the element's fields are `/name`).

use super::pointer::{FieldPointer, Scope};
use super::rules::ValueKind;

/// What is contradictory about `pointer`, used as a key or id (`kind` is
/// `None`) or as a field of `kind`, when events explode at `explode`.
pub(super) fn contradiction(
    explode: &FieldPointer,
    pointer: &FieldPointer,
    kind: Option<ValueKind>,
) -> Option<String> {
    if pointer.scope != Scope::Event {
        return None;
    }
    let (target, path) = (explode.tokens(), pointer.tokens());
    if !path.starts_with(target) {
        return None;
    }
    match path.get(target.len()) {
        None => match kind {
            None => Some(format!(
                "{} is the exploded array, never a string or a number; point at a field of the element (/name) or of the event (^/name)",
                pointer.as_str()
            )),
            Some(ValueKind::Any) => None,
            Some(k) => Some(format!(
                "{} is the exploded array, never {}; point at a field of the element (/name)",
                pointer.as_str(),
                k.describe()
            )),
        },
        Some(token) if !token.bytes().all(|b| b.is_ascii_digit()) || token.is_empty() => {
            let rest: Vec<&str> = path[target.len()..].iter().map(String::as_str).collect();
            Some(format!(
                "{} goes into the exploded array by the name {token:?}, which no array has; write /{} for the element's field",
                pointer.as_str(),
                rest.join("/")
            ))
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> FieldPointer {
        FieldPointer::parse(text).expect("pointer")
    }

    #[test]
    fn names_what_no_event_can_satisfy() {
        let items = p("/items");
        assert!(contradiction(&items, &p("^/items"), None).is_some());
        assert!(contradiction(&items, &p("^/items"), Some(ValueKind::Number)).is_some());
        assert!(
            contradiction(&items, &p("^/items/price"), Some(ValueKind::Number))
                .is_some_and(|m| m.contains("write /price"))
        );
        for fine in ["^/userId", "/price", "^/items/0/price", "^/itemsCount"] {
            assert_eq!(
                contradiction(&items, &p(fine), Some(ValueKind::Number)),
                None,
                "{fine}"
            );
        }
        assert_eq!(
            contradiction(&items, &p("^/items"), Some(ValueKind::Any)),
            None
        );
    }
}
