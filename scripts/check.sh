#!/usr/bin/env bash
# The one gate: what CI runs, runnable on a developer machine from a clean clone.
#   formatting, lints (warnings are errors), every test of the workspace (unit, API,
#   storage conformance, end-to-end crash test, the simulator's determinism check and its
#   200-seed sweep), the simulator's planted-bug proof, and the compile and lint check of the
#   FoundationDB backend (`--features fdb`).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace"
cargo test --workspace

step "simulator catches every planted bug (cargo test --features planted-bugs)"
cargo clippy -p simulation --all-targets --features planted-bugs -- -D warnings
cargo test -p simulation --features planted-bugs --test planted -- --nocapture

# FoundationDB's client library cannot be installed here, so the fdb backend is compiled and
# linted, not linked or run; with a cluster, run it with `FDB_CLUSTER_FILE` (see the README).
step "cargo check and clippy --features fdb (needs libclang-dev)"
cargo check -p node --all-targets --features fdb
cargo clippy -p node --all-targets --features fdb -- -D warnings

echo
echo "all checks passed"
