//! What a rule tests: constants, comparators and the values they are
//! tested on, and the one test both classification and the check that a
//! rule can match at all use. Apart from the rules so both can look down
//! at it.

use std::cmp::Ordering;

use super::decimal::Decimal;

/// The JSON type a field's values must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Any,
    Number,
    /// A number, or a string holding one; read as a number.
    NumericString,
    String,
    Boolean,
}

impl ValueKind {
    pub fn describe(self) -> &'static str {
        match self {
            ValueKind::Any => "any value",
            ValueKind::Number => "a number",
            ValueKind::NumericString => "a number or a numeric string",
            ValueKind::String => "a string",
            ValueKind::Boolean => "a boolean",
        }
    }

    pub(super) fn is_numeric(self) -> bool {
        matches!(self, ValueKind::Number | ValueKind::NumericString)
    }
}

/// A constant a rule compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Number(Decimal),
    String(String),
    Boolean(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    Lt(Scalar),
    Lte(Scalar),
    Gt(Scalar),
    Gte(Scalar),
    Eq(Scalar),
    Ne(Scalar),
    In(Vec<Scalar>),
    NotIn(Vec<Scalar>),
    /// true: present and not null; false: absent or null.
    Exists(bool),
}

impl Scalar {
    pub fn kind(&self) -> ValueKind {
        match self {
            Scalar::Number(_) => ValueKind::Number,
            Scalar::String(_) => ValueKind::String,
            Scalar::Boolean(_) => ValueKind::Boolean,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand<'a> {
    Number(Decimal),
    String(&'a str),
    Boolean(bool),
    /// An object or array: only exists/missing can test it.
    Other,
}

fn compare(value: &Operand<'_>, constant: &Scalar) -> Option<Ordering> {
    match (value, constant) {
        (Operand::Number(x), Scalar::Number(y)) => Some(x.cmp(y)),
        (Operand::String(x), Scalar::String(y)) => Some((*x).cmp(y.as_str())),
        (Operand::Boolean(x), Scalar::Boolean(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

pub(super) fn holds(predicate: &Predicate, value: Option<&Operand<'_>>) -> bool {
    use Ordering::*;
    let ord = |c: &Scalar| value.and_then(|v| compare(v, c));
    match predicate {
        Predicate::Lt(c) => ord(c) == Some(Less),
        Predicate::Lte(c) => matches!(ord(c), Some(Less | Equal)),
        Predicate::Gt(c) => ord(c) == Some(Greater),
        Predicate::Gte(c) => matches!(ord(c), Some(Greater | Equal)),
        Predicate::Eq(c) => ord(c) == Some(Equal),
        Predicate::Ne(c) => value.is_some() && ord(c) != Some(Equal),
        Predicate::In(cs) => cs.iter().any(|c| ord(c) == Some(Equal)),
        Predicate::NotIn(cs) => value.is_some() && cs.iter().all(|c| ord(c) != Some(Equal)),
        Predicate::Exists(want) => value.is_some() == *want,
    }
}
