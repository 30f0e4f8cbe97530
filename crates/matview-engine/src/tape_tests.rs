//! A tape reads like the JSON it holds: members, elements, text, and the
//! records shaping makes of it (the engine's other tests shape every event
//! both ways and compare, through [`tape_of`]).

use serde_json::{Value, json};

use super::*;
use crate::node::resolve;

/// `value` written to a tape as a decoder would: names, then values.
pub(crate) fn tape_of(value: &Value) -> Tape {
    fn write(tape: &mut Tape, value: &Value) {
        match value {
            Value::Object(members) => {
                tape.open(JsonKind::Object);
                for (name, member) in members {
                    tape.name(name);
                    write(tape, member);
                }
                tape.close();
            }
            Value::Array(items) => {
                tape.open(JsonKind::Array);
                items.iter().for_each(|item| write(tape, item));
                tape.close();
            }
            scalar => tape
                .scalar(|out| serde_json::to_writer(out, scalar))
                .expect("a scalar writes"),
        }
    }
    let mut tape = Tape::new();
    write(&mut tape, value);
    tape
}

fn tokens(path: &[&str]) -> Vec<String> {
    path.iter().map(|t| t.to_string()).collect()
}

#[test]
fn members_elements_and_text_read_as_in_the_json() {
    let value = json!({"a": {"b": [10, {"c": "x\"y"}, []]}, "n": null, "t": true});
    let tape = tape_of(&value);
    let root = tape.root().expect("a root");
    let text = |path: &[&str]| resolve(&root, &tokens(path)).map(|n| n.text().into_owned());
    assert_eq!(text(&["a", "b", "0"]).as_deref(), Some("10"));
    assert_eq!(text(&["a", "b", "1", "c"]).as_deref(), Some(r#""x\"y""#));
    assert_eq!(text(&["a", "b", "2"]).as_deref(), Some("[]"));
    assert_eq!(text(&["n"]).as_deref(), Some("null"));
    assert_eq!(text(&["a", "b", "3"]), None);
    assert_eq!(text(&["a", "b", "01"]), None);
    assert_eq!(text(&["t", "x"]), None);
    let c = resolve(&root, &tokens(&["a", "b", "1", "c"])).expect("c");
    assert_eq!(c.as_str().as_deref(), Some("x\"y"));
    assert_eq!(c.kind(), JsonKind::String);
    let b = resolve(&root, &tokens(&["a", "b"])).expect("b");
    assert_eq!(b.level().elements().map(|e| e.len()), Some(3));
    assert_eq!(root.level().elements().map(|e| e.len()), None);
    let mut out = Vec::new();
    tape.write_json(&mut out);
    assert_eq!(serde_json::from_slice::<Value>(&out).expect("json"), value);
}

#[test]
fn a_repeated_name_reads_as_its_last_value_and_a_cleared_tape_is_empty() {
    let mut tape = Tape::new();
    tape.open(JsonKind::Object);
    for v in ["1", "2"] {
        tape.name("k");
        tape.scalar(|out| {
            out.extend_from_slice(v.as_bytes());
            Ok::<(), ()>(())
        })
        .expect("writes");
    }
    tape.close();
    let root = tape.root().expect("a root");
    assert_eq!(
        root.level()
            .get("k")
            .map(|n| n.text().into_owned())
            .as_deref(),
        Some("2")
    );
    tape.clear();
    assert!(tape.root().is_none());
}
