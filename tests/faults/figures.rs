//! What users felt during a fault, from the view's own figures (the
//! gateway's `…/figures`: each shard's counted replica, 2 s intervals): the
//! longest time a shard did not advance while it had events to apply, and
//! the freshness p99 during the fault and in the [`AFTER`] after it.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::stack::Stack;

/// The window after a fault whose freshness is measured: what users feel
/// while the view catches up.
pub const AFTER: std::time::Duration = std::time::Duration::from_secs(10);

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Of a shard's closed intervals: the longest run of intervals in which it
/// applied nothing while its lag was above 0, in ms.
pub fn longest_stall_ms(samples: &[Value], interval_ms: i64) -> i64 {
    let mut longest = 0;
    let mut run = 0;
    for s in samples {
        let stalled = s["events"].as_u64() == Some(0) && s["lag"].as_i64().unwrap_or(0) > 0;
        run = if stalled { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest * interval_ms
}

/// The highest freshness p99 of the intervals that began in [from, to).
pub fn worst_p99_ms(samples: &[Value], from: i64, to: i64) -> Option<u64> {
    samples
        .iter()
        .filter(|s| s["atMs"].as_i64().is_some_and(|at| at >= from && at < to))
        .filter_map(|s| s["freshnessP99Ms"].as_u64())
        .max()
}

/// One line on what users felt; `window` is the fault's (began, ended).
pub async fn felt(
    st: &Stack,
    token: &str,
    view: &str,
    window: (Option<i64>, Option<i64>),
) -> String {
    let (Some(began), Some(ended)) = window else {
        return "no fault window recorded".into();
    };
    let path = format!("/v1/namespaces/{}/views/{view}/figures", st.ns.name);
    let Some(answer) = st.gateway.get(&path, Some(token)).await else {
        return "figures unavailable".into();
    };
    let figures = answer.body;
    let mut parts = Vec::new();
    // Every replica, the counted one of each shard first: a replica stuck
    // behind shows here even while its partner serves.
    let counted = |r: &Value| {
        figures["counted"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["pod"] == r["pod"] && c["shard"] == r["shard"])
        })
    };
    let mut replicas = figures["replicas"].as_array().cloned().unwrap_or_default();
    replicas.sort_by_key(|r| (r["shard"].as_u64(), !counted(r)));
    for replica in &replicas {
        let f = &replica["figures"];
        let interval = f["intervalMs"].as_i64().unwrap_or(2_000);
        let samples = f["samples"].as_array().cloned().unwrap_or_default();
        // The newest interval is still open.
        let closed = &samples[..samples.len().saturating_sub(1)];
        let since_fault: Vec<Value> = closed
            .iter()
            .filter(|s| s["atMs"].as_i64().is_some_and(|at| at + interval > began))
            .cloned()
            .collect();
        let show = |p: Option<u64>| p.map_or("—".to_string(), |ms| format!("{ms} ms"));
        parts.push(format!(
            "shard {} {}{}: longest stall {:.0} s, freshness p99 during {} and after {}",
            replica["shard"],
            replica["pod"].as_str().unwrap_or("?"),
            if counted(replica) { " (counted)" } else { "" },
            longest_stall_ms(&since_fault, interval) as f64 / 1000.0,
            show(worst_p99_ms(closed, began - interval, ended)),
            show(worst_p99_ms(
                closed,
                ended,
                ended + AFTER.as_millis() as i64
            )),
        ));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_stall_is_nothing_applied_while_something_waits() {
        let samples: Vec<Value> = [(5, 0), (0, 3), (0, 4), (2, 0), (0, 0), (0, 9)]
            .iter()
            .enumerate()
            .map(|(i, (events, lag))| json!({"atMs": i as i64 * 2000, "events": events, "lag": lag, "freshnessP99Ms": i * 10}))
            .collect();
        assert_eq!(longest_stall_ms(&samples, 2000), 4000);
        assert_eq!(worst_p99_ms(&samples, 2000, 8000), Some(30));
        assert_eq!(worst_p99_ms(&samples, 100_000, 200_000), None);
    }
}
