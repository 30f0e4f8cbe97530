//! Command lines of the docs, read as a reader copies them.

/// The command lines of the first `sh` block under `heading` in a doc,
/// comments stripped, continuations joined.
pub fn command_lines(doc: &str, heading_or_start: &str) -> Vec<String> {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(doc))
        .unwrap_or_else(|e| panic!("{doc}: {e}"));
    let after = text
        .split_once(heading_or_start)
        .map_or(text.as_str(), |(_, rest)| rest);
    let block = after
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .unwrap_or_else(|| panic!("{doc} has no sh block"));
    block
        .replace("\\\n", " ")
        .lines()
        .map(|l| l.split(" #").next().unwrap_or_default().trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}
