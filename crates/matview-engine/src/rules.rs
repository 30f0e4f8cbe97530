//! Classification rules: compiling a rule's comparators and testing a value.

use std::cmp::Ordering;

use serde_json::Value;

use super::decimal::Decimal;
use super::predicate::holds;
pub use super::predicate::{Operand, Predicate, Scalar, ValueKind};
use matview_crd::ClassifyRule;

/// Index of a group in [`CompiledView::groups`].
pub type GroupId = u16;

#[derive(Debug, Clone)]
pub struct CompiledClassify {
    /// Index into [`CompiledView::fields`].
    pub field: usize,
    pub rules: Vec<CompiledRule>,
    pub otherwise: Option<GroupId>,
}

#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub group: GroupId,
    pub predicates: Vec<Predicate>,
}

/// A rule constant from the spec, or why it cannot be one.
pub(super) fn scalar(value: &Value) -> Result<Scalar, String> {
    match value {
        Value::Number(n) => Decimal::from_json(n)
            .map(Scalar::Number)
            .map_err(|e| format!("number {n} {e}")),
        Value::String(s) => Ok(Scalar::String(s.clone())),
        Value::Bool(b) => Ok(Scalar::Boolean(*b)),
        Value::Null => Err("must be a number, a string or a boolean, not null".into()),
        Value::Array(_) => Err("must be a number, a string or a boolean, not a list".into()),
        Value::Object(_) => Err("must be a number, a string or a boolean, not an object".into()),
    }
}

/// Compiles one rule's comparators; problems go to `report(path, message)`,
/// and the kind of each constant to `kinds` (to check against the field).
pub(super) fn compile_rule(
    rule: &ClassifyRule,
    path: &str,
    outer_report: &mut dyn FnMut(String, String),
    kinds: &mut Vec<(String, ValueKind)>,
) -> Vec<Predicate> {
    // A rule already reported is not also called unmatchable.
    let mut reported = false;
    let report: &mut dyn FnMut(String, String) = &mut |at, message| {
        reported = true;
        outer_report(at, message);
    };
    let mut predicates = Vec::new();
    let mut one = |name: &str,
                   value: &Option<Value>,
                   ordered: bool,
                   report: &mut dyn FnMut(String, String)|
     -> Option<Scalar> {
        let value = value.as_ref()?;
        let at = format!("{path}.{name}");
        match scalar(value) {
            Ok(Scalar::Boolean(_)) if ordered => {
                report(
                    at,
                    format!("{name} compares numbers or strings, not booleans"),
                );
                None
            }
            Ok(s) => {
                kinds.push((at, s.kind()));
                Some(s)
            }
            Err(e) => {
                report(at, e);
                None
            }
        }
    };
    let lt = one("lt", &rule.lt, true, report);
    let lte = one("lte", &rule.lte, true, report);
    let gt = one("gt", &rule.gt, true, report);
    let gte = one("gte", &rule.gte, true, report);
    let eq = one("eq", &rule.eq, false, report);
    let ne = one("ne", &rule.ne, false, report);
    let mut list = |name: &str, values: &Option<Vec<Value>>| -> Option<Vec<Scalar>> {
        let values = values.as_ref()?;
        let mut out = Vec::with_capacity(values.len());
        for (i, v) in values.iter().enumerate() {
            let at = format!("{path}.{name}[{i}]");
            match scalar(v) {
                Ok(s) => {
                    kinds.push((at, s.kind()));
                    out.push(s);
                }
                Err(e) => report(at, e),
            }
        }
        Some(out)
    };
    let in_ = list("in", &rule.in_);
    let not_in = list("notIn", &rule.not_in);

    check_rule_shape(rule, path, [&gt, &gte, &lt, &lte], report);
    predicates.extend(lt.map(Predicate::Lt));
    predicates.extend(lte.map(Predicate::Lte));
    predicates.extend(gt.map(Predicate::Gt));
    predicates.extend(gte.map(Predicate::Gte));
    predicates.extend(eq.map(Predicate::Eq));
    predicates.extend(ne.map(Predicate::Ne));
    predicates.extend(in_.map(Predicate::In));
    predicates.extend(not_in.map(Predicate::NotIn));
    predicates.extend(rule.exists.map(Predicate::Exists));
    predicates.extend(rule.missing.map(|m| Predicate::Exists(!m)));
    if !reported && !super::satisfy::can_match(&predicates) {
        outer_report(
            path.to_string(),
            "no value can match this rule: its comparators contradict each other; fix or remove it"
                .into(),
        );
    }
    predicates
}

/// Mistakes in a rule as a whole: bounds that leave no value to match,
/// `exists` with `missing`, no comparator at all.
fn check_rule_shape(
    rule: &ClassifyRule,
    path: &str,
    [gt, gte, lt, lte]: [&Option<Scalar>; 4],
    report: &mut dyn FnMut(String, String),
) {
    let empty_range = |low: &Option<Scalar>, high: &Option<Scalar>, strict: bool| match (low, high)
    {
        (Some(l), Some(h)) => match compare_scalars(l, h) {
            Some(Ordering::Greater) => true,
            Some(Ordering::Equal) => strict,
            _ => false,
        },
        _ => false,
    };
    if empty_range(gte, lte, false)
        || empty_range(gt, lt, true)
        || empty_range(gte, lt, true)
        || empty_range(gt, lte, true)
    {
        report(path.to_string(), "the lower bound (gt/gte) is not below the upper bound (lt/lte), so no value can match; swap or fix the bounds".into());
    }
    if rule.exists.is_some() && rule.missing.is_some() {
        report(path.to_string(), "use exists or missing, not both".into());
    }
    let comparators = [&rule.lt, &rule.lte, &rule.gt, &rule.gte, &rule.eq, &rule.ne];
    if comparators.iter().all(|c| c.is_none())
        && rule.in_.is_none()
        && rule.not_in.is_none()
        && rule.exists.is_none()
        && rule.missing.is_none()
    {
        report(path.to_string(), "a rule needs at least one comparator: lt, lte, gt, gte, eq, ne, in, notIn, exists or missing".into());
    }
}

/// A record's classify value, typed for comparison; `None` when absent or null.
fn compare_scalars(a: &Scalar, b: &Scalar) -> Option<Ordering> {
    match (a, b) {
        (Scalar::Number(x), Scalar::Number(y)) => Some(x.cmp(y)),
        (Scalar::String(x), Scalar::String(y)) => Some(x.as_str().cmp(y.as_str())),
        (Scalar::Boolean(x), Scalar::Boolean(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// The group of a value: the first rule whose predicates all hold, else
/// `otherwise`; `None` means the record is dropped.
pub fn classify(classify: &CompiledClassify, value: Option<&Operand<'_>>) -> Option<GroupId> {
    classify
        .rules
        .iter()
        .find(|rule| rule.predicates.iter().all(|p| holds(p, value)))
        .map(|rule| rule.group)
        .or(classify.otherwise)
}

#[cfg(test)]
mod tests {
    use super::CompiledRule;
    use super::*;

    fn num(s: &str) -> Decimal {
        Decimal::parse(s).expect("decimal")
    }

    fn shop() -> CompiledClassify {
        CompiledClassify {
            field: 0,
            rules: vec![
                CompiledRule {
                    group: 0,
                    predicates: vec![Predicate::Lt(Scalar::Number(num("5")))],
                },
                CompiledRule {
                    group: 1,
                    predicates: vec![
                        Predicate::Gte(Scalar::Number(num("5"))),
                        Predicate::Lte(Scalar::Number(num("50"))),
                    ],
                },
                CompiledRule {
                    group: 2,
                    predicates: vec![Predicate::Gt(Scalar::Number(num("50")))],
                },
            ],
            otherwise: None,
        }
    }

    #[test]
    fn shop_boundaries() {
        let c = shop();
        for (price, group) in [
            ("0", 0),
            ("4.99", 0),
            ("5", 1),
            ("50", 1),
            ("50.01", 2),
            ("-3", 0),
        ] {
            assert_eq!(
                classify(&c, Some(&Operand::Number(num(price)))),
                Some(group),
                "{price}"
            );
        }
        assert_eq!(classify(&c, None), None);
        assert_eq!(
            classify(&c, Some(&Operand::String("7"))),
            None,
            "strings never match number rules"
        );
    }

    #[test]
    fn sets_presence_and_fallback() {
        let c = CompiledClassify {
            field: 0,
            rules: vec![
                CompiledRule {
                    group: 0,
                    predicates: vec![Predicate::In(vec![
                        Scalar::String("DE".into()),
                        Scalar::String("AT".into()),
                    ])],
                },
                CompiledRule {
                    group: 1,
                    predicates: vec![Predicate::Exists(false)],
                },
                CompiledRule {
                    group: 2,
                    predicates: vec![
                        Predicate::NotIn(vec![Scalar::String("FR".into())]),
                        Predicate::Ne(Scalar::String("IT".into())),
                    ],
                },
            ],
            otherwise: Some(3),
        };
        assert_eq!(classify(&c, Some(&Operand::String("AT"))), Some(0));
        assert_eq!(classify(&c, None), Some(1));
        assert_eq!(classify(&c, Some(&Operand::String("US"))), Some(2));
        assert_eq!(classify(&c, Some(&Operand::String("FR"))), Some(3));
        assert_eq!(classify(&c, Some(&Operand::String("IT"))), Some(3));
    }
}
