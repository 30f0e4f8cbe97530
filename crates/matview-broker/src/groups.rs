//! Committed consumer-group offsets, kept in one JSON file that is replaced
//! atomically (write, sync, rename) on every commit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    pub offset: i64,
    #[serde(default)]
    pub metadata: Option<String>,
}

/// group → topic → partition → committed offset.
type Groups = BTreeMap<String, BTreeMap<String, BTreeMap<i32, Committed>>>;

#[derive(Debug, thiserror::Error)]
pub enum GroupsError {
    #[error("cannot use the committed offsets at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a committed-offsets file (move it away to start afresh)")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

pub struct CommittedOffsets {
    path: PathBuf,
    groups: Mutex<Groups>,
}

impl CommittedOffsets {
    pub fn open(root: &Path) -> Result<CommittedOffsets, GroupsError> {
        let path = root.join("committed-offsets.json");
        let groups = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| GroupsError::Parse {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Groups::new(),
            Err(source) => return Err(GroupsError::Io { path, source }),
        };
        Ok(CommittedOffsets {
            path,
            groups: Mutex::new(groups),
        })
    }

    /// Records a group's offsets and persists them before returning. Blocks
    /// on the disk (write, fsync, rename): call it off the async workers.
    pub fn commit(
        &self,
        group: &str,
        offsets: impl IntoIterator<Item = (String, i32, Committed)>,
    ) -> Result<(), GroupsError> {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let entry = groups.entry(group.to_string()).or_default();
        for (topic, partition, committed) in offsets {
            entry.entry(topic).or_default().insert(partition, committed);
        }
        self.persist(&groups)
    }

    /// A group's committed offsets (empty if it never committed).
    pub fn of_group(&self, group: &str) -> BTreeMap<String, BTreeMap<i32, Committed>> {
        let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups.get(group).cloned().unwrap_or_default()
    }

    fn persist(&self, groups: &Groups) -> Result<(), GroupsError> {
        let io = |source| GroupsError::Io {
            path: self.path.clone(),
            source,
        };
        let temporary = self.path.with_extension("json.tmp");
        let text = serde_json::to_vec(groups).map_err(|source| GroupsError::Parse {
            path: self.path.clone(),
            source,
        })?;
        let file = std::fs::File::create(&temporary).map_err(io)?;
        std::io::Write::write_all(&mut &file, &text).map_err(io)?;
        file.sync_data().map_err(io)?;
        std::fs::rename(&temporary, &self.path).map_err(io)?;
        // The rename itself is durable only once the directory is synced.
        match self.path.parent() {
            Some(dir) => std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let offsets = CommittedOffsets::open(dir.path()).expect("open");
        let at = |offset| Committed {
            offset,
            metadata: None,
        };
        offsets
            .commit(
                "g",
                [("t".to_string(), 0, at(5)), ("t".to_string(), 1, at(7))],
            )
            .expect("commit");
        offsets
            .commit("g", [("t".to_string(), 1, at(9))])
            .expect("commit");
        drop(offsets);
        let reopened = CommittedOffsets::open(dir.path()).expect("reopen");
        let g = reopened.of_group("g");
        assert_eq!(g["t"][&0].offset, 5);
        assert_eq!(g["t"][&1].offset, 9);
        assert!(reopened.of_group("other").is_empty());
    }
}
