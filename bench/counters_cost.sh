#!/usr/bin/env bash
# What the dashboard's counters (the triggers of migration
# dashboard_counters) cost the statements of a send, on each backend: the
# campaign snapshot of N recipients, and claiming then recording M
# deliveries in batches of 500, as herald does. Two copies of one database,
# one with the triggers on deliveries and one without, timed alternately
# with the same statements, so the ratio holds on a busy machine where the
# absolute times do not.
#
#   bash bench/counters_cost.sh                   # N=1000000, M=100000
#   N=200000 M=50000 HERALD=target/debug/herald bash bench/counters_cost.sh
#
# Needs sqlite3, python3 and the machine's PostgreSQL (trust auth).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
M=${M:-100000}
PGURL=${PGURL:-postgres://root@127.0.0.1:5432}
command -v sqlite3 >/dev/null || apt-get install -y -q sqlite3 >/dev/null
[ -n "${HERALD:-}" ] || cargo build --release --quiet
HERALD=${HERALD:-target/release/herald}
W=$(mktemp -d)
cleanup() {
    for v in with without; do
        psql -q "$PGURL/postgres" -c "DROP DATABASE IF EXISTS herald_counters_$$_$v WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rm -rf "$W"
}
trap cleanup EXIT

SNAPSHOT="INSERT INTO deliveries (campaign_id, subscriber_id, kind, recipient, state, next_attempt_at, message_id, created_at)
  SELECT 1, id, 'issue', email, 'queued', 0, '<herald.n.' || id || '@example.com>', 0
  FROM subscribers WHERE state = 'active' ORDER BY id"
CAMPAIGN="INSERT INTO campaigns (issue_slug, issue_number, issue_hash, subject, html, text, state, created_at)
  VALUES ('bench', 1, 'h', 's', 'h', 't', 'sending', 0)"
timed() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$t0" "$t1"; }

echo "| backend | step | with counters | without | ratio |"
echo "| --- | --- | --- | --- | --- |"

# SQLite: herald makes the schema, sqlite3 fills it.
printf '[site]\nbase_url = "https://news.example.com/"\n[database]\nurl = "sqlite://%s/with.db"\n' "$W" >"$W/sqlite.toml"
"$HERALD" -q --config "$W/sqlite.toml" status >/dev/null 2>&1 || true
sqlite3 "$W/with.db" "INSERT INTO subscribers (email, state, source, unsubscribe_token, created_at, state_changed_at)
  WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $N)
  SELECT 'reader' || i || '@example.com', 'active', 'import', 'tok' || i, 0, 0 FROM c; $CAMPAIGN;"
cp "$W/with.db" "$W/without.db"
for t in $(sqlite3 "$W/without.db" "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'deliveries'"); do
    sqlite3 "$W/without.db" "DROP TRIGGER $t"
done
batches() { # database
    python3 - "$1" "$M" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
m = int(sys.argv[2])
for sql in ("UPDATE deliveries SET state = 'sending', claimed_by = 'w' WHERE id >= ? AND id < ?",
            "UPDATE deliveries SET state = 'sent', last_code = 250, sent_at = 1 WHERE id >= ? AND id < ?"):
    for start in range(1, m + 1, 500):
        db.execute(sql, (start, start + 500))
        db.commit()
PY
}
declare -A T
for v in with without; do
    T[snap_$v]=$(timed sqlite3 "$W/$v.db" "PRAGMA synchronous = NORMAL; $SNAPSHOT")
    T[send_$v]=$(timed batches "$W/$v.db")
done
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }
echo "| sqlite | snapshot of $N | ${T[snap_with]} s | ${T[snap_without]} s | $(ratio ${T[snap_with]} ${T[snap_without]}) |"
echo "| sqlite | claim + record $M in batches of 500 | ${T[send_with]} s | ${T[send_without]} s | $(ratio ${T[send_with]} ${T[send_without]}) |"

# PostgreSQL: the statement-level triggers.
for v in with without; do
    db="herald_counters_$$_$v"
    psql -q "$PGURL/postgres" -c "CREATE DATABASE $db" >/dev/null
    printf '[site]\nbase_url = "https://news.example.com/"\n[database]\nurl = "%s/%s"\n' "$PGURL" "$db" >"$W/pg.toml"
    "$HERALD" -q --config "$W/pg.toml" status >/dev/null 2>&1 || true
    psql -q "$PGURL/$db" -c "INSERT INTO subscribers (email, state, source, unsubscribe_token, created_at, state_changed_at)
      SELECT 'reader' || i || '@example.com', 'active', 'import', 'tok' || i, 0, 0 FROM generate_series(1, $N) AS i" \
        -c "$CAMPAIGN" -c "VACUUM ANALYZE" >/dev/null
done
for t in $(psql -qtA "$PGURL/herald_counters_$$_without" -c "SELECT tgname FROM pg_trigger WHERE tgrelid = 'deliveries'::regclass AND NOT tgisinternal"); do
    psql -q "$PGURL/herald_counters_$$_without" -c "DROP TRIGGER $t ON deliveries"
done
pg_batches() { # database
    python3 - "$1" "$M" <<'PY' | psql -q "$1" >/dev/null
import sys
m = int(sys.argv[2])
for sql in ("UPDATE deliveries SET state = 'sending', claimed_by = 'w' WHERE id >= {} AND id < {};",
            "UPDATE deliveries SET state = 'sent', last_code = 250, sent_at = 1 WHERE id >= {} AND id < {};"):
    for start in range(1, m + 1, 500):
        print(sql.format(start, start + 500))
PY
}
for v in with without; do
    T[snap_$v]=$(timed psql -q "$PGURL/herald_counters_$$_$v" -c "$SNAPSHOT")
    T[send_$v]=$(timed pg_batches "$PGURL/herald_counters_$$_$v")
done
echo "| postgres | snapshot of $N | ${T[snap_with]} s | ${T[snap_without]} s | $(ratio ${T[snap_with]} ${T[snap_without]}) |"
echo "| postgres | claim + record $M in batches of 500 | ${T[send_with]} s | ${T[send_without]} s | $(ratio ${T[send_with]} ${T[send_without]}) |"
