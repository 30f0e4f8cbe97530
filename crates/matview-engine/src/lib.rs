//! The records-and-rules engine: pure code, no I/O, the hot path.
//!
//! A spec is compiled once ([`compile()`]); then each event's bytes are shaped
//! into classified records ([`CompiledView::shape`]), folded into rows
//! ([`Row::upsert`]) and served as views ([`CompiledView::view`]).

pub mod compare;
pub mod compile;
pub mod decimal;
pub mod envelope;
mod explode_check;
pub mod json;
pub mod keyed_merge;
pub mod node;
pub mod pointer;
pub mod predicate;
pub mod quantity;
pub mod revision;
pub mod row;
pub mod rules;
pub mod satisfy;
pub mod shape;
pub mod source;
pub mod sum;
pub mod tape;
pub mod view;
mod view_json;

pub use compile::{CompileError, CompiledView, SpecIssue, compile};
pub use decimal::Decimal;
pub use envelope::{EventValue, MessageChange};
pub use revision::revision;
pub use row::{Row, Upsert};
pub use shape::{EventError, Position, Record};
pub use sum::Sum;
pub use tape::Tape;
pub use view::{GroupView, RowView};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod exact_tests;

#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod envelope_tests;
