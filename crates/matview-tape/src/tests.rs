//! A tape reads like the JSON it holds: members, elements and text (the
//! engine's tests shape every event from JSON and from a tape and compare).

use serde_json::{Value, json};

use super::*;

fn at<'a>(root: TapeNode<'a>, path: &[&str]) -> Option<TapeNode<'a>> {
    path.iter().try_fold(root, |node, token| node.get(token))
}

#[test]
fn members_elements_and_text_read_as_in_the_json() {
    let value = json!({"a": {"b": [10, {"c": "x\"y"}, []]}, "n": null, "t": true});
    let tape = Tape::of_json(&value);
    let root = tape.root().expect("a root");
    let text = |path: &[&str]| at(root, path).map(|n| n.text().into_owned());
    assert_eq!(text(&["a", "b", "0"]).as_deref(), Some("10"));
    assert_eq!(text(&["a", "b", "1", "c"]).as_deref(), Some(r#""x\"y""#));
    assert_eq!(text(&["a", "b", "2"]).as_deref(), Some("[]"));
    assert_eq!(text(&["n"]).as_deref(), Some("null"));
    assert_eq!(text(&["a", "b", "3"]), None);
    assert_eq!(text(&["a", "b", "01"]), None);
    assert_eq!(text(&["t", "x"]), None);
    let c = at(root, &["a", "b", "1", "c"]).expect("c");
    assert_eq!(c.kind(), JsonKind::String);
    assert_eq!(c.member_name(), Some("c"));
    assert_eq!(
        at(root, &["a", "b"])
            .and_then(TapeNode::elements)
            .map(|e| e.len()),
        Some(3)
    );
    assert_eq!(root.elements().map(|e| e.len()), None);
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
        root.get("k").map(|n| n.text().into_owned()).as_deref(),
        Some("2")
    );
    tape.clear();
    assert!(tape.root().is_none());
}

#[test]
fn text_that_is_not_utf8_is_null_and_kinds_come_from_the_text() {
    let mut tape = Tape::new();
    tape.open(JsonKind::Array);
    for text in [&b"\"s\""[..], b"-1.5", b"false", b"\xff"] {
        tape.scalar(|out| {
            out.extend_from_slice(text);
            Ok::<(), ()>(())
        })
        .expect("writes");
    }
    tape.close();
    let kinds: Vec<JsonKind> = tape
        .root()
        .and_then(TapeNode::elements)
        .expect("elements")
        .into_iter()
        .map(TapeNode::kind)
        .collect();
    assert_eq!(
        kinds,
        [
            JsonKind::String,
            JsonKind::Number,
            JsonKind::Bool,
            JsonKind::Null
        ]
    );
}
