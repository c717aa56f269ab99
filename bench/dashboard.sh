#!/usr/bin/env bash
# Dashboard speed on a big list: every admin page over HTTP with 1,000,000
# subscribers and 50 campaigns, on SQLite and on PostgreSQL.
#
#   bash bench/dashboard.sh                       # release build, both backends, 20 runs
#   RUNS=5 BACKENDS=sqlite bash bench/dashboard.sh
#   HERALD=target/debug/herald bash bench/dashboard.sh   # a build you already have
#
# The fill (bench/dashboard_fill.*.sql, in SQL so the counters' triggers run
# as in real use): 1,000,000 subscribers with their events over two years,
# 49 finished weekly campaigns of 20,000 deliveries each, and the latest
# campaign sending to all 1,000,000 (600,000 sent): 1,980,000 deliveries.
# Then `herald serve` with the admin site on, a login with curl, and each
# page fetched RUNS times: median and max. Target: every page < 100 ms.
# Results are appended to bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-20}
BACKENDS=${BACKENDS:-"sqlite postgres"}
PGURL=${PGURL:-postgres://root@127.0.0.1:5432}
PASSWORD=bench-password-0123
TOKEN=bench-metrics-token-0123

command -v sqlite3 >/dev/null || {
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q sqlite3 >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q sqlite3 >/dev/null; }
}
BUILD="release build"
[ -n "${HERALD:-}" ] && BUILD="build \`$HERALD\`" || cargo build --release --quiet
HERALD=${HERALD:-$ROOT/target/release/herald}
WORK=$(mktemp -d)
PGDB=herald_dashboard_$$
SERVER=
cleanup() {
    [ -z "$SERVER" ] || kill "$SERVER" 2>/dev/null || true
    psql -q "$PGURL/postgres" -c "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

HASH=$(printf '%s\n' "$PASSWORD" | "$HERALD" admin hash-password | tail -1)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A newsletter folder: the example issues, the config, the database filled.
setup() { # backend
    local dir=$WORK/$1 url
    mkdir -p "$dir/issues"
    cp "$ROOT"/examples/issues/*.md "$dir/issues/"
    if [ "$1" = sqlite ]; then
        url="sqlite://herald.db"
    else
        psql -q "$PGURL/postgres" -c "CREATE DATABASE $PGDB" >/dev/null
        url="$PGURL/$PGDB"
    fi
    PUBLIC_PORT=$(free_port)
    ADMIN_PORT=$(free_port)
    cat >"$dir/herald.toml" <<TOML
[site]
title = "Herald Bench"
base_url = "https://news.example.com/"
[database]
url = "$url"
[smtp]
url = "file://outbox"
[server]
listen = "127.0.0.1:$PUBLIC_PORT"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
TOML
    # Creates the database and its tables.
    "$HERALD" -q --config "$dir/herald.toml" subscribers count >/dev/null
    local now start
    now=$(date +%s%3N)
    start=$(date +%s.%N)
    if [ "$1" = sqlite ]; then
        sed "s/NOW_MS/$now/g" bench/dashboard_fill.sqlite.sql | sqlite3 "$dir/herald.db"
    else
        sed "s/NOW_MS/$now/g" bench/dashboard_fill.postgres.sql | psql -q -v ON_ERROR_STOP=1 "$url" >/dev/null
    fi
    FILL_SECS=$(python3 -c "print(round($(date +%s.%N) - $start))")
    echo "$1: filled in $FILL_SECS s"
}

serve() { # backend
    local dir=$WORK/$1
    HERALD_ADMIN_PASSWORD_HASH="$HASH" HERALD_METRICS_TOKEN="$TOKEN" \
        "$HERALD" -q --config "$dir/herald.toml" serve --web-only >"$dir/serve.log" 2>&1 &
    SERVER=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$ADMIN_PORT/login" && return 0
        sleep 0.1
    done
    cat "$dir/serve.log" >&2
    return 1
}

login() { # cookie jar
    local csrf
    csrf=$(curl -s -c "$1" -b "$1" "http://127.0.0.1:$ADMIN_PORT/login" |
        sed -n 's/.*name="csrf"[^>]*value="\([^"]*\)".*/\1/p; s/.*value="\([^"]*\)"[^>]*name="csrf".*/\1/p' | head -1)
    local status
    status=$(curl -s -o /dev/null -w '%{http_code}' -c "$1" -b "$1" \
        --data-urlencode "password=$PASSWORD" --data-urlencode "csrf=$csrf" \
        "http://127.0.0.1:$ADMIN_PORT/login")
    [ "$status" = 303 ] || { echo "login failed: $status" >&2; return 1; }
}

# median and max of RUNS fetches of one page, in ms; fails on a non-200.
time_page() { # jar path [extra curl args]
    local jar=$1 path=$2
    shift 2
    local times=()
    for _ in $(seq "$RUNS"); do
        local out
        out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -b "$jar" "$@" "http://127.0.0.1:$ADMIN_PORT$path")
        [ "${out%% *}" = 200 ] || { echo "$path answered ${out%% *}" >&2; return 1; }
        times+=("${out##* }")
    done
    python3 -c "import statistics,sys; t=[1000*float(x) for x in sys.argv[1:]]; print(f'{statistics.median(t):.1f} {max(t):.1f}')" "${times[@]}"
}

PAGES=(
    "/campaigns"
    "/campaigns/50"
    "/campaigns/1"
    "/subscribers"
    "/subscribers?q=reader0123"
    "/subscribers?q=nobody"
    "/subscribers/123456"
    "/issues"
    "/metrics"
)

RESULTS=$WORK/results
for backend in $BACKENDS; do
    setup "$backend"
    serve "$backend"
    jar=$WORK/$backend/jar
    login "$jar"
    for page in "${PAGES[@]}"; do
        extra=()
        [ "$page" != /metrics ] || extra=(-H "Authorization: Bearer $TOKEN")
        # One warm-up fetch: the first touches cold pages of the database.
        time_page "$jar" "$page" "${extra[@]}" >/dev/null || true
        read -r median max < <(time_page "$jar" "$page" "${extra[@]}")
        verdict=ok
        python3 -c "import sys; sys.exit(0 if $max < 100 else 1)" || verdict="over 100 ms"
        echo "$backend $page: median $median ms, max $max ms ($verdict)"
        echo "| $backend | \`$page\` | $median | $max | $verdict |" >>"$RESULTS"
    done
    kill "$SERVER"
    wait "$SERVER" 2>/dev/null || true
    SERVER=
    echo "| $backend | (fill) | $FILL_SECS s | | |" >>"$RESULTS"
done

{
    echo
    echo "## Dashboard ($(date -u +%Y-%m-%d), $(nproc) cores, \`bash bench/dashboard.sh\`)"
    echo
    echo "1,000,000 subscribers with their events, 50 campaigns (49 of 20,000 deliveries,"
    echo "the latest sending to 1,000,000: 1,980,000 deliveries), $BUILD; each page"
    echo "fetched $RUNS times over HTTP with a session cookie after one warm-up fetch."
    echo "Target: every page under 100 ms."
    echo
    echo "| backend | page | median ms | max ms | |"
    echo "| --- | --- | --- | --- | --- |"
    cat "$RESULTS"
} >>bench/RESULTS.md
echo "appended to bench/RESULTS.md"
