//! Each group's size over the whole shard (rows holding records of it, and
//! its records), kept in the store's meta table by every batch in the same
//! commit, so the console's bars are exact and cost no scan. A store made
//! before these figures existed counts them once, when it is opened.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, Table};
use serde::{Deserialize, Serialize};

use super::{META, RowShape, Store, StoreError};
use crate::store_codec::RowTotals;

const GROUP_SIZES: &str = "group-sizes";

/// Per group (in the view's group order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSizes {
    pub rows: Vec<u64>,
    pub records: Vec<u64>,
}

/// How a batch moved each group's size: rows and records, per group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupDeltas {
    pub rows: Vec<i64>,
    pub records: Vec<i64>,
}

impl GroupDeltas {
    /// Pure: one row's counts per group before and after a change.
    pub fn add_row(&mut self, before: &[u64], after: &[u64]) {
        let groups = before.len().max(after.len());
        if self.rows.len() < groups {
            self.rows.resize(groups, 0);
            self.records.resize(groups, 0);
        }
        for g in 0..groups {
            let (b, a) = (
                before.get(g).copied().unwrap_or(0),
                after.get(g).copied().unwrap_or(0),
            );
            self.rows[g] += i64::from(a > 0) - i64::from(b > 0);
            self.records[g] += a as i64 - b as i64;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rows.iter().chain(&self.records).all(|d| *d == 0)
    }
}

impl GroupSizes {
    fn apply(&mut self, deltas: &GroupDeltas) {
        let groups = deltas.rows.len().max(self.rows.len());
        self.rows.resize(groups, 0);
        self.records.resize(groups, 0);
        let moved = |size: &mut u64, d: i64| *size = size.saturating_add_signed(d);
        for (g, d) in deltas.rows.iter().enumerate() {
            moved(&mut self.rows[g], *d);
        }
        for (g, d) in deltas.records.iter().enumerate() {
            moved(&mut self.records[g], *d);
        }
    }
}

fn read(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<GroupSizes>, StoreError> {
    io!(meta.get(GROUP_SIZES))?
        .map(|v| serde_json::from_slice(v.value()))
        .transpose()
        .map_err(|e| {
            StoreError::Corrupt(super::CorruptData(format!("unreadable group sizes: {e}")))
        })
}

fn write(
    meta: &mut Table<&'static str, &'static [u8]>,
    sizes: &GroupSizes,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(sizes)
        .map_err(|e| StoreError::Corrupt(super::CorruptData(e.to_string())))?;
    io!(meta.insert(GROUP_SIZES, bytes.as_slice()))?;
    Ok(())
}

/// In a batch's transaction: moves the kept sizes by the batch's deltas.
pub(super) fn apply_deltas(
    meta: &mut Table<&'static str, &'static [u8]>,
    deltas: &GroupDeltas,
) -> Result<(), StoreError> {
    if deltas.is_empty() {
        return Ok(());
    }
    let mut sizes = read(meta)?.unwrap_or_default();
    sizes.apply(deltas);
    write(meta, &sizes)
}

/// At open: counts the sizes once if this store has none yet.
pub(super) fn count_if_missing(
    meta: &mut Table<&'static str, &'static [u8]>,
    totals: &impl ReadableTable<&'static str, &'static [u8]>,
    shape: &RowShape,
) -> Result<(), StoreError> {
    if read(meta)?.is_some() {
        return Ok(());
    }
    write(meta, &count(totals, shape)?)
}

/// Every row's totals, counted.
fn count(
    totals: &impl ReadableTable<&'static str, &'static [u8]>,
    shape: &RowShape,
) -> Result<GroupSizes, StoreError> {
    let mut deltas = GroupDeltas::default();
    for entry in io!(totals.iter())? {
        let (_, value) = io!(entry)?;
        let row = RowTotals::decode(value.value(), shape.groups, shape.sums)?;
        let after: Vec<u64> = row.groups.iter().map(|g| g.count).collect();
        deltas.add_row(&[], &after);
    }
    let mut sizes = GroupSizes {
        rows: vec![0; shape.groups],
        records: vec![0; shape.groups],
    };
    sizes.apply(&deltas);
    Ok(sizes)
}

impl Store {
    /// Each group's rows and records, as of the last commit.
    pub fn group_sizes(&self) -> Result<GroupSizes, StoreError> {
        self.sizes().map(|(_, sizes)| sizes)
    }

    /// Records in the shard (classified or not) and each group's size,
    /// read in one transaction so they describe the same commit.
    pub fn sizes(&self) -> Result<(u64, GroupSizes), StoreError> {
        let txn = io!(self.db.begin_read())?;
        let records = io!(io!(txn.open_table(super::RECORDS))?.len())?;
        let meta = io!(txn.open_table(META))?;
        let mut sizes = read(&meta)?.unwrap_or_default();
        sizes.rows.resize(self.shape.groups, 0);
        sizes.records.resize(self.shape.groups, 0);
        Ok((records, sizes))
    }

    /// The sizes counted from every row now, for tests that check the kept ones.
    #[cfg(test)]
    pub(crate) fn counted_group_sizes(&self) -> Result<GroupSizes, StoreError> {
        let txn = io!(self.db.begin_read())?;
        let totals = io!(txn.open_table(super::TOTALS))?;
        count(&totals, &self.shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_entering_moving_and_leaving_groups_moves_their_sizes() {
        let mut d = GroupDeltas::default();
        d.add_row(&[], &[2, 0, 1]);
        assert_eq!(
            (d.rows.clone(), d.records.clone()),
            (vec![1, 0, 1], vec![2, 0, 1])
        );
        d.add_row(&[2, 0, 1], &[0, 3, 1]);
        assert_eq!(
            (d.rows.clone(), d.records.clone()),
            (vec![0, 1, 1], vec![0, 3, 1])
        );
        d.add_row(&[0, 3, 1], &[0, 0, 0]);
        assert!(d.is_empty());
    }

    #[test]
    fn sizes_never_go_below_zero() {
        let mut sizes = GroupSizes::default();
        let mut d = GroupDeltas::default();
        d.add_row(&[1], &[0]);
        sizes.apply(&d);
        assert_eq!(
            sizes,
            GroupSizes {
                rows: vec![0],
                records: vec![0]
            }
        );
    }
}
