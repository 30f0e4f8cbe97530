//! The engine reads a decoder's [`Tape`] as it reads JSON.

use std::borrow::Cow;

pub use matview_tape::{Tape, TapeNode};

use super::json::{JsonKind, RawJson};
use super::node::{EventLevel, EventNode};

impl<'a> EventNode<'a> for TapeNode<'a> {
    type Level = TapeNode<'a>;

    fn kind(self) -> JsonKind {
        TapeNode::kind(self)
    }

    fn level(self) -> TapeNode<'a> {
        self
    }

    fn text(self) -> Cow<'a, str> {
        TapeNode::text(self)
    }

    fn to_raw(self) -> RawJson {
        RawJson::from_text(&TapeNode::text(self))
    }
}

impl<'a> EventLevel<'a> for TapeNode<'a> {
    type Node = TapeNode<'a>;

    fn get(&self, token: &str) -> Option<TapeNode<'a>> {
        TapeNode::get(*self, token)
    }

    fn elements(&self) -> Option<Vec<TapeNode<'a>>> {
        TapeNode::elements(*self)
    }
}
