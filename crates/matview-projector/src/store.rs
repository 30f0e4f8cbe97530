//! The projector's durable state in redb: records, per-row totals and the
//! consumed offsets, all written by one transaction per batch, so a crash at
//! any instant leaves either the whole batch (with its offsets) or none of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::store_codec::CorruptData;
use matview_engine::compile::{CompiledItems, CompiledView, GroupId};
use matview_engine::row::StoredRecord;
use matview_engine::{Position, Record};

/// What a batch applies: records added, and source keys whose records are
/// replaced (each key once, with its latest state in the batch).
#[derive(Debug, Default)]
pub struct BatchChanges {
    pub records: Vec<Record>,
    pub sources: Vec<SourceChange>,
}

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
/// source key (the Kafka message key's bytes) → [`Contribution`].
const SOURCES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sources");

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
    pub(super) fn index_above(&self) -> Option<u64> {
        self.items.as_ref().map(|i| i.limit.max(64) as u64)
    }

    pub(super) fn order_value<'a>(
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

/// The latest state of one source key in a batch: its records now (empty:
/// the key was deleted). Earlier states of the key in the same batch are
/// superseded and never applied, since the batch commits as one.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceChange {
    pub key: Vec<u8>,
    pub version: Position,
    pub records: Vec<Record>,
}

/// What a batch's source changes did, beyond records.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SourceCounts {
    /// Source keys removed (tombstone, Debezium delete).
    pub deleted: u64,
    /// Deletes of keys the view never held: counted, not an error.
    pub unknown_deletes: u64,
}

/// What one batch changed.
#[derive(Debug, Default, Clone)]
pub struct BatchOutcome {
    /// Rows whose content changed, in key order.
    pub changed_rows: Vec<ChangedRow>,
    pub inserted: u64,
    pub replaced: u64,
    pub unchanged: u64,
    pub stale: u64,
    /// Records withdrawn because their source key changed or was deleted.
    pub removed: u64,
    pub new_rows: u64,
    /// Rows left with no record, gone from the store.
    pub removed_rows: u64,
    pub sources: SourceCounts,
    /// How the batch moved each group's rows and records.
    pub group_deltas: group_sizes::GroupDeltas,
}

/// A row a batch changed, and the groups it held records in before the
/// batch and holds none in after (so a group's watchers learn it left).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedRow {
    pub key: String,
    pub left_groups: Vec<GroupId>,
}

pub struct Store {
    db: Database,
    pub(super) shape: RowShape,
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
            let totals = io!(txn.open_table(TOTALS))?;
            io!(txn.open_table(ITEMS))?;
            io!(txn.open_table(OFFSETS))?;
            io!(txn.open_table(LETTER_ENDS))?;
            io!(txn.open_table(SOURCES))?;
            group_sizes::count_if_missing(&mut meta, &totals, &shape)?;
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

/// A row's totals and every record's group, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRowRecords {
    pub key: String,
    /// Indexed by group id.
    pub totals: Vec<matview_engine::row::GroupTotals>,
    /// Record id → group.
    pub records: Vec<(String, Option<matview_engine::rules::GroupId>)>,
}

#[path = "store_reads.rs"]
mod reads;

#[path = "store_rows.rs"]
mod rows;

#[path = "store_group_sizes.rs"]
pub mod group_sizes;

#[path = "store_sources.rs"]
mod sources;

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "store_upsert_tests.rs"]
mod upsert_tests;
