//! What each source key contributed (envelopes `upsert` and `debezium`): the
//! message that holds the key's state, and the (row, id) of every record it
//! produced. A new state or a delete reads this one entry and withdraws
//! exactly those records: O(records of that key), never a scan.

use super::{SourceChange, SourceCounts, StoreError};
use crate::store_codec::CorruptData;
use matview_engine::{Position, Record};

/// A record a source key produced earlier, to take out of its row if it is
/// still the one that key wrote (same version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Removal {
    pub(crate) row: String,
    pub(crate) id: String,
    pub(crate) version: Position,
}

/// Replaces each changed key's entry and returns the records its previous
/// state produced (to withdraw) and the records to put.
pub(crate) fn take_contributions(
    table: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    changes: Vec<SourceChange>,
    removals: &mut Vec<Removal>,
    puts: &mut Vec<Record>,
    encoded: &mut Vec<u8>,
) -> Result<SourceCounts, StoreError> {
    let io = |e: redb::StorageError| StoreError::Io(Box::new(e.into()));
    let mut counts = SourceCounts::default();
    for change in changes {
        // One B-tree operation per key: insert and remove return what was held.
        let held = if change.records.is_empty() {
            table.remove(change.key.as_slice()).map_err(io)?
        } else {
            encode_contribution(change.version, &change.records, encoded);
            table
                .insert(change.key.as_slice(), encoded.as_slice())
                .map_err(io)?
        }
        .map(|v| decode_contribution(v.value()))
        .transpose()?;
        match &held {
            Some((version, entries)) => removals.extend(entries.iter().map(|(row, id)| Removal {
                row: row.clone(),
                id: id.clone(),
                version: *version,
            })),
            None if change.records.is_empty() => counts.unknown_deletes += 1,
            None => {}
        }
        if change.records.is_empty() {
            counts.deleted += u64::from(held.is_some());
            continue;
        }
        puts.extend(change.records);
    }
    Ok(counts)
}

/// version (partition i32, offset i64), then per record: row and id, each
/// as a u32 length and its bytes.
fn encode_contribution(version: Position, records: &[Record], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&version.partition.to_be_bytes());
    out.extend_from_slice(&version.offset.to_be_bytes());
    for record in records {
        for text in [&record.key, &record.id] {
            out.extend_from_slice(&(text.len() as u32).to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
    }
}

type Entries = Vec<(String, String)>;

fn decode_contribution(bytes: &[u8]) -> Result<(Position, Entries), CorruptData> {
    let mut cursor = Cursor(bytes);
    let partition = i32::from_be_bytes(cursor.array()?);
    let offset = i64::from_be_bytes(cursor.array()?);
    let mut entries = Vec::new();
    while !cursor.0.is_empty() {
        let row = cursor.text()?;
        let id = cursor.text()?;
        entries.push((row, id));
    }
    Ok((Position { partition, offset }, entries))
}

/// Reads an encoded contribution front to back.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CorruptData> {
        if self.0.len() < n {
            return Err(CorruptData(
                "a source key's contribution is cut short".into(),
            ));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CorruptData> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn text(&mut self) -> Result<String, CorruptData> {
        let len = u32::from_be_bytes(self.array()?) as usize;
        String::from_utf8(self.take(len)?.to_vec())
            .map_err(|_| CorruptData("a source key's contribution is not UTF-8".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contributions_read_back_and_cut_ones_are_refused() {
        let record = |key: &str, id: &str| Record {
            key: key.into(),
            id: id.into(),
            group: None,
            fields: Vec::new(),
            sums: Vec::new(),
            version: Position {
                partition: 0,
                offset: 0,
            },
        };
        let version = Position {
            partition: 3,
            offset: 1 << 40,
        };
        let mut bytes = Vec::new();
        encode_contribution(version, &[record("DE", "c-1"), record("", "ü")], &mut bytes);
        let (read, entries) = decode_contribution(&bytes).expect("reads back");
        assert_eq!(read, version);
        assert_eq!(
            entries,
            [("DE".into(), "c-1".into()), ("".into(), "ü".into())]
        );
        // Cuts inside the version or an entry are refused (redb checksums
        // pages, so this guards against a layout mistake, not the disk).
        for cut in 1..bytes.len() {
            if cut != 12 && cut != 25 {
                assert!(decode_contribution(&bytes[..cut]).is_err(), "cut at {cut}");
            }
        }
        assert_eq!(
            decode_contribution(&bytes[..12]).expect("no records").1,
            Entries::new()
        );
    }
}
