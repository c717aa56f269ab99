#!/usr/bin/env bash
# Send throughput and memory, against Postfix's smtp-sink on loopback.
#
#   bash bench/send.sh            # full run (20,000 / 10,000 / 100,000)
#   N=2000 BIG=20000 bash bench/send.sh   # a quicker look
#
# 1. smtp-source -d -s 16 sends N messages of the same size as Herald's to
#    the sink: the ceiling for this machine.
# 2. herald send delivers the same N messages over 16 connections, every
#    delivery recorded in SQLite. Target: at least 75% of smtp-source.
# 3. One connection: catches a return to lettre's delayed-ACK slow path
#    (about 23 messages/s without TCP_NODELAY). Fails below 200/s.
# 4. Peak RSS for 10,000 and BIG (100,000) recipients: flat, under 100 MB.
# Results are appended to bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${N:-20000}
SMALL=${SMALL:-10000}
BIG=${BIG:-100000}
PORT=${PORT:-25251}
ISSUE=${ISSUE:-examples/issues/vol-002.md}

if ! command -v smtp-sink >/dev/null || [ ! -x /usr/bin/time ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q postfix time >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q postfix time >/dev/null; }
fi
SINK=$(command -v smtp-sink || echo /usr/sbin/smtp-sink)
SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)

cargo build --release --quiet
HERALD=$ROOT/target/release/herald
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

# smtp-sink as root must drop privileges (-u); -c counts, 1024 backlog.
"$SINK" -u nobody -c 127.0.0.1:$PORT 1024 >/dev/null 2>&1 &
sleep 0.5

# A campaign directory with N active subscribers.
setup() { # dir count
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
concurrency = ${CONCURRENCY:-16}
batch_size = 500
TOML
    "$HERALD" -q --config "$1/herald.toml" status >/dev/null 2>&1 || true
    python3 - "$1/herald.db" "$2" <<'PY'
import sqlite3, sys, time
db, n = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
now = int(time.time() * 1000)
c.executemany(
    "INSERT INTO subscribers (email, state, source, unsubscribe_token, created_at, state_changed_at)"
    " VALUES (?, 'active', 'import', ?, ?, ?)",
    ((f"reader{i:07d}@example.com", f"tok{i:07d}abcdefghijklmnop", now, now) for i in range(n)))
c.commit()
PY
}

rate_of() { # herald output -> messages/s of this run
    sed -n 's/.*(\([0-9]*\)\/s).*/\1/p' "$1" | head -1
}

# The size of one of Herald's messages, for a like-for-like smtp-source run.
"$HERALD" -q preview "$ISSUE" --out "$WORK/preview" >/dev/null
SIZE=$(stat -c %s "$WORK"/preview/*.eml)

echo "== smtp-source: $N messages of $SIZE bytes, 16 sessions"
start=$(date +%s.%N)
"$SOURCE" -d -s 16 -m "$N" -l "$SIZE" -f bench@example.com -t sink@example.com 127.0.0.1:$PORT
end=$(date +%s.%N)
SOURCE_RATE=$(python3 -c "print(round($N / ($end - $start)))")
echo "smtp-source: $SOURCE_RATE messages/s"

echo "== herald send: $N recipients, 16 connections"
setup "$WORK/n" "$N"
start=$(date +%s.%N)
"$HERALD" --config "$WORK/n/herald.toml" -q send "$ROOT/$ISSUE" >"$WORK/n.out"
end=$(date +%s.%N)
HERALD_RATE=$(python3 -c "print(round($N / ($end - $start)))")
SENT=$(python3 -c "import sqlite3; print(sqlite3.connect('$WORK/n/herald.db').execute(\"select count(*) from deliveries where state='sent'\").fetchone()[0])")
echo "herald: $HERALD_RATE messages/s wall clock (send loop $(rate_of "$WORK/n.out")/s), $SENT rows recorded sent"
RATIO=$(python3 -c "print(round(100 * $HERALD_RATE / $SOURCE_RATE))")

echo "== one connection (TCP_NODELAY check)"
setup "$WORK/one" 2000
CONCURRENCY=1 true
sed -i 's/^concurrency = .*/concurrency = 1/' "$WORK/one/herald.toml"
"$HERALD" --config "$WORK/one/herald.toml" -q send "$ROOT/$ISSUE" >"$WORK/one.out"
ONE_RATE=$(rate_of "$WORK/one.out")
echo "herald, 1 connection: $ONE_RATE messages/s"

echo "== peak memory: $SMALL and $BIG recipients"
peak() { # dir -> peak RSS in KB
    /usr/bin/time -f %M -o "$1/rss" "$HERALD" --config "$1/herald.toml" -q send "$ROOT/$ISSUE" >/dev/null
    cat "$1/rss"
}
setup "$WORK/small" "$SMALL"
SMALL_KB=$(peak "$WORK/small")
setup "$WORK/big" "$BIG"
BIG_KB=$(peak "$WORK/big")
GROWTH=$(python3 -c "print(round(100 * ($BIG_KB - $SMALL_KB) / $SMALL_KB, 1))")
echo "peak RSS: $SMALL recipients $((SMALL_KB / 1024)) MB, $BIG recipients $((BIG_KB / 1024)) MB ($GROWTH%)"

{
    echo
    echo "## Send ($(date -u +%Y-%m-%d), $(nproc) cores, \`bash bench/send.sh\`)"
    echo
    echo "Messages of $SIZE bytes ($ISSUE), Postfix smtp-sink on loopback, release build."
    echo
    echo "| measure | result | target |"
    echo "| --- | --- | --- |"
    echo "| smtp-source -d -s 16, $N messages | $SOURCE_RATE msg/s | (ceiling) |"
    echo "| herald send, 16 connections, $N recipients, all recorded in SQLite | $HERALD_RATE msg/s = $RATIO% of smtp-source | ≥ 75% |"
    echo "| herald send, 1 connection | $ONE_RATE msg/s | ≫ 23 msg/s (no delayed-ACK stall) |"
    echo "| peak RSS, $SMALL recipients | $((SMALL_KB / 1024)) MB | < 100 MB |"
    echo "| peak RSS, $BIG recipients | $((BIG_KB / 1024)) MB ($GROWTH% over $SMALL) | within 10%, < 100 MB |"
} >>bench/RESULTS.md
echo "appended to bench/RESULTS.md"

if [ "$ONE_RATE" -lt 200 ]; then
    echo "FAIL: one connection sends only $ONE_RATE/s: TCP_NODELAY is not in effect" >&2
    exit 1
fi
