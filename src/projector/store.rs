//! The projector's durable state in redb: records, per-row totals and the
//! consumed offsets, all written by one transaction per batch, so a crash at
//! any instant leaves either the whole batch (with its offsets) or none of it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::engine::row::{GroupTotals, StoredRecord, apply_totals};
use crate::engine::{Record, Row, Upsert};

/// (row key, record id) encoded by [`record_key`] → record (JSON).
const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
/// row key → per-group totals (JSON).
const TOTALS: TableDefinition<&str, &[u8]> = TableDefinition::new("totals");
/// partition → next offset to consume.
const OFFSETS: TableDefinition<i32, i64> = TableDefinition::new("offsets");
/// "identity" → which view, revision and shard this store belongs to (JSON).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Whose state a store holds; a store is never reused for another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreIdentity {
    pub view: String,
    pub revision: String,
    pub shard: u32,
    pub shards: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: PathBuf,
        source: Box<redb::DatabaseError>,
    },
    #[error(
        "the data directory holds {found:?}, not {expected:?}; refusing to mix states. \
         Point --data-dir elsewhere or delete it to rebuild from the topic"
    )]
    ForeignState {
        found: StoreIdentity,
        expected: StoreIdentity,
    },
    #[error("store I/O failed: {0}")]
    Io(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

macro_rules! io {
    ($e:expr) => {
        $e.map_err(|e| StoreError::Io(e.to_string()))
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
}

pub struct Store {
    db: Database,
    groups: usize,
    sums: usize,
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

impl Store {
    /// Opens (or creates) the store in `dir`, refusing state of another view,
    /// revision or shard.
    pub fn open(
        dir: &Path,
        identity: &StoreIdentity,
        groups: usize,
        sums: usize,
    ) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("view.redb");
        let db = Database::create(&path).map_err(|e| StoreError::Open {
            path: path.clone(),
            source: Box::new(e),
        })?;
        let txn = io!(db.begin_write())?;
        {
            let mut meta = io!(txn.open_table(META))?;
            let found = io!(meta.get("identity"))?
                .map(|v| serde_json::from_slice::<StoreIdentity>(v.value()))
                .transpose()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            match found {
                Some(found) if &found != identity => {
                    return Err(StoreError::ForeignState {
                        found,
                        expected: identity.clone(),
                    });
                }
                Some(_) => {}
                None => {
                    let bytes =
                        serde_json::to_vec(identity).map_err(|e| StoreError::Io(e.to_string()))?;
                    io!(meta.insert("identity", bytes.as_slice()))?;
                }
            }
            io!(txn.open_table(RECORDS))?;
            io!(txn.open_table(TOTALS))?;
            io!(txn.open_table(OFFSETS))?;
        }
        io!(txn.commit())?;
        Ok(Store { db, groups, sums })
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

    /// Applies a batch of records and records `next_offsets` in one atomic commit.
    pub fn apply_batch(
        &self,
        records: Vec<Record>,
        next_offsets: &BTreeMap<i32, i64>,
    ) -> Result<BatchOutcome, StoreError> {
        let txn = io!(self.db.begin_write())?;
        let mut outcome = BatchOutcome::default();
        {
            let mut table = io!(txn.open_table(RECORDS))?;
            let mut totals_table = io!(txn.open_table(TOTALS))?;
            let mut totals: HashMap<String, (Vec<GroupTotals>, bool)> = HashMap::new();
            for record in records {
                let key = record_key(&record.key, &record.id);
                let old = io!(table.get(key.as_slice()))?
                    .map(|v| serde_json::from_slice::<StoredRecord>(v.value()))
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let new = StoredRecord {
                    group: record.group,
                    fields: record.fields,
                    sums: record.sums,
                    version: record.version,
                };
                if !totals.contains_key(&record.key) {
                    let loaded = match io!(totals_table.get(record.key.as_str()))? {
                        Some(v) => serde_json::from_slice(v.value())
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                        None => Row::new(self.groups, self.sums).totals,
                    };
                    totals.insert(record.key.clone(), (loaded, false));
                }
                let Some((row_totals, dirty)) = totals.get_mut(&record.key) else {
                    continue;
                };
                match apply_totals(row_totals, old.as_ref(), &new) {
                    Upsert::Stale => outcome.stale += 1,
                    Upsert::Unchanged => outcome.unchanged += 1,
                    change => {
                        if change == Upsert::Inserted {
                            outcome.inserted += 1;
                        } else {
                            outcome.replaced += 1;
                        }
                        *dirty = true;
                        let bytes =
                            serde_json::to_vec(&new).map_err(|e| StoreError::Io(e.to_string()))?;
                        io!(table.insert(key.as_slice(), bytes.as_slice()))?;
                    }
                }
            }
            for (row, (row_totals, dirty)) in totals {
                if dirty {
                    let bytes = serde_json::to_vec(&row_totals)
                        .map_err(|e| StoreError::Io(e.to_string()))?;
                    io!(totals_table.insert(row.as_str(), bytes.as_slice()))?;
                    outcome.changed_rows.push(row);
                }
            }
            let mut offsets = io!(txn.open_table(OFFSETS))?;
            for (&p, &o) in next_offsets {
                io!(offsets.insert(p, o))?;
            }
        }
        io!(txn.commit())?;
        outcome.changed_rows.sort();
        Ok(outcome)
    }

    /// The row of `key`, if any record ever reached it.
    pub fn row(&self, key: &str) -> Result<Option<Row>, StoreError> {
        let txn = io!(self.db.begin_read())?;
        let totals_table = io!(txn.open_table(TOTALS))?;
        let Some(totals) = io!(totals_table.get(key))? else {
            return Ok(None);
        };
        let totals: Vec<GroupTotals> = serde_json::from_slice(totals.value())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let table = io!(txn.open_table(RECORDS))?;
        let prefix = row_prefix(key);
        let mut row = Row {
            records: BTreeMap::new(),
            totals,
        };
        for entry in io!(table.range(prefix.as_slice()..))? {
            let (k, v) = io!(entry)?;
            let k = k.value();
            if !k.starts_with(&prefix) {
                break;
            }
            let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let record: StoredRecord = serde_json::from_slice(v.value())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            row.records.insert(id, record);
        }
        Ok(Some(row))
    }

    /// Row keys after `after` (exclusive) whose group `group` is not empty, at most `limit`.
    pub fn keys_in_group(
        &self,
        group: usize,
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
            let totals: Vec<GroupTotals> = serde_json::from_slice(v.value())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if totals.get(group).is_some_and(|t| t.count > 0) {
                out.push(k.value().to_string());
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Number of rows.
    pub fn row_count(&self) -> Result<u64, StoreError> {
        let txn = io!(self.db.begin_read())?;
        let table = io!(txn.open_table(TOTALS))?;
        io!(table.len())
    }
}
