#!/usr/bin/env bash
# Feeds and archive benchmark.
#
#   bash bench/feeds.sh
#
# 1. Builds herald in release and generates $ISSUES synthetic issues.
# 2. Times `herald build` for them: a cold build into an empty folder (target
#    under 2 s) and a rebuild with nothing new (every file compared, none
#    written).
# 3. Serves the result with `herald serve` and, in the same run, the same
#    feed.xml with nginx, both on loopback, and measures each with the same
#    bounded wrk load (target: herald at least half of nginx's rate).
#
# Everything stays on 127.0.0.1; every server started here is stopped on
# exit. Environment: ISSUES (500), DURATION (10s), CONNECTIONS (32),
# THREADS (2), HERALD_PORT (18480), NGINX_PORT (18481).
set -euo pipefail

cd "$(dirname "$0")/.."
ISSUES=${ISSUES:-500}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
HERALD_PORT=${HERALD_PORT:-18480}
NGINX_PORT=${NGINX_PORT:-18481}

if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
    apt-get install -y wrk nginx >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y wrk nginx >/dev/null; }
fi
NGINX=$(command -v nginx)

cargo build --release --quiet --bin herald --example gen_issues
HERALD=$PWD/target/release/herald

work=$(mktemp -d)
herald_pid=""
nginx_pid=""
cleanup() {
    # Only the two servers this script started, by their ids.
    [[ -n $herald_pid ]] && kill "$herald_pid" 2>/dev/null && wait "$herald_pid" 2>/dev/null
    [[ -n $nginx_pid ]] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

target/release/examples/gen_issues "$ISSUES" "$work/issues" >/dev/null
cat >"$work/herald.toml" <<EOF
[site]
base_url = "http://127.0.0.1:$HERALD_PORT/"
[server]
listen = "127.0.0.1:$HERALD_PORT"
EOF

seconds() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l | xargs printf '%.3f'; }

start=$(seconds)
"$HERALD" -q --config "$work/herald.toml" build >/dev/null
cold=$(elapsed "$start" "$(seconds)")
start=$(seconds)
"$HERALD" -q --config "$work/herald.toml" build >/dev/null
warm=$(elapsed "$start" "$(seconds)")
files=$(find "$work/public" -type f | wc -l)
feed_bytes=$(stat -c %s "$work/public/feed.xml")

"$HERALD" -q --config "$work/herald.toml" serve >"$work/herald.log" 2>&1 &
herald_pid=$!

# nginx in the foreground of its own process, a prefix of its own, no
# access log, the same file. Workers run as root only because the temp
# folder is private to the user running this script.
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
$( [[ $(id -u) == 0 ]] && echo "user root;" )
worker_processes auto;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    types { application/rss+xml xml; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $work/public;
    }
}
EOF
"$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" &
nginx_pid=$!

for url in "http://127.0.0.1:$HERALD_PORT/healthz" "http://127.0.0.1:$NGINX_PORT/feed.xml"; do
    for _ in $(seq 100); do
        curl -fs -o /dev/null "$url" && break
        sleep 0.1
    done
    curl -fs -o /dev/null "$url" || { echo "no answer from $url" >&2; exit 1; }
done
cmp <(curl -fs "http://127.0.0.1:$HERALD_PORT/feed.xml") <(curl -fs "http://127.0.0.1:$NGINX_PORT/feed.xml")

rate() {
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "$@" |
        awk '/Requests\/sec/ { print $2 }'
}
# A short warm-up each, then the measured runs.
wrk -t1 -c4 -d1s "http://127.0.0.1:$HERALD_PORT/feed.xml" >/dev/null
wrk -t1 -c4 -d1s "http://127.0.0.1:$NGINX_PORT/feed.xml" >/dev/null
herald_rate=$(rate "http://127.0.0.1:$HERALD_PORT/feed.xml")
nginx_rate=$(rate "http://127.0.0.1:$NGINX_PORT/feed.xml")
etag=$(curl -fsI "http://127.0.0.1:$HERALD_PORT/feed.xml" | awk 'tolower($1) == "etag:" { print $2 }' | tr -d '\r')
herald_304=$(rate -H "If-None-Match: $etag" "http://127.0.0.1:$HERALD_PORT/feed.xml")
ratio=$(echo "$herald_rate / $nginx_rate" | bc -l | xargs printf '%.2f')

nginx_version=$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')
printf '%-28s%s\n' \
    "issues:" "$ISSUES ($files files, feed.xml $feed_bytes bytes)" \
    "herald build, cold:" "$cold s" \
    "herald build, nothing new:" "$warm s"
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, GET /feed.xml, loopback:"
printf '  %-26s%s\n' \
    "herald serve:" "$herald_rate req/s" \
    "nginx $nginx_version:" "$nginx_rate req/s" \
    "herald / nginx:" "$ratio" \
    "herald serve, 304s:" "$herald_304 req/s (If-None-Match)"
