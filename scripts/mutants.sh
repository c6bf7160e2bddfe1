#!/usr/bin/env bash
# Mutation testing of the ledger with the simulator alone as the test: every mutant of the
# given files (default: the whole ledger and the account driver) is built and judged by the
# simulator's 200-seed sweep (`cargo test -p simulation --test sweep`), nothing else. The
# score is killed / (killed + timeout + missed); `unviable` mutants (they do not compile) do not
# count. The test is `cargo test --package simulation --test sweep`.
#   scripts/mutants.sh                                  # everything (about 490 mutants, 3 hours)
#   scripts/mutants.sh node/src/ledger/driver/mod.rs    # one file
# Needs `cargo install cargo-mutants --locked`. Results in mutants.out/ (caught.txt,
# missed.txt, unviable.txt, timeout.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  files=(node/src/ledger/account.rs node/src/ledger/exec.rs node/src/ledger/records.rs
         node/src/ledger/driver/mod.rs node/src/ledger/driver/deadlines.rs
         node/src/ledger/audit.rs node/src/ledger/audit_scan.rs)
fi
args=()
for f in "${files[@]}"; do args+=(--file "$f"); done
# Extra options, e.g. MUTANTS_OPTS="--in-place" to reuse this tree's build
# (never edit the tree while it runs), or "--iterate" to test only what a previous run left
# missed or untested. A mutant whose sweep runs past MUTANTS_TIMEOUT seconds (default 120; the
# sweep takes about 30 s in a debug build) counts as killed (a hang is caught).
# The baseline is skipped: cargo-mutants 27 runs it on the mutated package's tests only, which
# have no `sweep` target (the unmutated sweep passes in CI on every commit).
mkdir -p target
read -r -a MUTANTS_ARGS <<< "${MUTANTS_OPTS:-}"
# cargo-mutants exits 2 when a mutant was missed and 3 when one timed out: still summarize.
status=0
cargo mutants --package node "${args[@]}" \
  --test-package simulation --cargo-test-arg=--test --cargo-test-arg=sweep --baseline=skip \
  "${MUTANTS_ARGS[@]}" \
  --timeout "${MUTANTS_TIMEOUT:-120}" --output target/mutants || status=$?
out=target/mutants/mutants.out
caught=$(wc -l < "$out/caught.txt"); missed=$(wc -l < "$out/missed.txt")
timeout=$(wc -l < "$out/timeout.txt"); unviable=$(wc -l < "$out/unviable.txt")
echo "caught $caught, missed $missed, timeout $timeout, unviable $unviable"
viable=$((caught + timeout + missed))
if [ "$viable" -gt 0 ]; then
  echo "score: $(( 100 * (caught + timeout) / viable ))% (killed / viable)"
fi
exit "$status"
