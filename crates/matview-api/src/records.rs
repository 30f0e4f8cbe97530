//! `GET /v1/records?after=&limit=` of a projector: rows in key order with
//! every record's group and the row's counts and sums, as a comparison of
//! two revisions reads them, with the positions the page reflects.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use matview_engine::compare::{GroupFigures, RowSummary};
use matview_engine::sum::Sum;

/// One row: record id → group (`null`: matched no rule), and per group
/// its count and sums (exact decimals as text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowRecords {
    pub key: String,
    pub records: BTreeMap<String, Option<String>>,
    pub groups: BTreeMap<String, GroupCounts>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCounts {
    pub count: u64,
    pub sums: BTreeMap<String, String>,
}

/// Rows in key order, read in one transaction; `next` is the cursor of the
/// following page; `positions` what the page reflects (partition → next
/// offset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordsPage {
    pub rows: Vec<RowRecords>,
    pub next: Option<String>,
    pub positions: BTreeMap<i32, i64>,
}

/// A sum in a page that is not an exact decimal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("row {key}: sum {field} of group {group} is not a decimal: {text:?}")]
pub struct BadSum {
    pub key: String,
    pub group: String,
    pub field: String,
    pub text: String,
}

impl RowRecords {
    /// The row as the comparison folds it.
    pub fn summary(self) -> Result<(String, RowSummary), BadSum> {
        let mut groups = BTreeMap::new();
        for (group, counts) in self.groups {
            let mut sums = BTreeMap::new();
            for (field, text) in counts.sums {
                let sum = Sum::parse_exact(&text).map_err(|_| BadSum {
                    key: self.key.clone(),
                    group: group.clone(),
                    field: field.clone(),
                    text: text.clone(),
                })?;
                sums.insert(field, sum);
            }
            let figures = GroupFigures {
                count: counts.count,
                sums,
            };
            groups.insert(group, figures);
        }
        let summary = RowSummary {
            records: self.records,
            groups,
        };
        Ok((self.key, summary))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_reads_as_summaries_with_exact_sums() {
        let text = r#"{"rows":[{"key":"u1","records":{"i1":"cheap","i2":null},
            "groups":{"cheap":{"count":1,"sums":{"price":"4.50"}}}}],"next":"u1","positions":{"0":12}}"#;
        let page: RecordsPage = serde_json::from_str(text).expect("parses");
        assert_eq!(page.positions, BTreeMap::from([(0, 12)]));
        let (key, row) = page.rows[0].clone().summary().expect("decimals");
        assert_eq!(key, "u1");
        assert_eq!(row.records["i2"], None);
        assert_eq!(row.groups["cheap"].sums["price"].to_string(), "4.5");
        let mut bad = page.rows[0].clone();
        bad.groups
            .get_mut("cheap")
            .expect("cheap")
            .sums
            .insert("price".into(), "x".into());
        assert_eq!(bad.summary().expect_err("not a decimal").field, "price");
    }
}
