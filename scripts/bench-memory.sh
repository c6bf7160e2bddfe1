#!/usr/bin/env bash
# Memory at scale: one walletd on a fresh data directory, `walletctl bench` opening and funding
# ACCOUNTS accounts and then running transfers across all of them, the node's resident memory
# sampled every 2 s, then `walletctl audit`. Prints the peak resident memory, the active
# accounts and the memory per active account.
#
#   scripts/bench-memory.sh [ACCOUNTS] [SECONDS] [IDLE_PASSIVATE_MS]
#
# Defaults: 1,000,000 accounts, 30 s of transfers, the node's default settings. Give
# IDLE_PASSIVATE_MS (for example 86400000) to keep every account active, the worst case.
# Uses the release binaries in target/release (built if missing). PORT picks the port (18131).
set -euo pipefail
cd "$(dirname "$0")/.."

ACCOUNTS=${1:-1000000}
SECONDS_OF_TRANSFERS=${2:-30}
IDLE_MS=${3:-}
PORT=${PORT:-18131}
BIN=target/release

[ -x "$BIN/walletd" ] && [ -x "$BIN/walletctl" ] || cargo build --release -p node --bins

WORK=$(mktemp -d /tmp/wallet-memory.XXXXXX)
NODE=""
SAMPLER=""
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  if [ -n "$NODE" ] && kill -0 "$NODE" 2>/dev/null; then
    kill "$NODE"
    wait "$NODE" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

ARGS=(--data "$WORK/data" --listen "127.0.0.1:$PORT")
if [ -n "$IDLE_MS" ]; then
  printf '[actors]\nidle_passivate_ms = %s\n' "$IDLE_MS" > "$WORK/node.toml"
  ARGS=(--config "$WORK/node.toml" "${ARGS[@]}")
fi
"$BIN/walletd" "${ARGS[@]}" > "$WORK/walletd.log" 2>&1 &
NODE=$!
URL="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do
  curl -sf "$URL/readyz" > /dev/null && break
  sleep 0.1
done
curl -sf "$URL/readyz" > /dev/null || { echo "walletd did not start:" >&2; cat "$WORK/walletd.log" >&2; exit 1; }

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$NODE/status"; }
active() { curl -s -m 5 "$URL/admin/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["active_actors"])' 2>/dev/null || echo 0; }
START_KB=$(rss_kb)
(
  while kill -0 "$NODE" 2>/dev/null; do
    echo "$(date +%s) $(rss_kb) $(active)" >> "$WORK/samples"
    sleep 2
  done
) &
SAMPLER=$!

echo "walletd pid $NODE, $ACCOUNTS accounts, ${SECONDS_OF_TRANSFERS}s of transfers${IDLE_MS:+, idle_passivate_ms $IDLE_MS}"
"$BIN/walletctl" --node "$URL" --json bench --accounts "$ACCOUNTS" \
  --duration "$SECONDS_OF_TRANSFERS" --concurrency 32 > "$WORK/bench.json"
END_KB=$(rss_kb)
END_ACTIVE=$(active)
kill "$SAMPLER" 2>/dev/null || true
SAMPLER=""
PEAK=$(sort -k2 -n "$WORK/samples" | tail -1)
python3 - "$WORK/bench.json" "$START_KB" "$END_KB" "$END_ACTIVE" "$PEAK" <<'EOF'
import json, sys
bench = json.load(open(sys.argv[1]))
start_kb, end_kb, active = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
_, peak_kb, peak_active = sys.argv[5].split()
print(f"setup (open and fund): {bench['setup_s']:.0f} s")
print(f"transfers: {bench['transfers_per_s']:.0f}/s, p99 {bench['latency_ms']['p99']:.1f} ms")
print(f"resident memory: {start_kb/1024:.0f} MB at start, {end_kb/1024:.0f} MB at the end, "
      f"peak {int(peak_kb)/1024:.0f} MB (with {peak_active} active accounts)")
if active:
    print(f"active accounts at the end: {active}, "
          f"{(end_kb - start_kb) * 1024 / active / 1000:.2f} KB each")
EOF
"$BIN/walletctl" --node "$URL" audit | tail -1
