//! Reading Prometheus' text exposition, for tests and benchmarks that read
//! a process's `/metrics` as an operator's dashboard would.

/// The value of one series (`name` with its labels, as written) in a
/// Prometheus text exposition.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}
