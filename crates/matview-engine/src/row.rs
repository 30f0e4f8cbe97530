//! A row: the records of one key, and per-group totals kept up to date as
//! records are upserted. A row is a set of records keyed by id where the
//! later position wins, so folding, re-applying and merging commute.

use std::collections::BTreeMap;

use super::decimal::Decimal;
use super::json::RawJson;
use super::rules::GroupId;
use super::shape::{Position, Record};
use super::sum::Sum;

/// A record as a row keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub group: Option<GroupId>,
    pub fields: Vec<RawJson>,
    pub sums: Vec<Decimal>,
    pub version: Position,
}

/// Count and sums of one group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupTotals {
    pub count: u64,
    pub sums: Vec<Sum>,
}

/// All records of one row key, with totals per group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    pub records: BTreeMap<String, StoredRecord>,
    /// Indexed by group id.
    pub totals: Vec<GroupTotals>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    Inserted,
    /// Replaced an earlier version (possibly moving it to another group).
    Replaced,
    /// Same version already applied: re-delivery.
    Unchanged,
    /// An older version than the one held: ignored.
    Stale,
}

impl Row {
    pub fn new(groups: usize, sums: usize) -> Row {
        Row {
            records: BTreeMap::new(),
            totals: vec![
                GroupTotals {
                    count: 0,
                    sums: vec![Sum::ZERO; sums],
                };
                groups
            ],
        }
    }

    /// Applies a record: insert, or replace the same id when this version is later.
    pub fn upsert(&mut self, record: Record) -> Upsert {
        let stored = StoredRecord {
            group: record.group,
            fields: record.fields,
            sums: record.sums,
            version: record.version,
        };
        self.upsert_stored(record.id, stored)
    }

    /// Applies a stored record (the later version wins).
    pub fn upsert_stored(&mut self, id: String, stored: StoredRecord) -> Upsert {
        let outcome = apply_totals(&mut self.totals, self.records.get(&id), &stored);
        if matches!(outcome, Upsert::Inserted | Upsert::Replaced) {
            self.records.insert(id, stored);
        }
        outcome
    }

    /// Merges another partial row of the same key (from another shard).
    pub fn merge(&mut self, other: &Row) {
        for (id, record) in &other.records {
            self.upsert_stored(id.clone(), record.clone());
        }
    }

    /// Records that belong to no group (matched no rule).
    pub fn unclassified(&self) -> usize {
        self.records.values().filter(|r| r.group.is_none()).count()
    }
}

/// Decides whether `new` replaces `old` (the later version wins) and, if it
/// does, moves its contribution in `totals`. The caller stores `new` when the
/// outcome is `Inserted` or `Replaced`.
pub fn apply_totals(
    totals: &mut [GroupTotals],
    old: Option<&StoredRecord>,
    new: &StoredRecord,
) -> Upsert {
    let outcome = match old {
        None => Upsert::Inserted,
        Some(old) if old.version > new.version => return Upsert::Stale,
        Some(old) if old.version == new.version => return Upsert::Unchanged,
        Some(_) => Upsert::Replaced,
    };
    if let Some(old) = old {
        contribute(totals, old, false);
    }
    contribute(totals, new, true);
    outcome
}

/// Takes a removed record's contribution out of `totals`.
pub fn withdraw(totals: &mut [GroupTotals], record: &StoredRecord) {
    contribute(totals, record, false);
}

fn contribute(all: &mut [GroupTotals], record: &StoredRecord, adding: bool) {
    let Some(totals) = record.group.and_then(|g| all.get_mut(usize::from(g))) else {
        return;
    };
    if adding {
        totals.count += 1;
    } else {
        totals.count = totals.count.saturating_sub(1);
    }
    for (total, value) in totals.sums.iter_mut().zip(&record.sums) {
        // Exact and never overflowing, whatever the order (see `Sum`).
        if adding {
            total.add(*value);
        } else {
            total.subtract(*value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, group: Option<GroupId>, price: i64, offset: i64) -> Record {
        Record {
            key: "u1".into(),
            id: id.into(),
            group,
            fields: vec![RawJson::number(Decimal::from_i64(price))],
            sums: vec![Decimal::from_i64(price)],
            version: Position {
                partition: 0,
                offset,
            },
        }
    }

    #[test]
    fn redelivery_is_an_upsert_and_moves_between_groups() {
        let mut row = Row::new(3, 1);
        assert_eq!(row.upsert(rec("a", Some(0), 3, 1)), Upsert::Inserted);
        assert_eq!(row.upsert(rec("a", Some(0), 3, 1)), Upsert::Unchanged);
        assert_eq!(row.totals[0].count, 1);
        assert_eq!(row.upsert(rec("a", Some(2), 70, 5)), Upsert::Replaced);
        assert_eq!(
            row.totals[0],
            GroupTotals {
                count: 0,
                sums: vec![Sum::ZERO]
            }
        );
        assert_eq!(
            row.totals[2],
            GroupTotals {
                count: 1,
                sums: vec![Sum::of(Decimal::from_i64(70))]
            }
        );
        assert_eq!(
            row.upsert(rec("a", Some(0), 3, 1)),
            Upsert::Stale,
            "a replayed older event must not win"
        );
        assert_eq!(row.upsert(rec("a", None, 1, 9)), Upsert::Replaced);
        assert_eq!(row.totals[2].count, 0);
        assert_eq!(row.unclassified(), 1);
    }
}
