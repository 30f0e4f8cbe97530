//! The broker's storage: one append-only file of record batches per
//! partition, with an in-memory index rebuilt at start. A torn tail (a batch
//! cut short or failing its CRC, as a crash mid-write leaves it) is cut off
//! at start, so the log always ends on a whole batch.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use tokio::sync::Notify;
use tracing::warn;

use super::batch::{self, BatchError};

const PARTITIONS_FILE: &str = "partitions";

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot use the broker's data at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} does not hold a partition count")]
    BadTopic { path: PathBuf },
    #[error("no such topic or partition: {0}")]
    UnknownPartition(String),
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("offset {offset} is outside the log (0..={high_watermark})")]
    OutOfRange { offset: i64, high_watermark: i64 },
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("topic name {0:?} is not valid: 1 to 249 of a-z A-Z 0-9 . _ - and not . or ..")]
    InvalidTopic(String),
    #[error("a topic needs 1 to 10000 partitions, not {0}")]
    InvalidPartitions(i32),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Kafka's rule for topic names (they become file names here too).
pub fn valid_topic_name(name: &str) -> bool {
    crate::engine::source::topic_name_problem(name).is_none()
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    base: i64,
    last: i64,
    position: u64,
    size: u64,
    max_timestamp: i64,
}

struct Partition {
    path: PathBuf,
    file: File,
    index: Vec<Entry>,
    /// The high-water mark: the next offset to assign.
    next_offset: i64,
    end: u64,
}

/// What a fetch gets from one partition.
pub struct Read {
    pub high_watermark: i64,
    pub records: Bytes,
}

impl Partition {
    fn open(path: PathBuf) -> Result<Partition, LogError> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io(&path))?;
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let mut index = Vec::new();
        let mut position = 0usize;
        while position < bytes.len() {
            match batch::read_header(&bytes[position..]) {
                Ok(h) => {
                    index.push(Entry {
                        base: h.base_offset,
                        last: h.last_offset(),
                        position: position as u64,
                        size: h.size as u64,
                        max_timestamp: h.max_timestamp,
                    });
                    position += h.size;
                }
                Err(e) => {
                    warn!(path = %path.display(), at = position, error = %e,
                        "cutting off a damaged tail of the log (a crash mid-write)");
                    file.set_len(position as u64).map_err(io(&path))?;
                    break;
                }
            }
        }
        let next_offset = index.last().map_or(0, |e| e.last + 1);
        Ok(Partition {
            path,
            file,
            index,
            next_offset,
            end: position as u64,
        })
    }

    fn append(&mut self, records: &[u8]) -> Result<i64, LogError> {
        let headers = batch::split(records)?;
        let mut owned = records.to_vec();
        let base = self.next_offset;
        let mut entries = Vec::with_capacity(headers.len());
        let (mut offset, mut position) = (base, 0usize);
        for h in headers {
            batch::assign_offset(&mut owned[position..], offset);
            entries.push(Entry {
                base: offset,
                last: offset + i64::from(h.last_offset_delta),
                position: self.end + position as u64,
                size: h.size as u64,
                max_timestamp: h.max_timestamp,
            });
            offset += i64::from(h.last_offset_delta) + 1;
            position += h.size;
        }
        // Written and synced before the producer hears "stored"; a failed
        // write is cut off so the file still ends on a whole batch.
        if let Err(source) = self
            .file
            .write_all(&owned)
            .and_then(|()| self.file.sync_data())
        {
            let _ = self.file.set_len(self.end);
            return Err(LogError::Io {
                path: self.path.clone(),
                source,
            });
        }
        self.end += owned.len() as u64;
        self.next_offset = offset;
        self.index.extend(entries);
        Ok(base)
    }

    fn read(&self, offset: i64, max_bytes: usize) -> Result<Read, LogError> {
        if offset < 0 || offset > self.next_offset {
            return Err(LogError::OutOfRange {
                offset,
                high_watermark: self.next_offset,
            });
        }
        let first = self.index.partition_point(|e| e.last < offset);
        let mut size = 0u64;
        let mut count = 0;
        for e in &self.index[first..] {
            // Always at least one whole batch, so a big batch is never stuck.
            if count > 0 && size + e.size > max_bytes as u64 {
                break;
            }
            size += e.size;
            count += 1;
        }
        let mut records = vec![0u8; size as usize];
        if let Some(e) = self.index.get(first).filter(|_| count > 0) {
            self.file
                .read_exact_at(&mut records, e.position)
                .map_err(io(&self.path))?;
        }
        Ok(Read {
            high_watermark: self.next_offset,
            records: Bytes::from(records),
        })
    }

    /// The first offset whose batch has a timestamp at or after `timestamp`.
    fn offset_for_time(&self, timestamp: i64) -> i64 {
        self.index
            .iter()
            .find(|e| e.max_timestamp >= timestamp)
            .map_or(self.next_offset, |e| e.base)
    }
}

struct Topic {
    partitions: Vec<Mutex<Partition>>,
}

/// Every topic of the broker.
pub struct Log {
    root: PathBuf,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    appended: Notify,
}

impl Log {
    pub fn open(root: &Path) -> Result<Log, LogError> {
        let topics_dir = root.join("topics");
        std::fs::create_dir_all(&topics_dir).map_err(io(&topics_dir))?;
        let mut topics = BTreeMap::new();
        for entry in std::fs::read_dir(&topics_dir).map_err(io(&topics_dir))? {
            let dir = entry.map_err(io(&topics_dir))?.path();
            let Some(name) = dir.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !valid_topic_name(name) {
                continue;
            }
            let count_file = dir.join(PARTITIONS_FILE);
            let count: i32 = std::fs::read_to_string(&count_file)
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .ok_or_else(|| LogError::BadTopic {
                    path: count_file.clone(),
                })?;
            topics.insert(name.to_string(), Arc::new(Topic::open(&dir, count)?));
        }
        Ok(Log {
            root: root.to_path_buf(),
            topics: RwLock::new(topics),
            appended: Notify::new(),
        })
    }

    /// Creates a topic (or only checks that it could be, with `validate_only`).
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        validate_only: bool,
    ) -> Result<(), LogError> {
        if !valid_topic_name(name) {
            return Err(LogError::InvalidTopic(name.to_string()));
        }
        if !(1..=10_000).contains(&partitions) {
            return Err(LogError::InvalidPartitions(partitions));
        }
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        if topics
            .keys()
            .any(|other| crate::engine::source::topics_collide(other, name))
        {
            return Err(LogError::TopicExists(name.to_string()));
        }
        if validate_only {
            return Ok(());
        }
        let dir = self.root.join("topics").join(name);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let topic = Topic::open(&dir, partitions)?;
        // The count is written last: a half-created topic has no count file.
        let count_file = dir.join(PARTITIONS_FILE);
        std::fs::write(&count_file, partitions.to_string()).map_err(io(&count_file))?;
        topics.insert(name.to_string(), Arc::new(topic));
        Ok(())
    }

    /// Topic names with their partition counts.
    pub fn topics(&self) -> Vec<(String, i32)> {
        let topics = self.topics.read().unwrap_or_else(|p| p.into_inner());
        topics
            .iter()
            .map(|(name, t)| (name.clone(), t.partitions.len() as i32))
            .collect()
    }

    pub fn partition_count(&self, topic: &str) -> Option<i32> {
        let topics = self.topics.read().unwrap_or_else(|p| p.into_inner());
        topics.get(topic).map(|t| t.partitions.len() as i32)
    }

    fn with_partition<T>(
        &self,
        topic: &str,
        partition: i32,
        f: impl FnOnce(&mut Partition) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        let found = {
            let topics = self.topics.read().unwrap_or_else(|p| p.into_inner());
            topics.get(topic).cloned()
        };
        let slot = found
            .as_ref()
            .and_then(|t| {
                usize::try_from(partition)
                    .ok()
                    .and_then(|p| t.partitions.get(p))
            })
            .ok_or_else(|| LogError::UnknownPartition(format!("{topic}/{partition}")))?;
        let mut partition = slot.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut partition)
    }

    /// Appends a produce request's batches; returns the first offset given.
    pub fn append(&self, topic: &str, partition: i32, records: &[u8]) -> Result<i64, LogError> {
        let base = self.with_partition(topic, partition, |p| p.append(records))?;
        self.appended.notify_waiters();
        Ok(base)
    }

    pub fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Read, LogError> {
        self.with_partition(topic, partition, |p| p.read(offset, max_bytes))
    }

    pub fn high_watermark(&self, topic: &str, partition: i32) -> Result<i64, LogError> {
        self.with_partition(topic, partition, |p| Ok(p.next_offset))
    }

    pub fn offset_for_time(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<i64, LogError> {
        self.with_partition(topic, partition, |p| Ok(p.offset_for_time(timestamp)))
    }

    /// Woken on every append (long-polling fetches wait on it).
    pub fn appended(&self) -> &Notify {
        &self.appended
    }
}

impl Topic {
    fn open(dir: &Path, count: i32) -> Result<Topic, LogError> {
        let partitions = (0..count)
            .map(|p| Partition::open(dir.join(format!("{p}.log"))).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Topic { partitions })
    }
}

#[cfg(test)]
mod tests {
    use super::super::batch::tests::batch;
    use super::*;

    #[test]
    fn topic_names_follow_kafka() {
        for good in ["orders", "shop.orders_v2-dlq", &"a".repeat(249)] {
            assert!(valid_topic_name(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "has space",
            "slash/",
            &"a".repeat(250),
            "ümlaut",
        ] {
            assert!(!valid_topic_name(bad), "{bad}");
        }
    }

    #[test]
    fn offsets_survive_a_restart_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = Log::open(dir.path()).expect("open");
        log.create_topic("t", 2, false).expect("create");
        assert!(matches!(
            log.create_topic("t", 1, false),
            Err(LogError::TopicExists(_))
        ));
        assert_eq!(log.append("t", 1, &batch(3, 10)).expect("append"), 0);
        let mut two = batch(1, 20);
        two.extend(batch(2, 30));
        assert_eq!(log.append("t", 1, &two).expect("append"), 3);
        assert_eq!(log.high_watermark("t", 1).expect("hw"), 6);
        assert_eq!(log.offset_for_time("t", 1, 15).expect("time"), 3);
        drop(log);

        // A crash mid-write leaves half a batch at the end.
        let file = dir.path().join("topics/t/1.log");
        let whole = std::fs::metadata(&file).expect("stat").len();
        let mut f = OpenOptions::new().append(true).open(&file).expect("open");
        f.write_all(&batch(5, 40)[..30]).expect("write");
        drop(f);

        let log = Log::open(dir.path()).expect("reopen");
        assert_eq!(log.partition_count("t"), Some(2));
        assert_eq!(log.high_watermark("t", 1).expect("hw"), 6);
        assert_eq!(std::fs::metadata(&file).expect("stat").len(), whole);
        let read = log.read("t", 1, 4, 1).expect("read");
        let first = batch::read_header(&read.records).expect("a whole batch");
        assert_eq!((first.base_offset, first.last_offset()), (4, 5));
        assert_eq!(
            read.records.len(),
            first.size,
            "one batch when max_bytes is small"
        );
        assert!(matches!(
            log.read("t", 1, 7, 100),
            Err(LogError::OutOfRange { .. })
        ));
        assert!(
            log.read("t", 1, 6, 100)
                .expect("at the end")
                .records
                .is_empty()
        );
        assert_eq!(log.append("t", 1, &batch(1, 50)).expect("append"), 6);
    }

    #[test]
    fn refuses_names_and_counts_kafka_would_refuse() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = Log::open(dir.path()).expect("open");
        log.create_topic("a.b", 1, false).expect("create");
        assert!(matches!(
            log.create_topic("a_b", 1, false),
            Err(LogError::TopicExists(_))
        ));
        assert!(matches!(
            log.create_topic("../x", 1, false),
            Err(LogError::InvalidTopic(_))
        ));
        assert!(matches!(
            log.create_topic("z", 0, false),
            Err(LogError::InvalidPartitions(0))
        ));
        log.create_topic("only-checked", 1, true).expect("valid");
        assert_eq!(log.partition_count("only-checked"), None);
    }
}
