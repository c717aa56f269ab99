#!/usr/bin/env bash
# Sending on PostgreSQL: one and three `herald send` processes against
# Postfix's smtp-sink on loopback, each compared with smtp-source measured
# in the same run; then a 1,000,000-recipient campaign on each backend: how
# long its snapshot takes, the bytes per delivery row, and each process's
# peak memory while it sends.
#
#   bash bench/postgres.sh                        # 100,000 and 1,000,000
#   N=20000 BIG=200000 bash bench/postgres.sh     # a quicker look
#   ONLY_BIG=1 bash bench/postgres.sh             # only the 1,000,000 part
#   ONLY_SEND=1 bash bench/postgres.sh            # only the send rates
#   RESULTS=/dev/null bash bench/postgres.sh      # a trial, not recorded
#   ROUNDS=5 HERALD=/path/to/herald bash bench/postgres.sh
#
# Needs the machine's PostgreSQL (PGURL, default the local server with
# trust authentication). Results are appended to bench/RESULTS.md.
#
# Targets: three processes >= 0.9 of smtp-source, one process >= 0.75;
# the snapshot of 1,000,000 under 10 s; peak RSS under 50 MB per process.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${N:-100000}
BIG=${BIG:-1000000}
PORT=${PORT:-25252}
ISSUE=${ISSUE:-examples/issues/vol-002.md}
PGURL=${PGURL:-postgres://root@127.0.0.1:5432}
SESSIONS=16
ROUNDS=${ROUNDS:-3}
# How long the 1,000,000-recipient sends run before they are interrupted
# (SIGINT, a clean stop): long enough for memory to reach its plateau.
BIG_SEND_SECS=${BIG_SEND_SECS:-30}

if ! command -v smtp-sink >/dev/null || [ ! -x /usr/bin/time ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q postfix time >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q postfix time >/dev/null; }
fi
SINK=$(command -v smtp-sink || echo /usr/sbin/smtp-sink)
SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)

if [ -z "${HERALD:-}" ]; then
    cargo build --release --quiet
    HERALD=$ROOT/target/release/herald
fi
WORK=$(mktemp -d)
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    for db in $(psql -qtA "$PGURL/postgres" -c "SELECT datname FROM pg_database WHERE datname LIKE 'herald_bench_$$\_%'"); do
        psql -q "$PGURL/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

"$SINK" -u nobody -c 127.0.0.1:$PORT 4096 >/dev/null 2>&1 &
sleep 0.5

now_ms() { date +%s%3N; }

# A campaign directory on PostgreSQL with `count` active subscribers.
setup_pg() { # dir count
    local db="herald_bench_$$_$(basename "$1")"
    psql -q "$PGURL/postgres" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
    mkdir -p "$1"
    cat >"$1/herald.toml" <<TOML
[site]
title = "Herald Bench"
base_url = "https://news.example.com/"
[database]
url = "$PGURL/$db"
[smtp]
url = "smtp://127.0.0.1:$PORT?tls=none"
[send]
concurrency = ${CONCURRENCY:-$SESSIONS}
batch_size = 500
TOML
    "$HERALD" -q --config "$1/herald.toml" status >/dev/null 2>&1 || true
    psql -q "$PGURL/$db" -c "INSERT INTO subscribers
        (email, state, source, unsubscribe_token, created_at, state_changed_at)
        SELECT 'reader' || lpad(i::text, 7, '0') || '@example.com', 'active', 'import',
               'tok' || lpad(i::text, 7, '0') || 'abcdefghijklmnop', 0, 0
        FROM generate_series(1, $2) AS i" >/dev/null
    psql -q "$PGURL/$db" -c "VACUUM ANALYZE" >/dev/null
    echo "$db"
}

setup_sqlite() { # dir count
    mkdir -p "$1"
    cat >"$1/herald.toml" <<TOML
[site]
title = "Herald Bench"
base_url = "https://news.example.com/"
[database]
url = "sqlite://herald.db"
[smtp]
url = "smtp://127.0.0.1:$PORT?tls=none"
[send]
concurrency = 16
batch_size = 500
TOML
    "$HERALD" -q --config "$1/herald.toml" status >/dev/null 2>&1 || true
    python3 - "$1/herald.db" "$2" <<'PY'
import sqlite3, sys
db, n = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
c.executemany(
    "INSERT INTO subscribers (email, state, source, unsubscribe_token, created_at, state_changed_at)"
    " VALUES (?, 'active', 'import', ?, 0, 0)",
    ((f"reader{i:07d}@example.com", f"tok{i:07d}abcdefghijklmnop") for i in range(n)))
c.commit()
PY
}

pg() { psql -qtA "$PGURL/$1" -c "$2"; }

"$HERALD" -q preview "$ISSUE" --out "$WORK/preview" >/dev/null
SIZE=$(stat -c %s "$WORK"/preview/*.eml)

source_rate() {
    local start end
    start=$(date +%s.%N)
    "$SOURCE" -d -s "$SESSIONS" -m "$N" -l "$SIZE" -f bench@example.com -t sink@example.com 127.0.0.1:$PORT
    end=$(date +%s.%N)
    python3 -c "print(round($N / ($end - $start)))"
}

# `procs` processes send one campaign of N together; prints msg/s (wall
# clock, from the first start to the last exit) after checking every row.
# They share smtp-source's 16 sessions among them (6 each for three), as
# workers share a relay's connection limit.
send_together() { # dir procs
    local db start end pids=()
    db=$(CONCURRENCY=$(( (SESSIONS + $2 - 1) / $2 )) setup_pg "$1" "$N")
    start=$(date +%s.%N)
    for _ in $(seq "$2"); do
        "$HERALD" --config "$1/herald.toml" -q send "$ROOT/$ISSUE" >/dev/null &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    end=$(date +%s.%N)
    local sent
    sent=$(pg "$db" "SELECT COUNT(*) FROM deliveries WHERE state = 'sent'")
    if [ "$sent" != "$N" ]; then
        echo "FAIL: $sent of $N deliveries recorded sent" >&2
        exit 1
    fi
    python3 -c "print(round($N / ($end - $start)))"
}

# Each round runs smtp-source before, between and after the two herald
# runs, and compares each herald run with the mean of the smtp-source runs
# around it; the ratios reported are the rounds' medians, as this machine's
# speed drifts between minutes as well as days.
median() { python3 -c "import statistics, sys; print(round(statistics.median(map(float, sys.argv[1:])), 2))" "$@"; }
ratio() { python3 -c "print(round($1 / (($2 + $3) / 2), 2))"; }
if [ -z "${ONLY_BIG:-}" ]; then
RATIOS_1=(); RATIOS_3=(); ROWS=()
for round in $(seq "$ROUNDS"); do
    echo "== round $round: smtp-source, $N messages of $SIZE bytes, $SESSIONS sessions"
    BEFORE=$(source_rate)
    echo "smtp-source: $BEFORE msg/s"
    echo "== one herald send on PostgreSQL: $N recipients"
    ONE=$(send_together "$WORK/one$round" 1)
    echo "herald, 1 process: $ONE msg/s"
    echo "== smtp-source again"
    BETWEEN=$(source_rate)
    echo "smtp-source: $BETWEEN msg/s"
    echo "== three herald send processes on one PostgreSQL: $N recipients"
    THREE=$(send_together "$WORK/three$round" 3)
    echo "herald, 3 processes: $THREE msg/s"
    echo "== smtp-source again"
    AFTER=$(source_rate)
    echo "smtp-source: $AFTER msg/s"
    RATIOS_1+=("$(ratio "$ONE" "$BEFORE" "$BETWEEN")")
    RATIOS_3+=("$(ratio "$THREE" "$BETWEEN" "$AFTER")")
    ROWS+=("| $round | $BEFORE | $ONE | $BETWEEN | $THREE | $AFTER | ${RATIOS_1[-1]} | ${RATIOS_3[-1]} |")
done
RATIO_1=$(median "${RATIOS_1[@]}")
RATIO_3=$(median "${RATIOS_3[@]}")
echo "medians: one process $RATIO_1, three $RATIO_3"
fi

if [ -z "${ONLY_SEND:-}" ]; then
# The big campaign: snapshot time is the campaign's creation to its first
# claim (the snapshot commits in between); the send is then interrupted.
big_send() { # dir -> peak KB
    (
        /usr/bin/time -f %M -o "$1/rss" "$HERALD" --config "$1/herald.toml" -q send "$ROOT/$ISSUE" >/dev/null 2>&1 &
        wait
    ) &
    local runner=$!
    sleep "$BIG_SEND_SECS"
    pkill -INT -f "$1/herald.toml" || true
    wait "$runner" || true
    # time(1) says first that the command stopped on a signal.
    tail -n 1 "$1/rss"
}

echo "== $BIG recipients on PostgreSQL"
BIGDB=$(setup_pg "$WORK/bigpg" "$BIG")
PG_KB=$(big_send "$WORK/bigpg")
PG_SNAPSHOT_MS=$(pg "$BIGDB" "SELECT (SELECT MIN(first_attempt_at) FROM deliveries) - created_at FROM campaigns")
PG_ROWS=$(pg "$BIGDB" "SELECT COUNT(*) FROM deliveries")
PG_BYTES=$(pg "$BIGDB" "SELECT pg_total_relation_size('deliveries') / COUNT(*) FROM deliveries")
echo "snapshot $PG_SNAPSHOT_MS ms for $PG_ROWS rows, $PG_BYTES bytes/row, peak RSS $((PG_KB / 1024)) MB"

echo "== $BIG recipients on SQLite"
setup_sqlite "$WORK/bigsq" "$BIG"
SQ_KB=$(big_send "$WORK/bigsq")
read -r SQ_SNAPSHOT_MS SQ_ROWS SQ_BYTES < <(python3 - "$WORK/bigsq/herald.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
snapshot = c.execute("SELECT (SELECT MIN(first_attempt_at) FROM deliveries) - created_at FROM campaigns").fetchone()[0]
rows = c.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
try:
    size = c.execute("SELECT SUM(pgsize) FROM dbstat WHERE name IN"
                     " (SELECT name FROM sqlite_master WHERE tbl_name = 'deliveries')").fetchone()[0]
except sqlite3.OperationalError:
    size = c.execute("PRAGMA page_count").fetchone()[0] * c.execute("PRAGMA page_size").fetchone()[0]
print(snapshot, rows, size // rows)
PY
)
echo "snapshot $SQ_SNAPSHOT_MS ms for $SQ_ROWS rows, $SQ_BYTES bytes/row, peak RSS $((SQ_KB / 1024)) MB"
fi

{
    echo
    echo "## PostgreSQL ($(date -u +%Y-%m-%d), $(nproc) cores, \`bash bench/postgres.sh\`)"
    echo
    echo "Messages of $SIZE bytes ($ISSUE), Postfix smtp-sink on loopback, release build, PostgreSQL $(psql -qtA "$PGURL/postgres" -c 'SHOW server_version') on the same machine; smtp-source measured before and after each herald run."
    echo
    echo "| measure | result | target |"
    echo "| --- | --- | --- |"
    if [ -z "${ONLY_BIG:-}" ]; then
        echo "| 1 process, $N recipients, all recorded | median $RATIO_1 of smtp-source over $ROUNDS rounds | ≥ 0.75 |"
        echo "| 3 processes ($(( (SESSIONS + 2) / 3 )) sessions each), one campaign, $N recipients, all recorded | median $RATIO_3 of smtp-source over $ROUNDS rounds | ≥ 0.9 |"
    fi
    if [ -z "${ONLY_SEND:-}" ]; then
    echo "| snapshot of $BIG recipients, PostgreSQL | $PG_SNAPSHOT_MS ms | < 10 s |"
    echo "| snapshot of $BIG recipients, SQLite | $SQ_SNAPSHOT_MS ms | < 10 s |"
    echo "| bytes per delivery row (table and indexes), PostgreSQL | $PG_BYTES | (reported) |"
    echo "| bytes per delivery row (table and indexes), SQLite | $SQ_BYTES | (reported) |"
    echo "| peak RSS sending $BIG for ${BIG_SEND_SECS} s, PostgreSQL | $((PG_KB / 1024)) MB | < 50 MB |"
    echo "| peak RSS sending $BIG for ${BIG_SEND_SECS} s, SQLite | $((SQ_KB / 1024)) MB | < 50 MB |"
    fi
    if [ -z "${ONLY_BIG:-}" ]; then
        echo
        echo "msg/s of each run in each round, and each herald run against the mean of the smtp-source runs around it:"
        echo
        echo "| round | smtp-source | 1 process | smtp-source | 3 processes | smtp-source | 1 process ratio | 3 processes ratio |"
        echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        printf '%s\n' "${ROWS[@]}"
    fi
} >>"${RESULTS:-bench/RESULTS.md}"
echo "appended to ${RESULTS:-bench/RESULTS.md}"
