//! Whether a rule can match anything: its comparators (bounds, eq, ne, in,
//! notIn, exists) are tried against every value that could tell them apart —
//! each constant, the values just beside it, the smallest string, booleans,
//! an object, and no value — with the same test classification uses.

use super::decimal::Decimal;
use super::predicate::{Operand, Predicate, Scalar, holds};

fn constants(predicates: &[Predicate]) -> impl Iterator<Item = &Scalar> {
    predicates.iter().flat_map(|p| match p {
        Predicate::Lt(c)
        | Predicate::Lte(c)
        | Predicate::Gt(c)
        | Predicate::Gte(c)
        | Predicate::Eq(c)
        | Predicate::Ne(c) => std::slice::from_ref(c).iter(),
        Predicate::In(cs) | Predicate::NotIn(cs) => cs.iter(),
        Predicate::Exists(_) => [].iter(),
    })
}

/// True when some value (or its absence) satisfies every predicate.
pub fn can_match(predicates: &[Predicate]) -> bool {
    let mut numbers = vec![Decimal::ZERO];
    let mut strings = vec![String::new()];
    for constant in constants(predicates) {
        match constant {
            Scalar::Number(d) => {
                let nanos = d.to_nanos();
                numbers.push(*d);
                // The nearest values on either side (9 fraction digits).
                numbers.extend(nanos.checked_sub(1).map(Decimal::from_nanos));
                numbers.extend(nanos.checked_add(1).map(Decimal::from_nanos));
            }
            Scalar::String(s) => {
                strings.push(s.clone());
                // The smallest string above `s`.
                strings.push(format!("{s}\0"));
            }
            Scalar::Boolean(_) => {}
        }
    }
    let mut candidates: Vec<Option<Operand<'_>>> = vec![
        None,
        Some(Operand::Other),
        Some(Operand::Boolean(false)),
        Some(Operand::Boolean(true)),
    ];
    candidates.extend(numbers.into_iter().map(|n| Some(Operand::Number(n))));
    candidates.extend(strings.iter().map(|s| Some(Operand::String(s))));
    candidates
        .iter()
        .any(|value| predicates.iter().all(|p| holds(p, value.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Predicate::*;
    use proptest::prelude::*;

    fn predicate() -> impl Strategy<Value = Predicate> {
        let c = || (-4i64..4).prop_map(|v| Scalar::Number(Decimal::from_i64(v)));
        prop_oneof![
            c().prop_map(Lt),
            c().prop_map(Lte),
            c().prop_map(Gt),
            c().prop_map(Gte),
            c().prop_map(Eq),
            c().prop_map(Ne),
            proptest::collection::vec(c(), 0..3).prop_map(In),
            proptest::collection::vec(c(), 0..3).prop_map(NotIn),
            any::<bool>().prop_map(Exists),
        ]
    }

    proptest! {
        /// Checked against values in half steps from -6 to 6 and absence,
        /// which covers every region small integer constants make.
        #[test]
        fn agrees_with_trying_values(rule in proptest::collection::vec(predicate(), 1..4)) {
            let matched_by_some = (-12i64..=12)
                .map(|h| Some(Operand::Number(Decimal::from_nanos(i128::from(h) * 500_000_000))))
                .chain([None])
                .any(|v| rule.iter().all(|p| holds(p, v.as_ref())));
            prop_assert_eq!(can_match(&rule), matched_by_some, "{:?}", rule);
        }
    }

    fn n(v: i64) -> Scalar {
        Scalar::Number(Decimal::from_i64(v))
    }
    fn s(v: &str) -> Scalar {
        Scalar::String(v.into())
    }

    #[test]
    fn finds_the_rules_no_value_can_match() {
        let never: Vec<Vec<Predicate>> = vec![
            vec![Eq(n(5)), Ne(n(5))],
            vec![Eq(n(5)), Gt(n(5))],
            vec![Eq(n(3)), Gte(n(4))],
            vec![In(vec![n(1), n(2)]), NotIn(vec![n(2), n(1)])],
            vec![In(vec![n(1), n(2)]), Gt(n(2))],
            vec![In(vec![])],
            vec![Eq(s("a")), Eq(s("b"))],
            vec![Lt(s(""))],
            vec![Gt(s("a")), Lt(s("a\0"))],
            vec![Exists(false), Eq(n(1))],
            vec![Exists(false), Ne(n(1))],
            vec![Exists(true), Exists(false)],
            vec![
                Gt(n(1)),
                Lt(Scalar::Number(Decimal::from_nanos(1_000_000_001))),
            ],
        ];
        for rule in never {
            assert!(!can_match(&rule), "{rule:?} can never match");
        }
        let sometimes: Vec<Vec<Predicate>> = vec![
            vec![Gte(n(5)), Lte(n(50))],
            vec![Gt(n(1)), Lt(n(2))],
            vec![Ne(n(5)), Gt(n(4)), Lt(n(6))],
            vec![NotIn(vec![n(1), n(2), n(3)]), Gte(n(1)), Lte(n(3))],
            vec![Gt(s("a")), Lt(s("b"))],
            vec![NotIn(vec![s("a"), s("")])],
            vec![Eq(Scalar::Boolean(true)), Ne(Scalar::Boolean(false))],
            vec![Exists(false)],
            vec![Exists(true)],
            vec![In(vec![s("x"), s("y")]), Ne(s("x"))],
        ];
        for rule in sometimes {
            assert!(can_match(&rule), "{rule:?} matches some value");
        }
    }
}
