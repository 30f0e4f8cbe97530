//! Byte layouts of the store: keys that keep a row's records (and a row's
//! items in serving order) contiguous, the compact record encoding, and a
//! row's totals. Pure functions.

use matview_engine::json::JsonKind;
use matview_engine::json::RawJson;
use matview_engine::row::{GroupTotals, StoredRecord};
use matview_engine::{Decimal, Position, Sum};

/// Encodes (row key, id) so that all records of a row are one contiguous range.
pub fn record_key(row: &str, id: &str) -> Vec<u8> {
    let mut key = row_prefix(row);
    key.extend_from_slice(id.as_bytes());
    key
}

pub fn row_prefix(row: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + row.len() + 16);
    key.extend_from_slice(&(row.len() as u32).to_be_bytes());
    key.extend_from_slice(row.as_bytes());
    key
}

/// The start of a row's items of one group in the items index.
pub fn item_prefix(row: &str, group: u16) -> Vec<u8> {
    let mut key = row_prefix(row);
    key.extend_from_slice(&group.to_be_bytes());
    key
}

/// Key of a record in the items index: row, group, then the order value and
/// the id, encoded so that byte order is the order in which items are served
/// ([`matview_engine::view::compare_values`], ties by id).
pub fn item_key(row: &str, group: u16, order: Option<&RawJson>, id: &str) -> Vec<u8> {
    let mut key = item_prefix(row, group);
    push_order_value(&mut key, order);
    key.extend_from_slice(id.as_bytes());
    key
}

/// Appends a value in an encoding whose byte order is `compare_values`'s
/// order: a rank byte (absent < null < bool < number < string < other),
/// then the value. Numbers beyond ±1.7·10^29 (not decimals) sort as the
/// largest of their sign; strings are escaped so that a shorter one sorts
/// first and the id that follows cannot change their order.
fn push_order_value(out: &mut Vec<u8>, value: Option<&RawJson>) {
    let Some(value) = value else {
        out.push(0);
        return;
    };
    match value.kind() {
        JsonKind::Null => out.push(1),
        JsonKind::Bool => {
            out.push(2);
            out.push(u8::from(value.as_bool() == Some(true)));
        }
        JsonKind::Number => {
            out.push(3);
            let nanos = match value.as_decimal() {
                Some(Ok(d)) => d.to_nanos(),
                _ if value.text().starts_with('-') => i128::MIN,
                _ => i128::MAX,
            };
            // Flipping the sign bit makes two's complement sort as unsigned.
            out.extend_from_slice(&((nanos as u128) ^ (1 << 127)).to_be_bytes());
        }
        JsonKind::String => {
            out.push(4);
            let text = value.as_string().unwrap_or_default();
            for &b in text.as_bytes() {
                out.push(b);
                if b == 0 {
                    out.push(0xff);
                }
            }
            out.extend_from_slice(&[0, 0]);
        }
        _ => out.push(5),
    }
}

/// Compact record encoding: group (u16, MAX = none), partition (i32), offset
/// (i64), sums (count u8, then i128 nanos each), then the fields as a JSON array.
pub fn encode_record(r: &StoredRecord, out: &mut Vec<u8>) {
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

/// Bytes in the store that do not decode as their layout says.
#[derive(Debug, thiserror::Error)]
#[error("stored data is corrupt: {0}")]
pub struct CorruptData(pub String);

fn corrupt(what: &str) -> CorruptData {
    CorruptData(format!("truncated {what}"))
}

fn take<'a>(bytes: &'a [u8], at: usize, n: usize, what: &str) -> Result<&'a [u8], CorruptData> {
    bytes.get(at..at + n).ok_or_else(|| corrupt(what))
}

fn array<const N: usize>(bytes: &[u8], at: usize, what: &str) -> Result<[u8; N], CorruptData> {
    take(bytes, at, N, what)?
        .try_into()
        .map_err(|_| corrupt(what))
}

pub fn decode_record(bytes: &[u8]) -> Result<StoredRecord, CorruptData> {
    let group = u16::from_le_bytes(array(bytes, 0, "record")?);
    let partition = i32::from_le_bytes(array(bytes, 2, "record")?);
    let offset = i64::from_le_bytes(array(bytes, 6, "record")?);
    let count = usize::from(take(bytes, 14, 1, "record")?[0]);
    let mut sums = Vec::with_capacity(count);
    for i in 0..count {
        let raw = i128::from_le_bytes(array(bytes, 15 + 16 * i, "record")?);
        sums.push(Decimal::from_nanos(raw));
    }
    let fields = serde_json::from_slice(&bytes[(15 + 16 * count).min(bytes.len())..])
        .map_err(|e| CorruptData(e.to_string()))?;
    Ok(StoredRecord {
        group: (group != u16::MAX).then_some(group),
        fields,
        sums,
        version: Position { partition, offset },
    })
}

/// An item in the index: its id, then the record.
pub fn encode_item(id: &str, r: &StoredRecord, out: &mut Vec<u8>) {
    encode_record(r, out);
    let mut item = Vec::with_capacity(2 + id.len() + out.len());
    item.extend_from_slice(&(id.len() as u16).to_le_bytes());
    item.extend_from_slice(id.as_bytes());
    item.extend_from_slice(out);
    *out = item;
}

pub fn decode_item(bytes: &[u8]) -> Result<(String, StoredRecord), CorruptData> {
    let len = usize::from(u16::from_le_bytes(array(bytes, 0, "item")?));
    let id = String::from_utf8_lossy(take(bytes, 2, len, "item")?).into_owned();
    Ok((id, decode_record(&bytes[2 + len..])?))
}

/// What a row holds, kept up to date by every batch: the number of records
/// (classified or not), each group's count and sums, and whether its items
/// are indexed (done once it holds more records than a read may serve).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowTotals {
    pub records: u64,
    pub indexed: bool,
    pub groups: Vec<GroupTotals>,
}

impl RowTotals {
    pub fn new(groups: usize, sums: usize) -> RowTotals {
        RowTotals {
            records: 0,
            indexed: false,
            groups: vec![
                GroupTotals {
                    count: 0,
                    sums: vec![Sum::ZERO; sums],
                };
                groups
            ],
        }
    }

    /// flags (u8: 1 = indexed, 2 = wide sums), records (u64), then per
    /// group its count (u64) and sums (nanos, i128 each, or 256 bits each
    /// when some sum needs more); all little-endian. Narrow unless needed,
    /// so rows written before sums could be wide read unchanged.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        // Every batch encodes the totals of each row it touched: no allocation.
        let wide = self
            .groups
            .iter()
            .flat_map(|g| &g.sums)
            .any(|s| s.to_nanos_i128().is_none());
        out.push(u8::from(self.indexed) | (u8::from(wide) << 1));
        out.extend_from_slice(&self.records.to_le_bytes());
        for g in &self.groups {
            out.extend_from_slice(&g.count.to_le_bytes());
            for s in &g.sums {
                match s.to_nanos_i128() {
                    Some(nanos) if !wide => out.extend_from_slice(&nanos.to_le_bytes()),
                    _ => out.extend_from_slice(&s.to_le_bytes()),
                }
            }
        }
    }

    pub fn decode(bytes: &[u8], groups: usize, sums: usize) -> Result<RowTotals, CorruptData> {
        let mut totals = RowTotals::new(groups, sums);
        let flags = take(bytes, 0, 1, "totals")?[0];
        totals.indexed = flags & 1 == 1;
        let wide = flags & 2 == 2;
        totals.records = u64::from_le_bytes(array(bytes, 1, "totals")?);
        let mut at = 9;
        for g in &mut totals.groups {
            g.count = u64::from_le_bytes(array(bytes, at, "totals")?);
            at += 8;
            for s in &mut g.sums {
                if wide {
                    *s = Sum::from_le_bytes(array(bytes, at, "totals")?);
                    at += 32;
                } else {
                    *s = Sum::from_nanos_i128(i128::from_le_bytes(array(bytes, at, "totals")?));
                    at += 16;
                }
            }
        }
        Ok(totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matview_engine::view::compare_values;

    fn json(text: &str) -> RawJson {
        serde_json::from_str(text).expect("JSON")
    }

    #[test]
    fn index_keys_sort_as_items_are_served() {
        let values: Vec<Option<RawJson>> = [
            None,
            Some("null"),
            Some("false"),
            Some("true"),
            Some("-1e3"),
            Some("-12.5"),
            Some("-12.50"),
            Some("-0.000000001"),
            Some("0"),
            Some("0.5"),
            Some("12.5"),
            Some("1e2"),
            Some("99999999999999999999.999999999"),
            Some("\"\""),
            Some("\"a\""),
            Some("\"a\\u0000\""),
            Some("\"a\\u0000b\""),
            Some("\"ab\""),
            Some("\"b\""),
            Some("[1]"),
            Some("{\"x\": 1}"),
        ]
        .into_iter()
        .map(|v| v.map(json))
        .collect();
        for a in &values {
            for b in &values {
                for (ia, ib) in [("x", "y"), ("y", "x"), ("x", "x"), ("x", "xy")] {
                    let served = compare_values(a.as_ref(), b.as_ref()).then_with(|| ia.cmp(ib));
                    let keys =
                        item_key("row", 1, a.as_ref(), ia).cmp(&item_key("row", 1, b.as_ref(), ib));
                    assert_eq!(keys, served, "{a:?}/{ia} vs {b:?}/{ib}");
                }
            }
        }
    }

    #[test]
    fn totals_round_trip_and_truncation_is_an_error() {
        let mut totals = RowTotals::new(3, 2);
        totals.records = 1 << 40;
        totals.indexed = true;
        totals.groups[1].count = 7;
        totals.groups[2].sums[1] = Sum::of(Decimal::parse("-12.345").expect("decimal"));
        let mut bytes = Vec::new();
        totals.encode(&mut bytes);
        assert_eq!(RowTotals::decode(&bytes, 3, 2).expect("decodes"), totals);
        assert!(RowTotals::decode(&bytes[..bytes.len() - 1], 3, 2).is_err());
        // Sums that fit 128 bits keep the layout rows were written in.
        assert_eq!(bytes.len(), 9 + 3 * (8 + 2 * 16));
        // A sum past the decimal's range: every sum of the row goes wide.
        let big = Decimal::parse_exact("17000000000000000000000000000").expect("decimal");
        for _ in 0..11 {
            totals.groups[0].sums[0].add(big);
        }
        totals.encode(&mut bytes);
        assert_eq!(bytes.len(), 9 + 3 * (8 + 2 * 32));
        let wide = RowTotals::decode(&bytes, 3, 2).expect("decodes");
        assert_eq!(wide, totals);
        assert_eq!(
            wide.groups[0].sums[0].to_string(),
            "187000000000000000000000000000"
        );
        assert!(wide.indexed);
        let record = StoredRecord {
            group: Some(2),
            fields: vec![json("\"pen\"")],
            sums: vec![Decimal::from_i64(3)],
            version: Position {
                partition: 1,
                offset: 9,
            },
        };
        encode_item("id-7", &record, &mut bytes);
        assert_eq!(
            decode_item(&bytes).expect("decodes"),
            ("id-7".to_string(), record)
        );
    }
}
