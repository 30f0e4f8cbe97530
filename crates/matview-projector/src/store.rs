//! The projector's durable state in redb: records, per-row totals and the
//! consumed offsets, all written by one transaction per batch, so a crash at
//! any instant leaves either the whole batch (with its offsets) or none of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::store_codec::{
    CorruptData, RowTotals, decode_record, encode_item, encode_record, item_key, record_key,
    row_prefix,
};
use matview_engine::compile::{CompiledItems, CompiledView};
use matview_engine::row::{StoredRecord, apply_totals};
use matview_engine::{Record, Upsert};

/// (row key, record id) encoded by [`record_key`] → record.
const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
/// row key → [`RowTotals`]: which rows exist, and their counts and sums,
/// kept by every batch, so a read never folds a row's records.
const TOTALS: TableDefinition<&str, &[u8]> = TableDefinition::new("totals");
/// (row, group, order value, id) by [`item_key`] → (id, record): the items
/// of rows too big to read whole, in serving order, so a read takes the
/// first `limit` of each group and nothing else.
const ITEMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("items");

/// Version of the on-disk layout; a store of another layout is rebuilt.
const STORE_FORMAT: u32 = 3;
/// partition → next offset to consume.
const OFFSETS: TableDefinition<i32, i64> = TableDefinition::new("offsets");
/// "identity" → which view, revision and shard this store belongs to (JSON);
/// "letter-ends" → present once LETTER_ENDS is set up.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// dead-letter partition → offset after the last letter of a committed batch
/// (or the partition's end when the store began): later letters of this
/// shard may be from a batch a crash cut short.
const LETTER_ENDS: TableDefinition<i32, i64> = TableDefinition::new("letter_ends");
const LETTER_ENDS_SET: &str = "letter-ends";

/// What a view's rows hold: groups, sums per group, and the bounded items
/// list a read serves (if any).
#[derive(Debug, Clone)]
pub struct RowShape {
    pub groups: usize,
    pub sums: usize,
    pub items: Option<CompiledItems>,
}

impl RowShape {
    pub fn of(view: &CompiledView) -> RowShape {
        RowShape {
            groups: view.groups.len(),
            sums: view.aggregate.sums.len(),
            items: view.aggregate.items.clone(),
        }
    }

    /// Records a row may hold before its items are indexed: up to that,
    /// reading the whole row costs no more than the items a read serves.
    fn index_above(&self) -> Option<u64> {
        self.items.as_ref().map(|i| i.limit.max(64) as u64)
    }

    fn order_value<'a>(
        &self,
        record: &'a StoredRecord,
    ) -> Option<&'a matview_engine::json::RawJson> {
        let field = self.items.as_ref()?.order_by?;
        record.fields.get(field)
    }
}

/// Whose state a store holds; a store is never reused for another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreIdentity {
    /// Layout of the store (missing in old stores, which are then refused).
    #[serde(default)]
    pub format: u32,
    pub view: String,
    pub revision: String,
    pub shard: u32,
    pub shards: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: Box<redb::DatabaseError>,
    },
    #[error("cannot create the data directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the data directory holds {found:?}, not {expected:?}; refusing to mix states. \
         Point --data-dir elsewhere or delete it to rebuild from the topic"
    )]
    ForeignState {
        found: Box<StoreIdentity>,
        expected: Box<StoreIdentity>,
    },
    #[error(
        "the store at {path} is damaged ({detail}); it was changed outside the \
         projector or the disk failed"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error("store I/O failed")]
    Io(#[source] Box<redb::Error>),
    #[error(transparent)]
    Corrupt(#[from] CorruptData),
    #[error(
        "the store at {path} has layout {found}, this version writes layout {expected}; \
         it is rebuilt from the topic"
    )]
    Outdated {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
}

macro_rules! io {
    ($e:expr) => {
        $e.map_err(|e| StoreError::Io(Box::new(redb::Error::from(e))))
    };
}

/// The first key after every key that starts with `prefix` (`None`: no end).
fn prefix_end(mut prefix: Vec<u8>) -> Option<Vec<u8>> {
    while let Some(last) = prefix.pop() {
        if last < u8::MAX {
            prefix.push(last + 1);
            return Some(prefix);
        }
    }
    None
}

/// A row's records by id, from the records table (read-only or being written).
fn records_of(
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

/// The tables a batch writes, and a reused encoding buffer.
struct BatchTables<'txn> {
    records: redb::Table<'txn, &'static [u8], &'static [u8]>,
    totals: redb::Table<'txn, &'static str, &'static [u8]>,
    items: redb::Table<'txn, &'static [u8], &'static [u8]>,
    encoded: Vec<u8>,
}

/// What one batch changed.
#[derive(Debug, Default, Clone)]
pub struct BatchOutcome {
    /// Rows whose content changed, in key order.
    pub changed_rows: Vec<String>,
    pub inserted: u64,
    pub replaced: u64,
    pub unchanged: u64,
    pub stale: u64,
    pub new_rows: u64,
}

pub struct Store {
    db: Database,
    shape: RowShape,
    path: PathBuf,
}

impl Store {
    /// Opens (or creates) the store in `dir`, refusing state of another view,
    /// revision or shard.
    pub fn open(
        dir: &Path,
        identity: &StoreIdentity,
        shape: RowShape,
        cache_bytes: usize,
    ) -> Result<Store, StoreError> {
        let identity = &StoreIdentity {
            format: STORE_FORMAT,
            ..identity.clone()
        };
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = Self::file_in(dir);
        let damaged = |detail: String| StoreError::Damaged {
            path: path.clone(),
            detail,
        };
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes.max(16 << 20))
            // Every page's checksum, at every start: a file changed behind
            // redb's back is refused, never trusted (a plain open may panic).
            .set_check_integrity_on_open(true)
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => {
                    damaged(detail)
                }
                // Not a redb file at all (a garbled or truncated header).
                redb::DatabaseError::Storage(redb::StorageError::Io(io))
                    if io.kind() == std::io::ErrorKind::InvalidData =>
                {
                    damaged(io.to_string())
                }
                e => StoreError::Open {
                    path: path.clone(),
                    source: Box::new(e),
                },
            })?;
        let txn = io!(db.begin_write())?;
        {
            let mut meta = io!(txn.open_table(META))?;
            let found = io!(meta.get("identity"))?
                .map(|v| serde_json::from_slice::<StoreIdentity>(v.value()))
                .transpose()
                .map_err(|e| damaged(format!("unreadable identity: {e}")))?;
            match found {
                Some(found)
                    if found.format != identity.format
                        && StoreIdentity {
                            format: identity.format,
                            ..found.clone()
                        } == *identity =>
                {
                    return Err(StoreError::Outdated {
                        path: path.clone(),
                        found: found.format,
                        expected: identity.format,
                    });
                }
                Some(found) if &found != identity => {
                    return Err(StoreError::ForeignState {
                        found: Box::new(found),
                        expected: Box::new(identity.clone()),
                    });
                }
                Some(_) => {}
                None => {
                    let bytes = serde_json::to_vec(identity)
                        .map_err(|e| StoreError::Corrupt(CorruptData(e.to_string())))?;
                    io!(meta.insert("identity", bytes.as_slice()))?;
                }
            }
            io!(txn.open_table(RECORDS))?;
            io!(txn.open_table(TOTALS))?;
            io!(txn.open_table(ITEMS))?;
            io!(txn.open_table(OFFSETS))?;
            io!(txn.open_table(LETTER_ENDS))?;
        }
        io!(txn.commit())?;
        Ok(Store { db, shape, path })
    }

    /// The store's file in a data directory.
    pub fn file_in(dir: &Path) -> PathBuf {
        dir.join("view.redb")
    }

    /// Next offset to consume per partition, as last committed.
    pub fn positions(&self) -> Result<BTreeMap<i32, i64>, StoreError> {
        let txn = io!(self.db.begin_read())?;
        let table = io!(txn.open_table(OFFSETS))?;
        let mut out = BTreeMap::new();
        for entry in io!(table.iter())? {
            let (p, o) = io!(entry)?;
            out.insert(p.value(), o.value());
        }
        Ok(out)
    }

    /// Where this shard's committed dead letters end; `None` until
    /// [`Store::begin_letter_ends`] ran once.
    pub fn letter_ends(&self) -> Result<Option<BTreeMap<i32, i64>>, StoreError> {
        let txn = io!(self.db.begin_read())?;
        if io!(io!(txn.open_table(META))?.get(LETTER_ENDS_SET))?.is_none() {
            return Ok(None);
        }
        let table = io!(txn.open_table(LETTER_ENDS))?;
        let mut out = BTreeMap::new();
        for entry in io!(table.iter())? {
            let (p, o) = io!(entry)?;
            out.insert(p.value(), o.value());
        }
        Ok(Some(out))
    }

    /// Records where the dead-letter topic ends before this store sends any
    /// letter (so a restart never scans letters older than the store).
    pub fn begin_letter_ends(&self, ends: &BTreeMap<i32, i64>) -> Result<(), StoreError> {
        let txn = io!(self.db.begin_write())?;
        {
            let mut table = io!(txn.open_table(LETTER_ENDS))?;
            for (&p, &o) in ends {
                io!(table.insert(p, o))?;
            }
            io!(io!(txn.open_table(META))?.insert(LETTER_ENDS_SET, [].as_slice()))?;
        }
        io!(txn.commit())
    }

    /// Applies a batch of records and records `next_offsets` (and where the
    /// batch's dead letters end) in one atomic commit.
    pub fn apply_batch(
        &self,
        mut records: Vec<Record>,
        next_offsets: &BTreeMap<i32, i64>,
        letter_ends: &BTreeMap<i32, i64>,
    ) -> Result<BatchOutcome, StoreError> {
        // Key order keeps B-tree writes local and puts a row's records
        // together, so its totals are read and written once per batch;
        // versions decide between records of the same id, so reordering
        // does not change the result.
        records.sort_by(|a, b| (&a.key, &a.id).cmp(&(&b.key, &b.id)));
        let txn = io!(self.db.begin_write())?;
        let mut outcome = BatchOutcome::default();
        {
            let mut tables = BatchTables {
                records: io!(txn.open_table(RECORDS))?,
                totals: io!(txn.open_table(TOTALS))?,
                items: io!(txn.open_table(ITEMS))?,
                encoded: Vec::with_capacity(256),
            };
            let mut rest = records.as_mut_slice();
            while let Some(first) = rest.first() {
                let n = rest.iter().take_while(|r| r.key == first.key).count();
                let (row, tail) = rest.split_at_mut(n);
                self.apply_row(&mut tables, row, &mut outcome)?;
                rest = tail;
            }
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

    /// One row's records of a batch: each record replaces its earlier
    /// version, the row's totals move by the difference, and an indexed
    /// row's items follow.
    fn apply_row(
        &self,
        t: &mut BatchTables<'_>,
        records: &mut [Record],
        outcome: &mut BatchOutcome,
    ) -> Result<(), StoreError> {
        let Some(key) = records.first().map(|r| r.key.clone()) else {
            return Ok(());
        };
        let held = io!(t.totals.get(key.as_str()))?
            .map(|v| RowTotals::decode(v.value(), self.shape.groups, self.shape.sums))
            .transpose()?;
        let is_new = held.is_none();
        let mut totals = held.unwrap_or_else(|| RowTotals::new(self.shape.groups, self.shape.sums));
        let mut changed = false;
        for record in records.iter_mut() {
            let record_key = record_key(&key, &record.id);
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
                    continue;
                }
                Upsert::Inserted => {
                    outcome.inserted += 1;
                    totals.records += 1;
                }
                Upsert::Replaced => outcome.replaced += 1,
            }
            changed = true;
            if totals.indexed {
                if let Some(old) = &old {
                    self.unindex(t, &key, &record.id, old)?;
                }
                self.index(t, &key, &record.id, &new)?;
            }
        }
        if !changed {
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
        outcome.changed_rows.push(key);
        Ok(())
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

    /// Bytes an unprivileged writer may still use on the store's file system.
    pub fn free_bytes(&self) -> Option<u64> {
        use std::os::unix::ffi::OsStrExt;
        let dir = self.path.parent()?;
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: statvfs(3) fills `stat` when it returns 0; `path` is a valid C string.
        let stat = unsafe {
            if libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) != 0 {
                return None;
            }
            stat.assume_init()
        };
        Some(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// Size of the store file in bytes.
    pub fn file_bytes(&self) -> Option<u64> {
        std::fs::metadata(&self.path).ok().map(|m| m.len())
    }
}

#[path = "store_reads.rs"]
mod reads;

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
