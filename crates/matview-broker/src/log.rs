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
/// The partition count is written here, synced, then renamed into place.
const PARTITIONS_TEMPORARY: &str = "partitions.tmp";

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
    matview_engine::source::topic_name_problem(name).is_none()
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

/// A partition and the fetches waiting for it to grow.
struct Slot {
    partition: Mutex<Partition>,
    appended: Notify,
}

struct Topic {
    partitions: Vec<Slot>,
}

/// Every topic of the broker.
pub struct Log {
    root: PathBuf,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// One topic is created at a time, outside `topics`' lock: files are
    /// made and synced while produces and fetches go on.
    creating: Mutex<()>,
}

/// A partition a fetch waits on: [`Log::watch`].
pub struct Watch {
    topic: Arc<Topic>,
    partition: usize,
}

impl Watch {
    /// Woken when this partition, and no other, grows.
    pub fn appended(&self) -> &Notify {
        &self.topic.partitions[self.partition].appended
    }
}

/// Makes a directory's entries (a created or renamed file) durable.
fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// A topic directory's partition count: `None` when the topic was never
/// wholly created (the count is written last, and atomically, so a crash
/// mid-creation leaves no count, or an empty one from older versions).
fn partition_count(dir: &Path) -> Result<Option<i32>, LogError> {
    let count_file = dir.join(PARTITIONS_FILE);
    let text = match std::fs::read_to_string(&count_file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LogError::Io {
                path: count_file,
                source,
            });
        }
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.trim()
        .parse()
        .map(Some)
        .map_err(|_| LogError::BadTopic { path: count_file })
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
            let Some(count) = partition_count(&dir)? else {
                // Never acknowledged to its creator: as if it never was.
                warn!(topic = name, dir = %dir.display(),
                    "removing a topic whose creation did not finish (a crash mid-create)");
                std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
                continue;
            };
            topics.insert(name.to_string(), Arc::new(Topic::open(&dir, count)?));
        }
        Ok(Log {
            root: root.to_path_buf(),
            topics: RwLock::new(topics),
            creating: Mutex::new(()),
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
        let _one_at_a_time = self.creating.lock().unwrap_or_else(|p| p.into_inner());
        let taken = |topics: &BTreeMap<String, Arc<Topic>>| {
            topics
                .keys()
                .any(|other| matview_engine::source::topics_collide(other, name))
        };
        if taken(&self.topics.read().unwrap_or_else(|p| p.into_inner())) {
            return Err(LogError::TopicExists(name.to_string()));
        }
        if validate_only {
            return Ok(());
        }
        let dir = self.root.join("topics").join(name);
        let topic = match self.create_files(&dir, partitions) {
            Ok(topic) => topic,
            Err(e) => {
                // Leave nothing half made behind for the next start.
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        // Creations are serialized by `creating`, so the name is still free.
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        topics.insert(name.to_string(), Arc::new(topic));
        Ok(())
    }

    /// A topic's directory, empty partition files and, last, its count,
    /// each synced before the next step, so that a crash at any point
    /// leaves either a whole topic or one without a count.
    fn create_files(&self, dir: &Path, partitions: i32) -> Result<Topic, LogError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let topic = Topic::open(dir, partitions)?;
        sync_dir(dir)?;
        let temporary = dir.join(PARTITIONS_TEMPORARY);
        let written = File::create(&temporary).and_then(|mut file| {
            file.write_all(partitions.to_string().as_bytes())?;
            file.sync_all()
        });
        written.map_err(io(&temporary))?;
        let count_file = dir.join(PARTITIONS_FILE);
        std::fs::rename(&temporary, &count_file).map_err(io(&count_file))?;
        sync_dir(dir)?;
        if let Some(topics_dir) = dir.parent() {
            sync_dir(topics_dir)?;
        }
        Ok(topic)
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

    /// A partition to wait on, if it exists.
    pub fn watch(&self, topic: &str, partition: i32) -> Option<Watch> {
        let topics = self.topics.read().unwrap_or_else(|p| p.into_inner());
        let topic = topics.get(topic)?.clone();
        let partition = usize::try_from(partition)
            .ok()
            .filter(|p| *p < topic.partitions.len())?;
        Some(Watch { topic, partition })
    }

    fn with_partition<T>(
        &self,
        topic: &str,
        partition: i32,
        f: impl FnOnce(&mut Partition, &Notify) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        let watch = self
            .watch(topic, partition)
            .ok_or_else(|| LogError::UnknownPartition(format!("{topic}/{partition}")))?;
        let slot = &watch.topic.partitions[watch.partition];
        let mut held = slot.partition.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut held, &slot.appended)
    }

    /// Appends a produce request's batches; returns the first offset given.
    /// Wakes only the fetches waiting on this partition.
    pub fn append(&self, topic: &str, partition: i32, records: &[u8]) -> Result<i64, LogError> {
        self.with_partition(topic, partition, |p, appended| {
            let base = p.append(records)?;
            appended.notify_waiters();
            Ok(base)
        })
    }

    pub fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Read, LogError> {
        self.with_partition(topic, partition, |p, _| p.read(offset, max_bytes))
    }

    pub fn high_watermark(&self, topic: &str, partition: i32) -> Result<i64, LogError> {
        self.with_partition(topic, partition, |p, _| Ok(p.next_offset))
    }

    pub fn offset_for_time(
        &self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<i64, LogError> {
        self.with_partition(topic, partition, |p, _| Ok(p.offset_for_time(timestamp)))
    }
}

impl Topic {
    fn open(dir: &Path, count: i32) -> Result<Topic, LogError> {
        let partitions = (0..count)
            .map(|p| {
                Partition::open(dir.join(format!("{p}.log"))).map(|partition| Slot {
                    partition: Mutex::new(partition),
                    appended: Notify::new(),
                })
            })
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
    fn a_half_created_topic_is_removed_at_start_and_can_be_created_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = Log::open(dir.path()).expect("open");
        log.create_topic("whole", 1, false).expect("create");
        drop(log);
        // A crash between the partition files and the count, and one from
        // an older version that wrote the count in place and died in it.
        for (name, count) in [("half", None), ("torn", Some(""))] {
            let topic = dir.path().join("topics").join(name);
            std::fs::create_dir_all(&topic).expect("mkdir");
            std::fs::write(topic.join("0.log"), b"").expect("log file");
            if let Some(count) = count {
                std::fs::write(topic.join(PARTITIONS_FILE), count).expect("count");
            }
        }
        let log = Log::open(dir.path()).expect("a half-created topic does not stop the start");
        assert_eq!(log.partition_count("whole"), Some(1));
        assert_eq!(log.partition_count("half"), None);
        assert!(!dir.path().join("topics/half").exists());
        assert!(!dir.path().join("topics/torn").exists());
        log.create_topic("half", 3, false)
            .expect("the name is free again");
        assert_eq!(log.partition_count("half"), Some(3));
        drop(log);
        let log = Log::open(dir.path()).expect("reopen");
        assert_eq!(log.partition_count("half"), Some(3));
        assert!(
            !dir.path()
                .join("topics/half")
                .join(PARTITIONS_TEMPORARY)
                .exists()
        );
    }

    #[test]
    fn an_append_wakes_only_the_fetches_of_its_partition() {
        use futures::FutureExt;

        let dir = tempfile::tempdir().expect("temp dir");
        let log = Log::open(dir.path()).expect("open");
        log.create_topic("t", 2, false).expect("create");
        log.create_topic("u", 1, false).expect("create");
        let watch = log.watch("t", 0).expect("exists");
        let woken = watch.appended().notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        log.append("t", 1, &batch(1, 10)).expect("append");
        log.append("u", 0, &batch(1, 10)).expect("append");
        assert!(
            woken.as_mut().now_or_never().is_none(),
            "other partitions grew"
        );
        log.append("t", 0, &batch(1, 10)).expect("append");
        assert!(
            woken.as_mut().now_or_never().is_some(),
            "its partition grew"
        );
        assert!(log.watch("t", 2).is_none() && log.watch("nope", 0).is_none());
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
