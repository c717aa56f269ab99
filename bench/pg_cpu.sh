#!/usr/bin/env bash
# Where one PostgreSQL send's CPU goes: herald, the PostgreSQL backends and
# smtp-sink, in CPU time (so the figures hold on a busy machine, where a
# rate would not), plus WAL bytes per message, row updates and commits.
#
#   bash bench/pg_cpu.sh                                  # release build, 50,000
#   N=20000 HERALD=target/debug/herald bash bench/pg_cpu.sh
#   PROCS=3 bash bench/pg_cpu.sh                          # three senders, one campaign
#
# Needs Postfix's smtp-sink and the machine's PostgreSQL (trust auth).
# PostgreSQL's CPU counts every backend, so run it with no other database
# work going on.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-50000}; PROCS=${PROCS:-1}; PORT=25299; PGURL=postgres://root@127.0.0.1:5432
if ! command -v smtp-sink >/dev/null || [ ! -x /usr/bin/time ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q postfix time >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q postfix time >/dev/null; }
fi
[ -n "${HERALD:-}" ] || cargo build --release --quiet
HERALD=${HERALD:-target/release/herald}
W=$(mktemp -d); db=herald_prof_$$
smtp-sink -u nobody -c 127.0.0.1:$PORT 4096 >/dev/null 2>&1 & SINK=$!
trap 'kill $SINK 2>/dev/null; psql -q $PGURL/postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1; rm -rf $W' EXIT
psql -q "$PGURL/postgres" -c "CREATE DATABASE $db" >/dev/null
cat >"$W/herald.toml" <<TOML
[site]
title = "Herald Bench"
base_url = "https://news.example.com/"
[database]
url = "$PGURL/$db"
[smtp]
url = "smtp://127.0.0.1:$PORT?tls=none"
[send]
concurrency = 16
batch_size = ${BATCH:-500}
TOML
$HERALD -q --config $W/herald.toml status >/dev/null 2>&1 || true
psql -q "$PGURL/$db" -c "INSERT INTO subscribers (email, state, source, unsubscribe_token, created_at, state_changed_at)
  SELECT 'reader' || lpad(i::text, 7, '0') || '@example.com', 'active', 'import', 'tok' || lpad(i::text, 7, '0') || 'abcdefghijklmnop', 0, 0
  FROM generate_series(1, $N) AS i" >/dev/null
psql -q "$PGURL/$db" -c "VACUUM ANALYZE" >/dev/null
pgcpu() { for p in $(pgrep -x postgres); do awk '{print $14+$15}' /proc/$p/stat 2>/dev/null; done | awk '{s+=$1} END {print s}'; }
sinkcpu() { awk '{print $14+$15}' /proc/$SINK/stat; }
pgsample() { while :; do for p in $(pgrep -x postgres); do echo "$p $(awk '{print $14+$15}' /proc/$p/stat 2>/dev/null)"; done; sleep 0.2; done; }
pgsample > $W/pg0 & SAMP=$!; sleep 0.5
w0=$(psql -qtA "$PGURL/$db" -c "SELECT pg_current_wal_lsn()")
p0=$(pgcpu); s0=$(sinkcpu); t0=$(date +%s.%N)
senders=()
for _ in $(seq "$PROCS"); do
    ${PERF:-} /usr/bin/time -f "herald user %U sys %S wall %e" $HERALD --config $W/herald.toml -q send examples/issues/vol-002.md >/dev/null &
    senders+=($!)
done
wait "${senders[@]}"
t1=$(date +%s.%N); s1=$(sinkcpu); kill $SAMP
p1=$(awk 'NF==2 {if ($2>m[$1]) m[$1]=$2} END {for (k in m) s+=m[k]; print s}' $W/pg0)
p0=$(awk -v p0=$p0 'BEGIN{print p0}')
echo "wall $(python3 -c "print(round($t1-$t0,2))") s, rate $(python3 -c "print(round($N/($t1-$t0)))") msg/s"
echo "postgres cpu $(( (p1-p0) ))0 ms , sink cpu $(( (s1-s0) ))0 ms"
psql -qtA "$PGURL/$db" -c "SELECT state, count(*) FROM deliveries GROUP BY 1"
psql -qtA "$PGURL/$db" -c "SELECT 'wal bytes/msg', round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$w0') / $N)"
psql -qtA "$PGURL/$db" -c "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE n_tup_upd+n_tup_ins > 0"
psql -qtA "$PGURL/$db" -c "SELECT 'xacts', xact_commit FROM pg_stat_database WHERE datname = current_database()"
