#!/usr/bin/env bash
# The test command: start the test environment, run format, lint and every
# test against it, stop it, and exit non-zero if anything failed.
set -uo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

started=$SECONDS
failed=()
step() {
  local name="$1"; shift
  echo "==> $name"
  local t=$SECONDS
  if "$@"; then
    echo "==> $name: ok ($((SECONDS - t)) s)"
  else
    echo "==> $name: FAILED ($((SECONDS - t)) s)"
    failed+=("$name")
  fi
}

hack/testenv.sh up || { echo "==> the test environment did not start"; exit 1; }
trap 'hack/testenv.sh down' EXIT
eval "$(hack/testenv.sh env)"

step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test" cargo test --workspace --all-targets --locked --no-fail-fast -- --include-ignored
step "cargo test --doc" cargo test --workspace --doc --locked
step "fuzz the decoders (${FUZZ_SECONDS:-30} s each)" env FUZZ_SECONDS="${FUZZ_SECONDS:-30}" hack/fuzz.sh

echo "==> total $((SECONDS - started)) s"
if ((${#failed[@]})); then
  echo "==> failed: ${failed[*]}"
  exit 1
fi
echo "==> all passed"
