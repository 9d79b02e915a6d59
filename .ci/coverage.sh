#!/usr/bin/env bash
# Line coverage per crate, from the README's test command run under cargo-llvm-cov:
#
#   bash .ci/coverage.sh
#
# Installs what it needs (rustup's llvm-tools component; cargo-llvm-cov from crates.io,
# pinned), runs `cargo test --workspace` instrumented (against the embedded server, or
# DYNAMODB_ENDPOINT), and prints one line per crate: lines covered / lines, percent.
# Not part of .ci/run: the instrumented rebuild of the workspace takes about ten minutes
# on the 2-core CI machine.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LLVM_COV_VERSION=0.9.1
rustup component add llvm-tools >/dev/null 2>&1 || rustup component add llvm-tools-preview
if ! cargo llvm-cov --version 2>/dev/null | grep -q "$CARGO_LLVM_COV_VERSION"; then
    cargo install --locked "cargo-llvm-cov@$CARGO_LLVM_COV_VERSION"
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
cargo llvm-cov --workspace --locked --json --summary-only --output-path "$out"
python3 - "$out" "$PWD" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
root = sys.argv[2].rstrip("/") + "/"
crates = [("store/", "dynamo-session-store"), ("sweeper-lambda/", "sweeper-lambda"),
          ("infra/app/", "session-app-lambda"), ("tests/local-dynamodb/", "local-dynamodb"),
          ("tests/bench/", "bench"), ("tests/", "integration-tests (helpers)")]
totals = {}
for f in data["data"][0]["files"]:
    path = f["filename"].removeprefix(root)
    if "/tests/" in path and not path.startswith("tests/"):
        continue  # a crate's own integration tests are not the crate
    if path.startswith("tests/tests/") or path.startswith("tests/examples/"):
        continue  # the suite itself
    for prefix, name in crates:
        if path.startswith(prefix):
            lines = f["summary"]["lines"]
            t = totals.setdefault(name, [0, 0])
            t[0] += lines["covered"]; t[1] += lines["count"]
            break
print(f"{'crate':<30} {'lines':>14} {'covered':>8}")
for _, name in crates:
    if name in totals:
        covered, count = totals[name]
        print(f"{name:<30} {covered:>6} / {count:<6} {100 * covered / max(count, 1):>7.1f}%")
PY
