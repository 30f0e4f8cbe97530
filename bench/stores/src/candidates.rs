//! The stores compared, each doing the projector's batch exactly: every
//! record replaces its earlier version (read, decide by version, write), a
//! row's totals move by the difference, the partitions' offsets are written
//! with them, and the whole batch is one atomic, fsynced commit. A read is a
//! row: its totals and (a row this small is never indexed) its records.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use matview::engine::row::{StoredRecord, apply_totals};
use matview::engine::{Record, Upsert};
use matview::projector::store::RowShape;
use matview::projector::store_codec::{RowTotals, decode_record, encode_record, record_key};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub trait Candidate: Send + Sync {
    /// Applies one batch and commits it durably.
    fn apply(&self, records: Vec<Record>, offsets: &BTreeMap<i32, i64>) -> Result<(), Error>;
    /// Reads one row; returns how many records it served.
    fn read_row(&self, key: &str) -> Result<usize, Error>;
}

/// matview's own store, as the projector uses it.
pub struct Redb(matview::projector::store::Store);

impl Redb {
    pub fn open(dir: &Path, shape: RowShape, cache_bytes: usize) -> Result<Redb, Error> {
        let identity = matview::projector::store::StoreIdentity {
            format: 0,
            view: "bench/stores".into(),
            revision: "r".into(),
            shard: 0,
            shards: 1,
        };
        let store = matview::projector::store::Store::open(dir, &identity, shape, cache_bytes)?;
        Ok(Redb(store))
    }
}

impl Candidate for Redb {
    fn apply(&self, records: Vec<Record>, offsets: &BTreeMap<i32, i64>) -> Result<(), Error> {
        self.0.apply_batch(records, offsets, &BTreeMap::new())?;
        Ok(())
    }

    fn read_row(&self, key: &str) -> Result<usize, Error> {
        Ok(self.0.row(key)?.map_or(0, |r| r.records.len()))
    }
}

/// What a key-value store without read-your-writes transactions needs:
/// committed reads, and one atomic durable write of many keys.
pub trait Kv: Send + Sync {
    fn get_record(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error>;
    fn get_totals(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error>;
    fn write(&self, writes: Writes) -> Result<(), Error>;
    /// Records whose keys start with `prefix`.
    fn scan_records(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, Error>;
}

/// One batch's writes.
#[derive(Default)]
pub struct Writes {
    pub records: HashMap<Vec<u8>, Vec<u8>>,
    pub totals: Vec<(Vec<u8>, Vec<u8>)>,
    pub offsets: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The projector's batch on a key-value store: reads see this batch's own
/// writes first, then what is committed.
pub struct OnKv<K> {
    pub kv: K,
    pub shape: RowShape,
}

impl<K: Kv> Candidate for OnKv<K> {
    fn apply(&self, mut records: Vec<Record>, offsets: &BTreeMap<i32, i64>) -> Result<(), Error> {
        records.sort_by(|a, b| (&a.key, &a.id).cmp(&(&b.key, &b.id)));
        let mut writes = Writes::default();
        let mut encoded = Vec::new();
        let mut rest = records.as_mut_slice();
        while let Some(first) = rest.first() {
            let n = rest.iter().take_while(|r| r.key == first.key).count();
            let (row, tail) = rest.split_at_mut(n);
            rest = tail;
            let key = row[0].key.clone();
            let held = self.kv.get_totals(key.as_bytes())?;
            let mut totals = match held {
                Some(bytes) => RowTotals::decode(&bytes, self.shape.groups, self.shape.sums)?,
                None => RowTotals::new(self.shape.groups, self.shape.sums),
            };
            let mut changed = false;
            for record in row.iter_mut() {
                let rk = record_key(&key, &record.id);
                let old = match writes.records.get(&rk) {
                    Some(bytes) => Some(decode_record(bytes)?),
                    None => self
                        .kv
                        .get_record(&rk)?
                        .map(|b| decode_record(&b))
                        .transpose()?,
                };
                let new = StoredRecord {
                    group: record.group,
                    fields: std::mem::take(&mut record.fields),
                    sums: std::mem::take(&mut record.sums),
                    version: record.version,
                };
                match apply_totals(&mut totals.groups, old.as_ref(), &new) {
                    Upsert::Stale | Upsert::Unchanged => continue,
                    Upsert::Inserted => totals.records += 1,
                    Upsert::Replaced => {}
                }
                encode_record(&new, &mut encoded);
                writes.records.insert(rk, encoded.clone());
                changed = true;
            }
            if changed {
                totals.encode(&mut encoded);
                writes.totals.push((key.into_bytes(), encoded.clone()));
            }
        }
        for (p, o) in offsets {
            writes
                .offsets
                .push((p.to_be_bytes().to_vec(), o.to_le_bytes().to_vec()));
        }
        self.kv.write(writes)
    }

    fn read_row(&self, key: &str) -> Result<usize, Error> {
        if self.kv.get_totals(key.as_bytes())?.is_none() {
            return Ok(0);
        }
        let prefix = matview::projector::store_codec::row_prefix(key);
        let mut served = 0;
        for bytes in self.kv.scan_records(&prefix)? {
            decode_record(&bytes)?;
            served += 1;
        }
        Ok(served)
    }
}

#[cfg(feature = "fjall")]
pub mod lsm {
    use super::*;
    use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

    /// fjall: an LSM tree in pure Rust, one keyspace per table.
    pub struct Fjall {
        db: Database,
        records: Keyspace,
        totals: Keyspace,
        offsets: Keyspace,
    }

    impl Fjall {
        pub fn open(dir: &Path, cache_bytes: usize) -> Result<Fjall, Error> {
            let db = Database::builder(dir)
                .cache_size(cache_bytes as u64)
                .open()?;
            let records = db.keyspace("records", KeyspaceCreateOptions::default)?;
            let totals = db.keyspace("totals", KeyspaceCreateOptions::default)?;
            let offsets = db.keyspace("offsets", KeyspaceCreateOptions::default)?;
            Ok(Fjall {
                db,
                records,
                totals,
                offsets,
            })
        }
    }

    impl Kv for Fjall {
        fn get_record(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
            Ok(self.records.get(key)?.map(|v| v.to_vec()))
        }

        fn get_totals(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
            Ok(self.totals.get(key)?.map(|v| v.to_vec()))
        }

        fn write(&self, writes: Writes) -> Result<(), Error> {
            let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
            for (k, v) in writes.records {
                batch.insert(&self.records, k, v);
            }
            for (k, v) in writes.totals {
                batch.insert(&self.totals, k, v);
            }
            for (k, v) in writes.offsets {
                batch.insert(&self.offsets, k, v);
            }
            batch.commit()?;
            Ok(())
        }

        fn scan_records(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
            let mut out = Vec::new();
            for guard in self.records.prefix(prefix) {
                out.push(guard.value()?.to_vec());
            }
            Ok(out)
        }
    }
}

#[cfg(feature = "rocksdb")]
pub mod rocks {
    use super::*;
    use rocksdb::{
        BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options,
        WriteBatch, WriteOptions,
    };

    /// RocksDB (rust-rocksdb on Debian's librocksdb 7.8), one column family
    /// per table, LZ4, bloom filters.
    pub struct Rocks {
        db: DB,
    }

    impl Rocks {
        pub fn open(dir: &Path, cache_bytes: usize) -> Result<Rocks, Error> {
            let cache = Cache::new_lru_cache(cache_bytes)?;
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            // Point reads of ids mostly new: bloom filters, as fjall has by default.
            table.set_bloom_filter(10.0, false);
            let mut options = Options::default();
            options.create_if_missing(true);
            options.create_missing_column_families(true);
            options.set_compression_type(rocksdb::DBCompressionType::Lz4);
            options.set_block_based_table_factory(&table);
            let families = ["records", "totals", "offsets"]
                .map(|name| ColumnFamilyDescriptor::new(name, options.clone()));
            let db = DB::open_cf_descriptors(&options, dir, families)?;
            Ok(Rocks { db })
        }

        fn family(&self, name: &str) -> Result<&rocksdb::ColumnFamily, Error> {
            self.db
                .cf_handle(name)
                .ok_or_else(|| format!("no column family {name}").into())
        }
    }

    impl Kv for Rocks {
        fn get_record(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
            Ok(self.db.get_cf(self.family("records")?, key)?)
        }

        fn get_totals(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
            Ok(self.db.get_cf(self.family("totals")?, key)?)
        }

        fn write(&self, writes: Writes) -> Result<(), Error> {
            let mut batch = WriteBatch::default();
            let (records, totals, offsets) = (
                self.family("records")?,
                self.family("totals")?,
                self.family("offsets")?,
            );
            for (k, v) in writes.records {
                batch.put_cf(records, k, v);
            }
            for (k, v) in writes.totals {
                batch.put_cf(totals, k, v);
            }
            for (k, v) in writes.offsets {
                batch.put_cf(offsets, k, v);
            }
            let mut options = WriteOptions::default();
            options.set_sync(true);
            self.db.write_opt(batch, &options)?;
            Ok(())
        }

        fn scan_records(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
            let mut out = Vec::new();
            let from = IteratorMode::From(prefix, Direction::Forward);
            for entry in self.db.iterator_cf(self.family("records")?, from) {
                let (k, v) = entry?;
                if !k.starts_with(prefix) {
                    break;
                }
                out.push(v.to_vec());
            }
            Ok(out)
        }
    }
}
