#!/usr/bin/env bash
# The one gate: what CI runs, runnable on a developer machine from a clean clone.
#   formatting, lints (warnings are errors), every test of the workspace (unit, API,
#   storage conformance, end-to-end crash test), and the compile check of the `fdb` feature.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace"
cargo test --workspace

step "cargo check --features fdb"
cargo check -p node --features fdb

echo
echo "all checks passed"
