//! The projector's durable state in redb: records, per-row totals and the
//! consumed offsets, all written by one transaction per batch, so a crash at
//! any instant leaves either the whole batch (with its offsets) or none of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::engine::row::{StoredRecord, apply_totals};
use crate::engine::{Record, Row, Upsert};

/// (row key, record id) encoded by [`record_key`] → record (JSON).
const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
/// row key → nothing: which rows exist. Totals are folded from a row's records
/// when it is read, so a batch writes each record once and nothing per row.
const ROWS: TableDefinition<&str, ()> = TableDefinition::new("rows");

/// Version of the on-disk layout; a store of another layout is refused.
const STORE_FORMAT: u32 = 2;
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
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

macro_rules! io {
    ($e:expr) => {
        $e.map_err(|e| StoreError::Io(Box::new(redb::Error::from(e))))
    };
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
    groups: usize,
    sums: usize,
    path: PathBuf,
}

/// Encodes (row key, id) so that all records of a row are one contiguous range.
fn record_key(row: &str, id: &str) -> Vec<u8> {
    let mut key = row_prefix(row);
    key.extend_from_slice(id.as_bytes());
    key
}

fn row_prefix(row: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + row.len() + 16);
    key.extend_from_slice(&(row.len() as u32).to_be_bytes());
    key.extend_from_slice(row.as_bytes());
    key
}

/// Compact record encoding: group (u16, MAX = none), partition (i32), offset
/// (i64), sums (count u8, then i128 nanos each), then the fields as a JSON array.
fn encode_record(r: &StoredRecord, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&r.group.unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(&r.version.partition.to_le_bytes());
    out.extend_from_slice(&r.version.offset.to_le_bytes());
    out.push(r.sums.len() as u8);
    for s in &r.sums {
        out.extend_from_slice(&s.to_nanos().to_le_bytes());
    }
    // Writing JSON into a Vec cannot fail for values that came from JSON.
    let _ = serde_json::to_writer(&mut *out, &r.fields);
}

fn decode_record(bytes: &[u8]) -> Result<StoredRecord, StoreError> {
    let corrupt = || StoreError::Corrupt("truncated record".into());
    let take = |at: usize, n: usize| bytes.get(at..at + n).ok_or_else(corrupt);
    let group = u16::from_le_bytes(take(0, 2)?.try_into().map_err(|_| corrupt())?);
    let partition = i32::from_le_bytes(take(2, 4)?.try_into().map_err(|_| corrupt())?);
    let offset = i64::from_le_bytes(take(6, 8)?.try_into().map_err(|_| corrupt())?);
    let count = usize::from(*take(14, 1)?.first().ok_or_else(corrupt)?);
    let mut sums = Vec::with_capacity(count);
    for i in 0..count {
        let raw = i128::from_le_bytes(take(15 + 16 * i, 16)?.try_into().map_err(|_| corrupt())?);
        sums.push(crate::engine::Decimal::from_nanos(raw));
    }
    let fields = serde_json::from_slice(&bytes[(15 + 16 * count).min(bytes.len())..])
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(StoredRecord {
        group: (group != u16::MAX).then_some(group),
        fields,
        sums,
        version: crate::engine::Position { partition, offset },
    })
}

impl Store {
    /// Opens (or creates) the store in `dir`, refusing state of another view,
    /// revision or shard.
    pub fn open(
        dir: &Path,
        identity: &StoreIdentity,
        groups: usize,
        sums: usize,
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
                Some(found) if &found != identity => {
                    return Err(StoreError::ForeignState {
                        found: Box::new(found),
                        expected: Box::new(identity.clone()),
                    });
                }
                Some(_) => {}
                None => {
                    let bytes = serde_json::to_vec(identity)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    io!(meta.insert("identity", bytes.as_slice()))?;
                }
            }
            io!(txn.open_table(RECORDS))?;
            io!(txn.open_table(ROWS))?;
            io!(txn.open_table(OFFSETS))?;
            io!(txn.open_table(LETTER_ENDS))?;
        }
        io!(txn.commit())?;
        Ok(Store {
            db,
            groups,
            sums,
            path,
        })
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
        // Key order keeps B-tree writes local; versions decide between
        // records of the same id, so reordering does not change the result.
        records.sort_by(|a, b| (&a.key, &a.id).cmp(&(&b.key, &b.id)));
        let txn = io!(self.db.begin_write())?;
        let mut outcome = BatchOutcome::default();
        {
            let mut table = io!(txn.open_table(RECORDS))?;
            let mut rows_table = io!(txn.open_table(ROWS))?;
            let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
            let mut changed: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
            // apply_totals decides the outcome from the two versions; the
            // totals it moves here are scratch (rows fold theirs when read).
            let mut scratch = Row::new(self.groups, self.sums).totals;
            let mut encoded = Vec::with_capacity(256);
            for record in records {
                let key = record_key(&record.key, &record.id);
                let new = StoredRecord {
                    group: record.group,
                    fields: record.fields,
                    sums: record.sums,
                    version: record.version,
                };
                encode_record(&new, &mut encoded);
                // One B-tree operation in the common case: insert returns the
                // previous value; when that one was newer, it is put back.
                let old = io!(table.insert(key.as_slice(), encoded.as_slice()))?
                    .map(|v| decode_record(v.value()))
                    .transpose()?;
                match apply_totals(&mut scratch, old.as_ref(), &new) {
                    // The held version stays: put its bytes back.
                    kept @ (Upsert::Stale | Upsert::Unchanged) => {
                        if kept == Upsert::Stale {
                            outcome.stale += 1;
                        } else {
                            outcome.unchanged += 1;
                        }
                        if let Some(old) = &old {
                            encode_record(old, &mut encoded);
                            io!(table.insert(key.as_slice(), encoded.as_slice()))?;
                        }
                        continue;
                    }
                    Upsert::Inserted => outcome.inserted += 1,
                    Upsert::Replaced => outcome.replaced += 1,
                }
                if old.is_none() && !seen.contains(&record.key) {
                    seen.insert(record.key.clone());
                    if io!(rows_table.get(record.key.as_str()))?.is_none() {
                        io!(rows_table.insert(record.key.as_str(), ()))?;
                        outcome.new_rows += 1;
                    }
                }
                changed.insert(record.key);
            }
            outcome.changed_rows = changed.into_iter().collect();
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

    /// The row of `key`, if any record ever reached it.
    pub fn row(&self, key: &str) -> Result<Option<Row>, StoreError> {
        let txn = io!(self.db.begin_read())?;
        let rows_table = io!(txn.open_table(ROWS))?;
        if io!(rows_table.get(key))?.is_none() {
            return Ok(None);
        }
        let table = io!(txn.open_table(RECORDS))?;
        self.fold_row(&table, key).map(Some)
    }

    /// A row's records and the totals folded from them.
    fn fold_row(
        &self,
        table: &redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
        key: &str,
    ) -> Result<Row, StoreError> {
        let prefix = row_prefix(key);
        let mut row = Row::new(self.groups, self.sums);
        for entry in io!(table.range(prefix.as_slice()..))? {
            let (k, v) = io!(entry)?;
            let k = k.value();
            if !k.starts_with(&prefix) {
                break;
            }
            let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            row.upsert_stored(id, decode_record(v.value())?);
        }
        Ok(row)
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
        let table = io!(txn.open_table(ROWS))?;
        let records = io!(txn.open_table(RECORDS))?;
        let mut out = Vec::new();
        let iter = match after {
            Some(a) => {
                io!(table.range::<&str>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)))?
            }
            None => io!(table.range::<&str>(..))?,
        };
        for entry in iter {
            let (k, _) = io!(entry)?;
            let keep = match group {
                None => true,
                Some(g) => self
                    .fold_row(&records, k.value())?
                    .totals
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

    /// Number of rows (redb keeps the count: O(1)).
    pub fn row_count(&self) -> Result<u64, StoreError> {
        let txn = io!(self.db.begin_read())?;
        let table = io!(txn.open_table(ROWS))?;
        io!(table.len())
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

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
