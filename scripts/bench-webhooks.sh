#!/usr/bin/env bash
# What webhooks cost the ledger, in one run on this machine (BENCHMARKS.md, "Webhooks").
#
# RUNS times, alternating: one node (release build, embedded store, sync = "full") without
# webhooks, then one with a webhook receiving every event of every account, posted to a
# local nginx that answers 204 at once (so the receiver is not what is measured). Each run
# on fresh data: `walletctl bench` (ACCOUNTS accounts, CLIENTS workers, DURATION seconds),
# then, with the webhook, the time until the node's outbox is empty, the events delivered
# (`wallet_webhook_deliveries_total`) and the events the journals and settlements make
# (which must all have been delivered), then `walletctl audit`, which must pass.
#
# Usage: scripts/bench-webhooks.sh        (needs nginx: apt-get install nginx-light)
# Environment (defaults): DURATION=20, CLIENTS=32, ACCOUNTS=1000, RUNS=2, PORT=18280
# (walletd on PORT+1, nginx on PORT+2).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}
CLIENTS=${CLIENTS:-32}
ACCOUNTS=${ACCOUNTS:-1000}
RUNS=${RUNS:-2}
PORT=${PORT:-18280}
DRAIN_MAX_S=${DRAIN_MAX_S:-600}

say() { printf '\n==> %s\n' "$*" >&2; }
for tool in curl python3 nginx; do
  command -v "$tool" >/dev/null || { echo "error: $tool is needed" >&2; exit 2; }
done
say "building the release binaries"
cargo build --release --bins

WORK=$(mktemp -d /tmp/bench-webhooks.XXXXXX)
NODE_PID=""
cleanup() {
  [ -z "$NODE_PID" ] || { kill "$NODE_PID" 2>/dev/null || true; wait "$NODE_PID" 2>/dev/null || true; }
  [ ! -f "$WORK/nginx.pid" ] || kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The receiver: nginx answering 204 to every POST.
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<EOF
daemon on;
pid $WORK/nginx.pid;
worker_processes 1;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx;
  proxy_temp_path $WORK/nginx;
  fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx;
  scgi_temp_path $WORK/nginx;
  server {
    listen 127.0.0.1:$((PORT + 2));
    location / { return 204; }
  }
}
EOF
nginx -c "$WORK/nginx.conf" -p "$WORK"

URL="http://127.0.0.1:$((PORT + 1))"
metric() { curl -sf "$URL/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

# run HOOK N: one run; prints "hook transfers/s p99_ms unknown failed delivered drain_s".
run() {
  local hook=$1 n=$2 data="$WORK/data-$1-$2"
  say "run $n, webhook: $hook"
  mkdir -p "$data"
  {
    echo "[node]"
    echo "id = \"n1\""
    echo "listen = \"127.0.0.1:$((PORT + 1))\""
    echo "[storage]"
    echo "path = \"$data\""
    if [ "$hook" = yes ]; then
      echo "[[webhooks]]"
      echo "id = \"bench\""
      echo "url = \"http://127.0.0.1:$((PORT + 2))/events\""
      echo "secret = \"bench-webhook-secret\""
    fi
  } >"$WORK/n1.toml"
  ./target/release/walletd --config "$WORK/n1.toml" >"$WORK/n1-$hook-$n.log" 2>&1 &
  NODE_PID=$!
  for _ in $(seq 1 100); do curl -sf "$URL/readyz" >/dev/null && break; sleep 0.1; done
  ./target/release/walletctl --node "$URL" --json bench --accounts "$ACCOUNTS" \
    --duration "$DURATION" --concurrency "$CLIENTS" >"$WORK/bench-$hook-$n.json"
  local delivered=0 drain=0
  if [ "$hook" = yes ]; then
    local start=$SECONDS
    # Empty when the gauge (counted every second) reads 0 twice in a row.
    local zeros=0
    while [ $zeros -lt 2 ]; do
      if [ "$(metric 'wallet_webhook_outbox_events{webhook="bench"}')" = 0 ]; then
        zeros=$((zeros + 1))
      else
        zeros=0
      fi
      [ $((SECONDS - start)) -lt "$DRAIN_MAX_S" ] || { echo "error: the outbox did not drain" >&2; exit 1; }
      sleep 1
    done
    drain=$((SECONDS - start))
    delivered=$(metric 'wallet_webhook_deliveries_total{webhook="bench"}')
  fi
  ./target/release/walletctl --node "$URL" audit --wait-secs 30 >&2
  kill "$NODE_PID"; wait "$NODE_PID" 2>/dev/null || true; NODE_PID=""
  python3 - "$WORK/bench-$hook-$n.json" "$hook" "$delivered" "$drain" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
p99 = (r.get("latency_ms") or {}).get("p99", 0)
print(f'{sys.argv[2]} {r["transfers_per_s"]:.0f} {p99} {r["unknown"]} {sum(r["failed"].values())} {sys.argv[3]} {sys.argv[4]}')
EOF
}

RESULTS=()
for n in $(seq 1 "$RUNS"); do
  RESULTS+=("$n $(run no "$n")")
  RESULTS+=("$n $(run yes "$n")")
done

echo
echo "| run | webhook | transfers/s | p99 (ms) | unknown | failed | events delivered | outbox empty after the run (s) |"
echo "|---|---|---|---|---|---|---|---|"
for line in "${RESULTS[@]}"; do
  read -r n hook tps p99 unknown failed delivered drain <<<"$line"
  echo "| $n | $hook | $tps | $p99 | $unknown | $failed | $delivered | $drain |"
done
