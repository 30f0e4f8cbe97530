//! Kafka record batches (magic 2) as the broker sees them: it stores the
//! bytes a producer sent and only reads the header fields it needs, and it
//! assigns offsets by rewriting `baseOffset`, which the batch CRC does not
//! cover (the CRC starts at `attributes`).

/// Byte positions in a record batch header (KIP-98 layout).
const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const MAX_TIMESTAMP: usize = 35;
const RECORD_COUNT: usize = 57;
/// The header is 61 bytes; a batch is at least that.
pub const HEADER_LEN: usize = 61;
/// `baseOffset` and `batchLength` come before the length counts.
const LENGTH_PREFIX: usize = 12;

/// What the broker knows of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Whole batch in bytes, prefix included.
    pub size: usize,
    pub last_offset_delta: i32,
    pub max_timestamp: i64,
}

impl BatchHeader {
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record batch cut short: {needed} bytes needed, {available} left")]
    Truncated { needed: usize, available: usize },
    #[error("record batch magic {0} is not supported (only 2)")]
    Magic(i8),
    #[error("record batch length {0} is invalid")]
    Length(i32),
    #[error("record batch CRC mismatch")]
    Crc,
    #[error("record batch says {records} records but its offsets span {span}")]
    Count { records: i32, span: i64 },
}

fn be_i32(bytes: &[u8], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    i32::from_be_bytes(b)
}

fn be_i64(bytes: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(b)
}

/// Reads the header of the batch at the start of `bytes` and checks its
/// length, magic and CRC.
pub fn read_header(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    if bytes.len() < HEADER_LEN {
        return Err(BatchError::Truncated {
            needed: HEADER_LEN,
            available: bytes.len(),
        });
    }
    let length = be_i32(bytes, BATCH_LENGTH);
    let size = usize::try_from(length)
        .ok()
        .map(|l| l + LENGTH_PREFIX)
        .filter(|s| *s >= HEADER_LEN)
        .ok_or(BatchError::Length(length))?;
    if bytes.len() < size {
        return Err(BatchError::Truncated {
            needed: size,
            available: bytes.len(),
        });
    }
    let magic = bytes[MAGIC] as i8;
    if magic != 2 {
        return Err(BatchError::Magic(magic));
    }
    let stored_crc = be_i32(bytes, CRC) as u32;
    if crc32c::crc32c(&bytes[ATTRIBUTES..size]) != stored_crc {
        return Err(BatchError::Crc);
    }
    let last_offset_delta = be_i32(bytes, LAST_OFFSET_DELTA);
    let records = be_i32(bytes, RECORD_COUNT);
    if last_offset_delta < 0 || records < 0 || i64::from(records) > i64::from(last_offset_delta) + 1
    {
        return Err(BatchError::Count {
            records,
            span: i64::from(last_offset_delta) + 1,
        });
    }
    Ok(BatchHeader {
        base_offset: be_i64(bytes, BASE_OFFSET),
        size,
        last_offset_delta,
        max_timestamp: be_i64(bytes, MAX_TIMESTAMP),
    })
}

/// Splits a produce request's records into batches, checking each.
pub fn split(mut bytes: &[u8]) -> Result<Vec<BatchHeader>, BatchError> {
    let mut headers = Vec::new();
    while !bytes.is_empty() {
        let header = read_header(bytes)?;
        bytes = &bytes[header.size..];
        headers.push(header);
    }
    Ok(headers)
}

/// Gives the batch at the start of `bytes` its place in the log.
pub fn assign_offset(bytes: &mut [u8], base_offset: i64) {
    bytes[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    bytes[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&0i32.to_be_bytes());
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A batch of `records` empty-keyed records, built field by field from the
    /// protocol's layout (independent of `read_header`).
    pub fn batch(records: i32, max_timestamp: i64) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&0i16.to_be_bytes()); // attributes
        body.extend_from_slice(&(records - 1).to_be_bytes()); // last offset delta
        body.extend_from_slice(&max_timestamp.to_be_bytes()); // base timestamp
        body.extend_from_slice(&max_timestamp.to_be_bytes()); // max timestamp
        body.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
        body.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
        body.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
        body.extend_from_slice(&records.to_be_bytes());
        for delta in 0..records {
            // length, attributes, timestamp delta, offset delta, key -1,
            // value "x", no headers (varints, zig-zag)
            let record = [0u8, 0, (delta * 2) as u8, 1, 2, b'x', 0];
            body.push((record.len() * 2) as u8);
            body.extend_from_slice(&record);
        }
        let crc = crc32c::crc32c(&body);
        let mut out = Vec::new();
        out.extend_from_slice(&0i64.to_be_bytes());
        out.extend_from_slice(&((body.len() + 9) as i32).to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes()); // leader epoch
        out.push(2);
        out.extend_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn reads_what_a_producer_wrote() {
        let bytes = batch(3, 1_700_000_000_000);
        let header = read_header(&bytes).expect("valid batch");
        assert_eq!(header.size, bytes.len());
        assert_eq!(header.last_offset_delta, 2);
        assert_eq!(header.max_timestamp, 1_700_000_000_000);
    }

    #[test]
    fn assigning_an_offset_keeps_the_crc_valid() {
        let mut bytes = batch(2, 5);
        assign_offset(&mut bytes, 41);
        let header = read_header(&bytes).expect("still valid");
        assert_eq!((header.base_offset, header.last_offset()), (41, 42));
    }

    #[test]
    fn splits_consecutive_batches_and_refuses_damage() {
        let mut two = batch(1, 1);
        two.extend(batch(4, 2));
        let headers = split(&two).expect("two batches");
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[1].last_offset_delta, 3);

        let cut = &two[..two.len() - 1];
        assert!(matches!(split(cut), Err(BatchError::Truncated { .. })));

        let mut garbled = batch(1, 1);
        let last = garbled.len() - 1;
        garbled[last] ^= 0xff;
        assert_eq!(read_header(&garbled), Err(BatchError::Crc));

        let mut old = batch(1, 1);
        old[MAGIC] = 1;
        assert_eq!(read_header(&old), Err(BatchError::Magic(1)));
    }
}
