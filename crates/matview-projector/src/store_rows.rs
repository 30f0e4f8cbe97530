//! A batch's writes to rows: records withdrawn (their source key changed
//! or was deleted) and records put, row by row in key order, with each
//! row's totals and items index moved by the difference. A row left with
//! no record is removed.

use std::collections::BTreeMap;

use redb::ReadableTable;

use super::sources::{Removal, take_contributions};
use super::{
    BatchChanges, BatchOutcome, ChangedRow, ITEMS, LETTER_ENDS, META, OFFSETS, RECORDS, SOURCES,
    Store, StoreError, TOTALS,
};
use crate::store_codec::{
    RowTotals, decode_record, encode_item, encode_record, item_key, record_key, row_prefix,
};
use matview_engine::compile::GroupId;
use matview_engine::row::{StoredRecord, apply_totals, withdraw};
use matview_engine::{Record, Upsert};

/// The tables a batch writes, and a reused encoding buffer.
pub(crate) struct BatchTables<'txn> {
    pub(crate) records: redb::Table<'txn, &'static [u8], &'static [u8]>,
    pub(crate) totals: redb::Table<'txn, &'static str, &'static [u8]>,
    pub(crate) items: redb::Table<'txn, &'static [u8], &'static [u8]>,
    pub(crate) encoded: Vec<u8>,
}

/// A row's records by id, from the records table (read-only or being written).
pub(crate) fn records_of(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    row: &str,
) -> Result<Vec<(String, StoredRecord)>, StoreError> {
    let prefix = row_prefix(row);
    let mut out = Vec::new();
    for entry in io!(table.range(prefix.as_slice()..))? {
        let (k, v) = io!(entry)?;
        let k = k.value();
        if !k.starts_with(&prefix) {
            break;
        }
        let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
        out.push((id, decode_record(v.value())?));
    }
    Ok(out)
}

/// Groups in which a row holds records.
fn held_groups(totals: &RowTotals) -> impl Iterator<Item = GroupId> + '_ {
    totals
        .groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.count > 0)
        .map(|(g, _)| g as GroupId)
}

impl Store {
    /// Applies a batch in one atomic commit: `records` added (append),
    /// each changed source key's records replaced (upsert, debezium),
    /// `next_offsets` and where the batch's dead letters end. Readers see
    /// all of it or none of it.
    pub fn apply_batch(
        &self,
        changes: BatchChanges,
        next_offsets: &BTreeMap<i32, i64>,
        letter_ends: &BTreeMap<i32, i64>,
    ) -> Result<BatchOutcome, StoreError> {
        let txn = io!(self.db.begin_write())?;
        let mut outcome = BatchOutcome::default();
        {
            let mut tables = BatchTables {
                records: io!(txn.open_table(RECORDS))?,
                totals: io!(txn.open_table(TOTALS))?,
                items: io!(txn.open_table(ITEMS))?,
                encoded: Vec::with_capacity(256),
            };
            let mut puts = changes.records;
            let mut removals = Vec::new();
            if !changes.sources.is_empty() {
                let mut sources = io!(txn.open_table(SOURCES))?;
                outcome.sources = take_contributions(
                    &mut sources,
                    changes.sources,
                    &mut removals,
                    &mut puts,
                    &mut tables.encoded,
                )?;
            }
            self.apply_rows(&mut tables, puts, removals, &mut outcome)?;
            super::group_sizes::apply_deltas(
                &mut io!(txn.open_table(META))?,
                &outcome.group_deltas,
            )?;
            let mut offsets = io!(txn.open_table(OFFSETS))?;
            for (&p, &o) in next_offsets {
                io!(offsets.insert(p, o))?;
            }
            let mut ends = io!(txn.open_table(LETTER_ENDS))?;
            for (&p, &o) in letter_ends {
                let held = io!(ends.get(p))?.map(|v| v.value());
                io!(ends.insert(p, held.unwrap_or(o).max(o)))?;
            }
        }
        io!(txn.commit())?;
        Ok(outcome)
    }

    /// Every row the batch touches, in key order (which keeps B-tree writes
    /// local and reads and writes a row's totals once). Versions decide
    /// between records of the same id, so reordering does not change the
    /// result.
    pub(crate) fn apply_rows(
        &self,
        t: &mut BatchTables<'_>,
        mut puts: Vec<Record>,
        mut removals: Vec<Removal>,
        outcome: &mut BatchOutcome,
    ) -> Result<(), StoreError> {
        puts.sort_by(|a, b| (&a.key, &a.id).cmp(&(&b.key, &b.id)));
        removals.sort_by(|a, b| (&a.row, &a.id).cmp(&(&b.row, &b.id)));
        let (mut puts, mut removals) = (puts.as_mut_slice(), removals.as_slice());
        loop {
            let row = match (puts.first(), removals.first()) {
                (None, None) => break,
                (Some(p), None) => p.key.clone(),
                (None, Some(r)) => r.row.clone(),
                (Some(p), Some(r)) => p.key.as_str().min(r.row.as_str()).to_string(),
            };
            let np = puts.iter().take_while(|r| r.key == row).count();
            let nr = removals.iter().take_while(|r| r.row == row).count();
            let (row_puts, rest) = std::mem::take(&mut puts).split_at_mut(np);
            puts = rest;
            let (row_removals, rest) = removals.split_at(nr);
            removals = rest;
            self.apply_row(t, row, row_removals, row_puts, outcome)?;
        }
        Ok(())
    }

    /// One row's changes: withdrawn records leave (when still the version
    /// their source key wrote), then each put replaces its earlier version;
    /// totals move by the difference and an indexed row's items follow.
    fn apply_row(
        &self,
        t: &mut BatchTables<'_>,
        key: String,
        removals: &[Removal],
        puts: &mut [Record],
        outcome: &mut BatchOutcome,
    ) -> Result<(), StoreError> {
        let held = io!(t.totals.get(key.as_str()))?
            .map(|v| RowTotals::decode(v.value(), self.shape.groups, self.shape.sums))
            .transpose()?;
        if held.is_none() && puts.is_empty() {
            return Ok(());
        }
        let is_new = held.is_none();
        let mut totals = held.unwrap_or_else(|| RowTotals::new(self.shape.groups, self.shape.sums));
        let groups_before: Vec<GroupId> = held_groups(&totals).collect();
        let counts_before: Vec<u64> = totals.groups.iter().map(|g| g.count).collect();
        let mut changed = false;
        for removal in removals {
            // The key's new state has this record too: its put replaces it
            // (and moves the totals) in one operation.
            if puts
                .binary_search_by(|p| p.id.as_str().cmp(&removal.id))
                .is_ok()
            {
                continue;
            }
            let record_key = record_key(&key, &removal.id);
            // One B-tree operation in the common case: remove returns the
            // record; one another key (or a later message) holds now is put back.
            let old = io!(t.records.remove(record_key.as_slice()))?
                .map(|v| decode_record(v.value()))
                .transpose()?;
            let Some(old) = old else { continue };
            if old.version != removal.version {
                encode_record(&old, &mut t.encoded);
                io!(t
                    .records
                    .insert(record_key.as_slice(), t.encoded.as_slice()))?;
                continue;
            }
            withdraw(&mut totals.groups, &old);
            totals.records = totals.records.saturating_sub(1);
            if totals.indexed {
                self.unindex(t, &key, &removal.id, &old)?;
            }
            outcome.removed += 1;
            changed = true;
        }
        for record in puts.iter_mut() {
            changed |= self.put(t, &key, &mut totals, record, outcome)?;
        }
        if !changed {
            return Ok(());
        }
        let counts_after: Vec<u64> = totals.groups.iter().map(|g| g.count).collect();
        outcome.group_deltas.add_row(&counts_before, &counts_after);
        let left_groups = groups_before
            .into_iter()
            .filter(|g| totals.groups[usize::from(*g)].count == 0)
            .collect();
        outcome.changed_rows.push(ChangedRow {
            key: key.clone(),
            left_groups,
        });
        if totals.records == 0 {
            io!(t.totals.remove(key.as_str()))?;
            outcome.removed_rows += u64::from(!is_new);
            return Ok(());
        }
        if !totals.indexed
            && self
                .shape
                .index_above()
                .is_some_and(|above| totals.records > above)
        {
            self.index_row(t, &key)?;
            totals.indexed = true;
        }
        totals.encode(&mut t.encoded);
        io!(t.totals.insert(key.as_str(), t.encoded.as_slice()))?;
        if is_new {
            outcome.new_rows += 1;
        }
        Ok(())
    }

    /// Puts one record; true when it changed the row.
    fn put(
        &self,
        t: &mut BatchTables<'_>,
        key: &str,
        totals: &mut RowTotals,
        record: &mut Record,
        outcome: &mut BatchOutcome,
    ) -> Result<bool, StoreError> {
        let record_key = record_key(key, &record.id);
        let new = StoredRecord {
            group: record.group,
            fields: std::mem::take(&mut record.fields),
            sums: std::mem::take(&mut record.sums),
            version: record.version,
        };
        encode_record(&new, &mut t.encoded);
        // One B-tree operation in the common case: insert returns the
        // previous value; when that one was newer, it is put back.
        let old = io!(t
            .records
            .insert(record_key.as_slice(), t.encoded.as_slice()))?
        .map(|v| decode_record(v.value()))
        .transpose()?;
        match apply_totals(&mut totals.groups, old.as_ref(), &new) {
            kept @ (Upsert::Stale | Upsert::Unchanged) => {
                if kept == Upsert::Stale {
                    outcome.stale += 1;
                } else {
                    outcome.unchanged += 1;
                }
                if let Some(old) = &old {
                    encode_record(old, &mut t.encoded);
                    io!(t
                        .records
                        .insert(record_key.as_slice(), t.encoded.as_slice()))?;
                }
                return Ok(false);
            }
            Upsert::Inserted => {
                outcome.inserted += 1;
                totals.records += 1;
            }
            Upsert::Replaced => outcome.replaced += 1,
        }
        if totals.indexed {
            if let Some(old) = &old {
                self.unindex(t, key, &record.id, old)?;
            }
            self.index(t, key, &record.id, &new)?;
        }
        Ok(true)
    }

    fn index(
        &self,
        t: &mut BatchTables<'_>,
        row: &str,
        id: &str,
        record: &StoredRecord,
    ) -> Result<(), StoreError> {
        let Some(group) = record.group else {
            return Ok(());
        };
        let key = item_key(row, group, self.shape.order_value(record), id);
        encode_item(id, record, &mut t.encoded);
        io!(t.items.insert(key.as_slice(), t.encoded.as_slice()))?;
        Ok(())
    }

    fn unindex(
        &self,
        t: &mut BatchTables<'_>,
        row: &str,
        id: &str,
        record: &StoredRecord,
    ) -> Result<(), StoreError> {
        if let Some(group) = record.group {
            let key = item_key(row, group, self.shape.order_value(record), id);
            io!(t.items.remove(key.as_slice()))?;
        }
        Ok(())
    }

    /// A row grew past what a read may scan whole: index all its items.
    fn index_row(&self, t: &mut BatchTables<'_>, row: &str) -> Result<(), StoreError> {
        for (id, record) in records_of(&t.records, row)? {
            self.index(t, row, &id, &record)?;
        }
        Ok(())
    }
}
