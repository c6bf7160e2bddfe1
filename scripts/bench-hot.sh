#!/usr/bin/env bash
# The rate into one hot account, unsharded and with SHARDS shards, on one node and on a
# three-node local cluster, in one run on this machine (BENCHMARKS.md, "A hot account").
#
# For each of the four setups: a fresh data directory, the node(s) started (release build,
# embedded store, sync = "full"), the hot account `merchant` opened (with --shards SHARDS or
# not), `walletctl bench --hot merchant --hot-share HOT_SHARE` (ACCOUNTS payers, CLIENTS
# workers, DURATION seconds, through node 1, which forwards each request to its account's
# owner), `walletctl account show merchant` (where its shards live), and `walletctl audit`,
# which must pass. Then a table of the four rates.
#
# Usage: scripts/bench-hot.sh
# Environment (defaults): DURATION=20, CLIENTS=32, ACCOUNTS=1000, HOT_SHARE=100, SHARDS=8,
# PORT=18180 (the nodes use PORT+1..PORT+3, and PORT+11..PORT+13 between them).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}
CLIENTS=${CLIENTS:-32}
ACCOUNTS=${ACCOUNTS:-1000}
HOT_SHARE=${HOT_SHARE:-100}
SHARDS=${SHARDS:-8}
PORT=${PORT:-18180}

say() { printf '\n==> %s\n' "$*" >&2; }
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool is needed" >&2; exit 2; }
done
say "building the release binaries"
cargo build --release --bins

WORK=$(mktemp -d /tmp/bench-hot.XXXXXX)
PIDS=()
stop_nodes() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}
trap 'stop_nodes; rm -rf "$WORK"' EXIT

# start NODES DATA: starts 1 or 3 nodes on one store; prints their URLs.
start() {
  local nodes=$1 data=$2 i
  mkdir -p "$data"
  for i in $(seq 1 "$nodes"); do
    local cfg="$WORK/n$i.toml"
    {
      echo "[node]"
      echo "id = \"n$i\""
      echo "listen = \"127.0.0.1:$((PORT + i))\""
      if [ "$nodes" -gt 1 ]; then
        echo "cluster_listen = \"127.0.0.1:$((PORT + 10 + i))\""
        echo "[cluster]"
        echo "cookie = \"bench-hot\""
        printf 'peers = ['
        for j in $(seq 1 "$nodes"); do
          [ "$j" = "$i" ] || printf '"127.0.0.1:%s",' "$((PORT + 10 + j))"
        done
        echo ']'
      fi
      echo "[storage]"
      echo "path = \"$data\""
    } >"$cfg"
    ./target/release/walletd --config "$cfg" >"$WORK/n$i.log" 2>&1 &
    PIDS+=($!)
  done
  for i in $(seq 1 "$nodes"); do
    for _ in $(seq 1 100); do
      curl -sf "http://127.0.0.1:$((PORT + i))/readyz" >/dev/null && break
      sleep 0.1
    done
  done
}

# run NODES SHARDS: one setup; prints "nodes shards total/s hot/s".
run() {
  local nodes=$1 shards=$2 url="http://127.0.0.1:$((PORT + 1))"
  say "$nodes node(s), merchant with $shards shard(s)"
  start "$nodes" "$WORK/data-$nodes-$shards"
  ./target/release/walletctl --node "$url" account open merchant --currency EUR --shards "$shards" >&2
  ./target/release/walletctl --node "$url" --json bench --accounts "$ACCOUNTS" \
    --duration "$DURATION" --concurrency "$CLIENTS" --hot merchant --hot-share "$HOT_SHARE" \
    >"$WORK/bench-$nodes-$shards.json"
  ./target/release/walletctl --node "$url" account show merchant >&2
  ./target/release/walletctl --node "$url" audit --wait-secs 30 >&2
  stop_nodes
  python3 - "$WORK/bench-$nodes-$shards.json" "$nodes" "$shards" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
hot = r["hot_completed"] / r["run_s"] if r["run_s"] else 0.0
print(f'{sys.argv[2]} {sys.argv[3]} {r["transfers_per_s"]:.0f} {hot:.0f} {r["unknown"]} {sum(r["failed"].values())}')
EOF
}

RESULTS=()
for nodes in 1 3; do
  for shards in 1 "$SHARDS"; do
    RESULTS+=("$(run "$nodes" "$shards")")
  done
done

echo
echo "| nodes | shards of merchant | transfers/s (all) | transfers/s into merchant | unknown | failed |"
echo "|---|---|---|---|---|---|"
for line in "${RESULTS[@]}"; do
  read -r n k all hot unknown failed <<<"$line"
  echo "| $n | $k | $all | $hot | $unknown | $failed |"
done
