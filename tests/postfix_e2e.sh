#!/usr/bin/env bash
# End to end: a real Postfix on loopback writes the bounce itself, and it
# reaches `herald bounces process` through an alias pipe.
#
#   bash tests/postfix_e2e.sh        # from the repository root, as root
#
# Postfix (Debian's, installed when missing) runs as a private instance
# (its own config, queue and port; the system's Postfix, if any, is not
# touched) with recipient_delimiter = + and no local_recipient_maps, so it
# accepts mail for unknown local users and fails it *after* acceptance, at
# local delivery: the usual relay situation. `herald send` hands it an
# issue for two subscribers, one of whom does not exist; Postfix bounces
# that copy to the VERP return path, its alias pipes the bounce to Herald,
# and the subscriber ends up bounced with the reason in their history.
# The same bounce delivered again changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

[ "$(id -u)" -eq 0 ] || { echo "run as root (Postfix's master must start as root)" >&2; exit 1; }
if ! command -v postfix >/dev/null || ! command -v sqlite3 >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix sqlite3
fi

cargo build -q
HERALD=${HERALD:-$ROOT/target/debug/herald}

WORK=$(mktemp -d /tmp/herald-postfix.XXXXXX)
PF=$WORK/postfix
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
    postfix -c "$PF" stop >/dev/null 2>&1 || true
    if [ "${KEEP:-}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    echo "--- postfix log" >&2; cat "$WORK/postfix.log" >&2 || true
    exit 1
}

# Herald: the database belongs to the user the alias pipe runs as
# (default_privs), which must be able to write it and its -wal file.
mkdir -p "$WORK/herald"
cat > "$WORK/herald/herald.toml" <<EOF
[mail]
from = "Herald Test <newsletter@herald.test>"
[smtp]
url = "smtp://127.0.0.1:$PORT?tls=none"
timeout_secs = 10
[bounces]
return_path = "bounces@herald.test"
[paths]
database = "$WORK/herald/herald.db"
EOF
CONFIG=$WORK/herald/herald.toml
"$HERALD" --config "$CONFIG" -q subscribers add reader@herald.test --confirmed >/dev/null
"$HERALD" --config "$CONFIG" -q subscribers add ghost@herald.test --confirmed >/dev/null
chown -R nobody:nogroup "$WORK/herald"
chmod 755 "$WORK"

# Postfix: a private instance.
mkdir -p "$PF" "$WORK/queue" "$WORK/data"
chown postfix "$WORK/data"
cat > "$PF/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $WORK/queue
data_directory = $WORK/data
myhostname = mx.herald.test
mydomain = herald.test
myorigin = herald.test
mydestination = herald.test, localhost
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
recipient_delimiter = +
# Accept any local part at SMTP time; unknown users fail at delivery.
local_recipient_maps =
alias_maps = hash:$PF/aliases
alias_database = hash:$PF/aliases
default_privs = nobody
maillog_file = $WORK/postfix.log
maillog_file_prefixes = $WORK
smtpd_tls_security_level = none
smtp_tls_security_level = none
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 10s
EOF
cat > "$PF/master.cf" <<EOF
127.0.0.1:$PORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
cat > "$PF/aliases" <<EOF
bounces: "|$HERALD --config $CONFIG bounces process"
reader: $WORK/herald/reader.mbox
postmaster: $WORK/herald/postmaster.mbox
MAILER-DAEMON: postmaster
EOF
postalias -c "$PF" "$PF/aliases"
postfix -c "$PF" check 2>/dev/null || postfix -c "$PF" set-permissions >/dev/null 2>&1 || true
postfix -c "$PF" start || fail "postfix did not start"
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.2
done

"$HERALD" --config "$CONFIG" -q send examples/issues/vol-001.md >/dev/null || fail "herald send"
# Files the send (as root) left are the pipe's too; a bounce that came
# first was deferred (exit 75) and is retried within seconds.
chown -R nobody:nogroup "$WORK/herald"

state_of() {
    sqlite3 "$WORK/herald/herald.db" "SELECT state FROM subscribers WHERE email = '$1'"
}
for _ in $(seq 120); do
    [ "$(state_of ghost@herald.test)" = bounced ] && break
    sleep 0.5
done
[ "$(state_of ghost@herald.test)" = bounced ] || fail "ghost is $(state_of ghost@herald.test), not bounced"
[ "$(state_of reader@herald.test)" = active ] || fail "reader is not active"
grep -q "^Subject:" "$WORK/herald/reader.mbox" || fail "the reader's copy was not delivered"
REASON=$(sqlite3 "$WORK/herald/herald.db" \
    "SELECT e.reason FROM subscriber_events e JOIN subscribers s ON s.id = e.subscriber_id
     WHERE s.email = 'ghost@herald.test' AND e.state = 'bounced'")
echo "ghost's history: $REASON"
case $REASON in *"hard bounce"*5.1.1*) ;; *) fail "no hard 5.1.1 bounce in the history" ;; esac
MATCHED_BY=$(sqlite3 "$WORK/herald/herald.db" "SELECT matched_by FROM bounce_recipients")
[ "$MATCHED_BY" = verp ] || fail "matched by '$MATCHED_BY', not by the VERP tag"
ENVELOPE=$(grep -o 'to=<bounces+[0-9a-f-]*@herald.test>' "$WORK/postfix.log" | head -1)
echo "Postfix delivered the bounce $ENVELOPE"

# The same bounce as a second message, through the same alias: recorded,
# but nothing about the subscriber changes.
TAGGED=${ENVELOPE#to=<}; TAGGED=${TAGGED%>}
sqlite3 "$WORK/herald/herald.db" "SELECT writefile('$WORK/bounce.eml', raw) FROM bounce_reports" >/dev/null
EVENTS_BEFORE=$(sqlite3 "$WORK/herald/herald.db" "SELECT COUNT(*) FROM subscriber_events")
# Without Postfix's Delivered-To, which would make it a forwarding loop.
sed '1,/^$/{/^Delivered-To:/d}' "$WORK/bounce.eml" | sendmail -C "$PF" -f '' "$TAGGED"
for _ in $(seq 60); do
    [ "$(sqlite3 "$WORK/herald/herald.db" "SELECT COUNT(*) FROM bounce_reports")" = 2 ] && break
    sleep 0.5
done
[ "$(sqlite3 "$WORK/herald/herald.db" "SELECT COUNT(*) FROM bounce_reports")" = 2 ] || fail "the second message was not recorded"
EVENTS_AFTER=$(sqlite3 "$WORK/herald/herald.db" "SELECT COUNT(*) FROM subscriber_events")
[ "$EVENTS_BEFORE" = "$EVENTS_AFTER" ] || fail "the second message changed the history"
[ "$(state_of ghost@herald.test)" = bounced ] || fail "ghost changed state"
"$HERALD" --config "$CONFIG" bounces list
echo "PASS: Postfix's own bounce, through the alias pipe, bounced the subscriber once"
