#!/usr/bin/env bash
# Coverage-guided fuzzing of the Avro and Protobuf decoders: cargo-fuzz
# (libFuzzer with AddressSanitizer, Rust's nightly toolchain), each target
# for FUZZ_SECONDS (default 30). A panic, a leak, a hang of more than 10 s or
# more than 1 GiB fails it, and the input that did is kept in
# fuzz/artifacts/<target>/. cargo-fuzz is installed from crates.io into
# $MATVIEW_CACHE; the fuzz build and the corpus are kept there too, so each
# run starts from what the last one found.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=hack/lib/provision.sh
source "$REPO_ROOT/hack/lib/provision.sh"

: "${FUZZ_SECONDS:=30}"
CARGO_FUZZ_VERSION=0.13.2
FUZZ_TOOLS="$MATVIEW_CACHE/cargo-fuzz-$CARGO_FUZZ_VERSION"

rustup run nightly rustc --version >/dev/null 2>&1 ||
  die "the fuzzer needs Rust's nightly toolchain: rustup toolchain install nightly"
if [[ ! -x "$FUZZ_TOOLS/bin/cargo-fuzz" ]]; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io"
  cargo install --quiet --locked --root "$FUZZ_TOOLS" cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
export PATH="$FUZZ_TOOLS/bin:$PATH"

cd "$REPO_ROOT/fuzz"
for target in avro protobuf; do
  corpus="$MATVIEW_CACHE/fuzz-corpus/$target"
  mkdir -p "$corpus"
  log "fuzzing $target for ${FUZZ_SECONDS} s (corpus: $corpus)"
  # libFuzzer prints a line per new input; keep its summary and anything it found.
  cargo +nightly fuzz run --target-dir "$MATVIEW_CACHE/fuzz-target" "$target" "$corpus" -- \
    -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 2>&1 |
    grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|INITED|RELOAD)'
done
