//! Reads of the store: a row (its kept totals and the items a read
//! serves), row keys in order (all, or a group's), the number of rows.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::rows::records_of;
use super::{ITEMS, OFFSETS, RECORDS, Store, StoreError, StoredRowRecords, TOTALS, prefix_end};
use crate::store_codec::{RowTotals, decode_item, item_prefix};
use matview_crd::Keep;
use matview_engine::Row;

impl Store {
    /// The row of `key`, if any record ever reached it: its totals, and the
    /// records a read serves (all of a small row; the first `limit` of each
    /// group, in serving order, of an indexed one).
    pub fn row(&self, key: &str) -> Result<Option<Row>, StoreError> {
        let txn = io!(self.db.begin_read())?;
        let totals_table = io!(txn.open_table(TOTALS))?;
        let Some(totals) = io!(totals_table.get(key))?
            .map(|v| RowTotals::decode(v.value(), self.shape.groups, self.shape.sums))
            .transpose()?
        else {
            return Ok(None);
        };
        let mut row = Row::new(self.shape.groups, self.shape.sums);
        match (&self.shape.items, totals.indexed) {
            (Some(items), true) => {
                let table = io!(txn.open_table(ITEMS))?;
                for group in 0..self.shape.groups {
                    let group = u16::try_from(group).unwrap_or(u16::MAX);
                    let (from, to) = (item_prefix(key, group), prefix_end(item_prefix(key, group)));
                    let mut range = io!(table.range::<&[u8]>((
                        std::ops::Bound::Included(from.as_slice()),
                        to.as_deref()
                            .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded),
                    )))?;
                    for _ in 0..items.limit {
                        let entry = match items.keep {
                            Keep::Lowest => range.next(),
                            Keep::Highest => range.next_back(),
                        };
                        let Some(entry) = entry else { break };
                        let (_, v) = io!(entry)?;
                        let (id, record) = decode_item(v.value())?;
                        row.records.insert(id, record);
                    }
                }
            }
            (Some(_), false) => {
                let table = io!(txn.open_table(RECORDS))?;
                row.records.extend(records_of(&table, key)?);
            }
            // Nothing but counts and sums is served.
            (None, _) => {}
        }
        row.totals = totals.groups;
        Ok(Some(row))
    }

    /// Row keys after `after` (exclusive) whose group `group` is not empty, at most `limit`.
    pub fn keys_in_group(
        &self,
        group: usize,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.keys(Some(group), after, limit)
    }

    /// Row keys after `after` (exclusive), in order, at most `limit`; with a
    /// group, only rows that have records in it.
    pub fn keys(
        &self,
        group: Option<usize>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let txn = io!(self.db.begin_read())?;
        let table = io!(txn.open_table(TOTALS))?;
        let mut out = Vec::new();
        let iter = match after {
            Some(a) => {
                io!(table.range::<&str>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)))?
            }
            None => io!(table.range::<&str>(..))?,
        };
        for entry in iter {
            let (k, v) = io!(entry)?;
            let keep = match group {
                None => true,
                Some(g) => RowTotals::decode(v.value(), self.shape.groups, self.shape.sums)?
                    .groups
                    .get(g)
                    .is_some_and(|t| t.count > 0),
            };
            if keep {
                out.push(k.value().to_string());
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Rows after `after` (exclusive), at most `limit`, each with its
    /// totals and every record's group, read in one transaction, with the
    /// positions they reflect: what a comparison of two revisions reads.
    pub fn row_records(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<StoredRowRecords>, BTreeMap<i32, i64>), StoreError> {
        let txn = io!(self.db.begin_read())?;
        let totals = io!(txn.open_table(TOTALS))?;
        let records = io!(txn.open_table(RECORDS))?;
        let iter =
            match after {
                Some(a) => io!(totals
                    .range::<&str>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)))?,
                None => io!(totals.range::<&str>(..))?,
            };
        let mut rows = Vec::new();
        for entry in iter.take(limit) {
            let (k, v) = io!(entry)?;
            let key = k.value().to_string();
            let row = RowTotals::decode(v.value(), self.shape.groups, self.shape.sums)?;
            let groups = records_of(&records, &key)?
                .into_iter()
                .map(|(id, record)| (id, record.group))
                .collect();
            rows.push(StoredRowRecords {
                key,
                totals: row.groups,
                records: groups,
            });
        }
        let offsets = io!(txn.open_table(OFFSETS))?;
        let mut positions = BTreeMap::new();
        for entry in io!(offsets.iter())? {
            let (p, o) = io!(entry)?;
            positions.insert(p.value(), o.value());
        }
        Ok((rows, positions))
    }

    /// Number of rows (redb keeps the count: O(1)).
    pub fn row_count(&self) -> Result<u64, StoreError> {
        let txn = io!(self.db.begin_read())?;
        let table = io!(txn.open_table(TOTALS))?;
        io!(table.len())
    }
}
