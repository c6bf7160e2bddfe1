#!/usr/bin/env bash
# PostgreSQL's transfer rate and walletd's, side by side, in one run on this machine.
#
# 1. PostgreSQL 15 (installed from Debian's packages when missing): a fresh cluster in a
#    temporary directory, set up as the reference says (shared/bench/README.md: scale 50,
#    balances of 10,000,000, VACUUM FULL, CHECKPOINT), then the reference transfer script
#    through pgbench (durable commit, the default).
# 2. walletd (release build, embedded store, sync = "full": every acknowledged transfer is
#    fsynced) on a fresh data directory: `walletctl bench` one transfer per request, then
#    through the batch route (BATCH transfers per request), then the highest one-per-request
#    rate (PEAK_CLIENTS workers) and an open loop at half of it (latencies from each request's
#    scheduled send time), then `walletctl audit`, which must pass.
# 3. Each rate and its ratio to PostgreSQL's.
#
# Usage: scripts/bench-vs-postgres.sh
# Environment (defaults): DURATION=20 (seconds per run), CLIENTS=32 (pgbench clients and
# walletctl workers), SCALE=50 (pgbench scale: 100,000 accounts each), ACCOUNTS=1000 (walletd
# accounts), BATCH=1000 (transfers per batch request), BATCH_CLIENTS=8 (walletctl workers on
# the batch route), PEAK_CLIENTS=64 and OPEN_CLIENTS=256 (workers of the peak and open-loop
# runs), REFERENCE=path of the pgbench script (shared/bench/postgres-transfer.sql beside this
# checkout), PGPORT=55432, WALLET_PORT=18090.
# Both load generators share the machine's cores with their servers; the client CPU of
# walletctl is printed so it can be seen not to be the bottleneck.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20}
CLIENTS=${CLIENTS:-32}
SCALE=${SCALE:-50}
ACCOUNTS=${ACCOUNTS:-1000}
BATCH=${BATCH:-1000}
BATCH_CLIENTS=${BATCH_CLIENTS:-8}
PEAK_CLIENTS=${PEAK_CLIENTS:-64}
OPEN_CLIENTS=${OPEN_CLIENTS:-256}
PGPORT=${PGPORT:-55432}
WALLET_PORT=${WALLET_PORT:-18090}
REFERENCE=${REFERENCE:-../shared/bench/postgres-transfer.sql}
PGBIN=/usr/lib/postgresql/15/bin

say() { printf '\n==> %s\n' "$*" >&2; }

[ -f "$REFERENCE" ] || { echo "error: the reference script $REFERENCE is missing (set REFERENCE)" >&2; exit 2; }

if [ ! -x "$PGBIN/postgres" ] || ! command -v pgbench >/dev/null; then
  say "installing postgresql-15 from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-contrib >/dev/null
fi
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "error: $tool is needed" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/bench-vs-postgres.XXXXXX)
chmod 755 "$WORK"
WALLETD_PID=""
cleanup() {
  [ -n "$WALLETD_PID" ] && kill "$WALLETD_PID" 2>/dev/null || true
  if [ -f "$WORK/pg/postmaster.pid" ]; then
    as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# PostgreSQL refuses to run as root: run it as the `postgres` user the package creates.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# ---- PostgreSQL ------------------------------------------------------------------------------
say "PostgreSQL: a fresh cluster in $WORK/pg"
mkdir -p "$WORK/pg"
[ "$(id -u)" = 0 ] && chown postgres "$WORK/pg"
as_pg "$PGBIN/initdb" -D "$WORK/pg" -A trust -U postgres >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg/log" -w start \
  -o "-c listen_addresses=127.0.0.1 -c port=$PGPORT -c unix_socket_directories=$WORK/pg -c shared_buffers=2GB -c max_wal_size=4GB" >/dev/null
PSQL=(as_pg psql -h 127.0.0.1 -p "$PGPORT" -U postgres -q -v ON_ERROR_STOP=1)
"${PSQL[@]}" -c "CREATE DATABASE bench" >/dev/null
say "PostgreSQL: pgbench -i -s $SCALE, balances of 10,000,000, VACUUM FULL, CHECKPOINT"
as_pg pgbench -h 127.0.0.1 -p "$PGPORT" -U postgres -i -q -s "$SCALE" bench >/dev/null 2>&1
"${PSQL[@]}" -d bench -c "UPDATE pgbench_accounts SET abalance = 10000000" -c "VACUUM FULL" -c "CHECKPOINT" >/dev/null
cp "$REFERENCE" "$WORK/transfer.sql"
chmod 644 "$WORK/transfer.sql"
say "PostgreSQL: $CLIENTS clients, $DURATION s"
as_pg pgbench -h 127.0.0.1 -p "$PGPORT" -U postgres -f "$WORK/transfer.sql" -c "$CLIENTS" -j 2 \
  -T "$DURATION" --max-tries=10 -P 5 bench >"$WORK/pgbench.out" 2>&1
PG_TPS=$(awk '/^tps = /{print $3; exit}' "$WORK/pgbench.out")
PG_LAT=$(awk '/^latency average/{print $4; exit}' "$WORK/pgbench.out")
[ -n "$PG_TPS" ] || { cat "$WORK/pgbench.out" >&2; echo "error: pgbench printed no tps" >&2; exit 1; }
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null

# ---- walletd ---------------------------------------------------------------------------------
say "walletd: release build"
cargo build --release --bins -q
WALLETCTL=(./target/release/walletctl --node "http://127.0.0.1:$WALLET_PORT")
./target/release/walletd --data "$WORK/wallet" --listen "127.0.0.1:$WALLET_PORT" >"$WORK/walletd.log" 2>&1 &
WALLETD_PID=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$WALLET_PORT/readyz" >/dev/null && break
  sleep 0.1
done

# One walletctl bench run: prints its JSON line; the client's CPU seconds go to $1.json.cpu.
wallet_bench() {
  local name=$1
  shift
  /usr/bin/env time -f "%U %S" -o "$WORK/$name.cpu" \
    "${WALLETCTL[@]}" --json bench --accounts "$ACCOUNTS" --duration "$DURATION" "$@" >"$WORK/$name.json"
}

say "walletd: one transfer per request, $CLIENTS workers, $DURATION s"
SERVER_CPU0=$(awk '{print $14 + $15}' "/proc/$WALLETD_PID/stat")
wallet_bench single --concurrency "$CLIENTS"
SERVER_CPU1=$(awk '{print $14 + $15}' "/proc/$WALLETD_PID/stat")

say "walletd: batch route, $BATCH transfers per request, $BATCH_CLIENTS workers, $DURATION s"
wallet_bench batch --concurrency "$BATCH_CLIENTS" --batch "$BATCH"

say "walletd: the highest one-per-request rate, $PEAK_CLIENTS workers, $DURATION s"
wallet_bench peak --concurrency "$PEAK_CLIENTS"
HALF=$(python3 -c "import json; print(max(1, int(json.load(open('$WORK/peak.json'))['transfers_per_s'] / 2)))")
say "walletd: open loop at half of it, $HALF requests/s, $OPEN_CLIENTS workers, $DURATION s"
wallet_bench open --concurrency "$OPEN_CLIENTS" --rate "$HALF"

say "walletd: audit"
"${WALLETCTL[@]}" audit >"$WORK/audit.out" || { cat "$WORK/audit.out" >&2; echo "error: the audit failed" >&2; exit 1; }

# ---- report ----------------------------------------------------------------------------------
BATCH=$BATCH python3 - "$WORK" "$PG_TPS" "$PG_LAT" "$CLIENTS" "$DURATION" "$((SERVER_CPU1 - SERVER_CPU0))" <<'PY'
import json, os, sys
work, pg_tps, pg_lat, clients, duration, server_ticks = sys.argv[1:7]
pg_tps = float(pg_tps)
tick = os.sysconf("SC_CLK_TCK")
print(f"\nside by side, {duration} s each, {clients} clients, {os.cpu_count()} cores")
print(f"{'system':<44} {'transfers/s':>12} {'ratio':>7}  {'p99':>9}  client CPU")
print(f"{'PostgreSQL 15 (pgbench, reference script)':<44} {pg_tps:>12,.0f} {1.0:>7.2f}  {'-':>9}  (avg latency {pg_lat} ms)")
batch = os.environ.get("BATCH", "1000")
for name, label in [("single", "walletd, one transfer per request (HTTP)"),
                    ("batch", f"walletd, batch route ({batch} per request)")]:
    r = json.load(open(f"{work}/{name}.json"))
    user, sys_ = (float(x) for x in open(f"{work}/{name}.cpu").read().split())
    cpu = (user + sys_) / r["run_s"]
    print(f"{label:<44} {r['transfers_per_s']:>12,.0f} {r['transfers_per_s'] / pg_tps:>7.2f}  "
          f"{r['latency_ms']['p99']:>6.1f} ms  {cpu:.2f} cores"
          f"  (unknown {r['unknown']}, pending {r['pending']}, failed {sum(r['failed'].values())})")
print(f"walletd server CPU during the one-per-request run: {int(server_ticks) / tick / float(duration):.2f} cores")
peak = json.load(open(f"{work}/peak.json"))
op = json.load(open(f"{work}/open.json"))
lat = op["latency_ms"] or {}
print(f"open loop at half the highest one-per-request rate ({peak['transfers_per_s']:,.0f}/s, "
      f"{peak['concurrency']} workers): {op['rate']}/s, {op['completed']} of {op['attempted']} completed, "
      f"p50 {lat.get('p50', float('nan')):.1f} ms, p99 {lat.get('p99', float('nan')):.1f} ms "
      f"(from each request's scheduled send time)")
PY
echo "audit: $(tail -1 "$WORK/audit.out")"
