//! A pending revision's comparison (from status) as tables a person reads:
//! rows, records moved between groups, and per-group deltas.

use comfy_table::presets::ASCII_MARKDOWN;
use comfy_table::{CellAlignment, Table};

use crate::crd::ComparisonSummary;

/// Pure: the comparison of `pending` with the serving revision.
pub fn comparison_tables(pending: &str, c: &ComparisonSummary) -> String {
    let exact = if c.consistent {
        "both at the same positions"
    } else {
        "events arrived while it was read: figures are close, not exact"
    };
    let mut out = format!(
        "comparison of {pending} with serving {} at {} ({exact}):\n",
        c.serving, c.compared_at.0
    );
    let mut rows = table(&["", "changed", "same", "only serving", "only pending"]);
    rows.add_row(vec![
        "rows".to_string(),
        c.rows_changed.to_string(),
        c.rows_same.to_string(),
        c.rows_only_serving.to_string(),
        c.rows_only_pending.to_string(),
    ]);
    out.push_str(&format!("{rows}\n"));
    if !c.moved.is_empty() {
        let mut moved = table(&["moved from", "to", "records"]);
        let group = |g: &Option<String>| g.clone().unwrap_or_else(|| "(no group)".into());
        for m in &c.moved {
            moved.add_row(vec![group(&m.from), group(&m.to), m.records.to_string()]);
        }
        out.push_str(&format!("\n{moved}\n"));
    }
    if !c.groups.is_empty() {
        let fields: std::collections::BTreeSet<&String> =
            c.groups.iter().flat_map(|g| g.sum_deltas.keys()).collect();
        let mut header = vec!["group".to_string(), "count Δ".to_string()];
        header.extend(fields.iter().map(|f| format!("{f} Δ")));
        let mut groups = table(&header);
        for g in &c.groups {
            let mut row = vec![g.group.clone(), signed(&g.count_delta.to_string())];
            row.extend(fields.iter().map(|f| {
                g.sum_deltas
                    .get(*f)
                    .map_or_else(|| "0".to_string(), |d| signed(d))
            }));
            groups.add_row(row);
        }
        out.push_str(&format!("\n{groups}\n"));
    }
    out
}

fn table<S: ToString>(header: &[S]) -> Table {
    let mut t = Table::new();
    t.load_style(ASCII_MARKDOWN)
        .set_header(header.iter().map(ToString::to_string));
    for i in 1..header.len() {
        if let Some(column) = t.column_mut(i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// A delta with its sign: `+3`, `-2.50`, `0`.
fn signed(delta: &str) -> String {
    let zero = delta.chars().all(|c| c == '0' || c == '.' || c == '-');
    if delta.starts_with('-') || zero {
        delta.to_string()
    } else {
        format!("+{delta}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{GroupDelta, MovedSummary};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn the_comparison_reads_as_tables_with_signed_deltas() {
        let c = ComparisonSummary {
            compared_at: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            serving: "old".into(),
            consistent: true,
            rows_changed: 12,
            rows_same: 188,
            rows_only_serving: 0,
            rows_only_pending: 1,
            moved: vec![
                MovedSummary {
                    from: Some("affordable".into()),
                    to: Some("cheap".into()),
                    records: 1204,
                },
                MovedSummary {
                    from: Some("cheap".into()),
                    to: None,
                    records: 3,
                },
            ],
            groups: vec![
                GroupDelta {
                    group: "affordable".into(),
                    count_delta: -1204,
                    sum_deltas: [("price".to_string(), "-8123.45".to_string())].into(),
                },
                GroupDelta {
                    group: "cheap".into(),
                    count_delta: 1201,
                    sum_deltas: [("price".to_string(), "8100.00".to_string())].into(),
                },
            ],
        };
        let text = comparison_tables("new", &c);
        let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
        assert!(lines[0].starts_with("comparison of new with serving old at 1970-01-01T00:00:00Z (both at the same positions)"), "{text}");
        let row_of = |first: &str| {
            lines
                .iter()
                .find(|l| l.split('|').nth(1).is_some_and(|c| c.trim() == first))
                .map(|l| {
                    l.split('|')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_else(|| panic!("no row {first} in\n{text}"))
        };
        assert_eq!(row_of("affordable"), ["affordable", "cheap", "1204"]);
        assert_eq!(row_of("cheap"), ["cheap", "(no group)", "3"]);
        let deltas: Vec<Vec<String>> = lines
            .iter()
            .filter(|l| l.contains("8"))
            .filter(|l| l.contains("price") || l.contains('.'))
            .map(|l| {
                l.split('|')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .collect();
        assert_eq!(
            deltas,
            [
                vec!["affordable", "-1204", "-8123.45"],
                vec!["cheap", "+1201", "+8100.00"]
            ]
        );
        assert!(text.contains("| group"), "{text}");
        assert!(text.contains("price Δ"), "{text}");
    }
}
