//! The rows a projector serves, written as JSON lines (`{"key", "groups":
//! {name: {"count", "sum"}}}`) so another implementation's rows can be
//! compared with them (`make race`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::{BenchError, io_err};
use matview_api::ProjectorClient;
use matview_api::projector::ReadQuery;
use matview_engine::RowView;

/// One row as compared: per non-empty group its count and exact sum.
#[derive(Debug, Serialize)]
pub struct ComparedRow {
    pub key: String,
    pub groups: BTreeMap<String, ComparedGroup>,
}

#[derive(Debug, Serialize)]
pub struct ComparedGroup {
    pub count: u64,
    /// The exact decimal sum of the first summed field, as text.
    pub sum: String,
}

/// Pure: the compared form of a served row.
pub fn compared(row: &RowView) -> ComparedRow {
    let groups = row
        .groups
        .iter()
        .filter(|(_, g)| g.count.unwrap_or(0) > 0)
        .map(|(name, g)| {
            let sum = g.sum.values().next().map(ToString::to_string);
            let group = ComparedGroup {
                count: g.count.unwrap_or(0),
                sum: sum.unwrap_or_else(|| "0".into()),
            };
            (name.clone(), group)
        })
        .collect();
    ComparedRow {
        key: row.key.clone(),
        groups,
    }
}

/// Writes every row of the projector at `base` to `path`; returns how many.
pub async fn dump_rows(base: &str, path: &Path) -> Result<u64, BenchError> {
    let client = ProjectorClient::new(std::time::Duration::from_secs(30));
    let failed = |e: matview_api::client::ClientError| BenchError::Projector(e.to_string());
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io_err)?);
    let (mut after, mut written) = (None::<String>, 0u64);
    loop {
        let page = client
            .keys(base, after.as_deref(), 10_000)
            .await
            .map_err(failed)?;
        for keys in page.keys.chunks(1000) {
            let rows = client
                .lookup(base, keys, &ReadQuery::default())
                .await
                .map_err(failed)?;
            for row in &rows.body.rows {
                serde_json::to_writer(&mut out, &compared(row)).map_err(io_err)?;
                out.write_all(b"\n").map_err(io_err)?;
                written += 1;
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    out.flush().map_err(io_err)?;
    Ok(written)
}
