//! A comparison of two revisions of a view, folded row by row as both are
//! read in key order: rows only in one, rows whose content differs, records
//! that moved from one group to another, and per group the counts and sums
//! of each revision. Pure; the reading is the caller's.

use std::collections::BTreeMap;

use super::sum::Sum;

/// Where a record is in one revision: its group, or none (matched no rule).
pub type GroupName = Option<String>;

/// One row as the comparison reads it (all of its shards' parts merged).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RowSummary {
    /// Record id → group.
    pub records: BTreeMap<String, GroupName>,
    /// Group → its count and sums.
    pub groups: BTreeMap<String, GroupFigures>,
}

impl RowSummary {
    /// Another shard's part of the same row: its records are others.
    pub fn merge(&mut self, part: RowSummary) {
        self.records.extend(part.records);
        for (group, figures) in part.groups {
            self.groups.entry(group).or_default().add(&figures);
        }
    }
}

/// A group's count and sums (by summed field).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupFigures {
    pub count: u64,
    pub sums: BTreeMap<String, Sum>,
}

impl GroupFigures {
    pub fn add(&mut self, other: &GroupFigures) {
        self.count += other.count;
        for (field, sum) in &other.sums {
            let at = self.sums.entry(field.clone()).or_insert(Sum::ZERO);
            *at = at.merge(*sum);
        }
    }
}

/// The comparison of a serving revision with a candidate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Comparison {
    pub rows_only_serving: u64,
    pub rows_only_candidate: u64,
    pub rows_changed: u64,
    pub rows_same: u64,
    pub records_only_serving: u64,
    pub records_only_candidate: u64,
    /// (from, to) → records in both revisions whose group differs.
    pub moved: BTreeMap<(GroupName, GroupName), u64>,
    /// Group → (serving, candidate) figures over all rows.
    pub groups: BTreeMap<String, (GroupFigures, GroupFigures)>,
}

impl Comparison {
    /// Folds one key: its row in each revision (either may be absent).
    pub fn add(&mut self, serving: Option<&RowSummary>, candidate: Option<&RowSummary>) {
        match (serving, candidate) {
            (Some(a), Some(b)) if a == b => self.rows_same += 1,
            (Some(_), Some(_)) => self.rows_changed += 1,
            (Some(_), None) => self.rows_only_serving += 1,
            (None, Some(_)) => self.rows_only_candidate += 1,
            (None, None) => return,
        }
        let none = RowSummary::default();
        let (a, b) = (serving.unwrap_or(&none), candidate.unwrap_or(&none));
        for (id, from) in &a.records {
            match b.records.get(id) {
                Some(to) if to != from => {
                    *self.moved.entry((from.clone(), to.clone())).or_insert(0) += 1;
                }
                Some(_) => {}
                None => self.records_only_serving += 1,
            }
        }
        self.records_only_candidate += b
            .records
            .keys()
            .filter(|id| !a.records.contains_key(*id))
            .count() as u64;
        for (group, figures) in &a.groups {
            self.groups.entry(group.clone()).or_default().0.add(figures);
        }
        for (group, figures) in &b.groups {
            self.groups.entry(group.clone()).or_default().1.add(figures);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::Decimal;

    fn row(records: &[(&str, Option<&str>)], groups: &[(&str, u64, &str)]) -> RowSummary {
        RowSummary {
            records: records
                .iter()
                .map(|(id, g)| (id.to_string(), g.map(str::to_string)))
                .collect(),
            groups: groups
                .iter()
                .map(|(g, count, sum)| {
                    let sum = Sum::of(Decimal::parse_exact(sum).expect("decimal"));
                    let sums = BTreeMap::from([("price".to_string(), sum)]);
                    (
                        g.to_string(),
                        GroupFigures {
                            count: *count,
                            sums,
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn moved_records_and_group_figures_are_counted() {
        let mut c = Comparison::default();
        // i1 (4.5) stays cheap; i2 (7) moves affordable → cheap; i3 is new.
        let serving = row(
            &[("i1", Some("cheap")), ("i2", Some("affordable"))],
            &[("cheap", 1, "4.5"), ("affordable", 1, "7")],
        );
        let candidate = row(
            &[("i1", Some("cheap")), ("i2", Some("cheap")), ("i3", None)],
            &[("cheap", 2, "11.5")],
        );
        c.add(Some(&serving), Some(&candidate));
        c.add(Some(&serving), None);
        c.add(Some(&serving), Some(&serving));
        assert_eq!(
            (c.rows_changed, c.rows_only_serving, c.rows_same),
            (1, 1, 1)
        );
        assert_eq!(
            c.moved,
            BTreeMap::from([((Some("affordable".into()), Some("cheap".into())), 1)])
        );
        assert_eq!((c.records_only_serving, c.records_only_candidate), (2, 1));
        let (cheap_a, cheap_b) = &c.groups["cheap"];
        assert_eq!((cheap_a.count, cheap_b.count), (3, 3));
        assert_eq!(cheap_b.sums["price"].to_string(), "16");
        assert_eq!(c.groups["affordable"].1.count, 1);
    }

    #[test]
    fn shard_parts_of_a_row_merge_into_one() {
        let mut whole = row(&[("i1", Some("cheap"))], &[("cheap", 1, "1.25")]);
        whole.merge(row(&[("i2", Some("cheap"))], &[("cheap", 1, "2.5")]));
        assert_eq!(whole.records.len(), 2);
        assert_eq!(whole.groups["cheap"].count, 2);
        assert_eq!(whole.groups["cheap"].sums["price"].to_string(), "3.75");
    }
}
