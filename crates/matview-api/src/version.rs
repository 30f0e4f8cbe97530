//! Build identity printed by `matview version`.

/// The crate version, as released.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One line that identifies this build: name, version, target.
pub fn version_line() -> String {
    format!(
        "matview {VERSION} ({} {})",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_line_names_the_crate_version() {
        let line = version_line();
        assert!(line.starts_with("matview "), "{line}");
        assert!(line.contains(env!("CARGO_PKG_VERSION")), "{line}");
    }
}
