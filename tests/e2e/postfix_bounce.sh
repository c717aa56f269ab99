#!/usr/bin/env bash
# The true end-to-end test of bounces: Herald sends an issue through a real
# Postfix (Debian's) on loopback with a VERP return path; Postfix accepts
# every recipient at SMTP time, fails the unknown local users *after*
# acceptance, writes the bounces itself to bounces+TAG@<test domain>, and
# hands them to `herald bounces process` through an alias pipe. Then the
# unknown users must be `bounced` with the reason in their history, the
# known ones still active, and the same bounce fed again must change
# nothing.
#
# The Postfix instance is a throwaway one: its own config_directory,
# queue_directory and data_directory under a temporary folder, listening on
# 127.0.0.1 only, stopped and removed on exit. The system's Postfix (if
# any) is never touched. Needs root (Postfix's master runs as root).
#
# Usage: tests/e2e/postfix_bounce.sh   (HERALD_BIN=path to skip the build)
# Exits non-zero, saying why, on any failure.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DOMAIN="herald-e2e.test"
KNOWN=(alice bob)
UNKNOWN=(nosuch-e2e-carol nosuch-e2e-dave)
# The user local(8) runs the alias pipe as (default_privs): it owns the
# Herald folder, and the script runs every herald command as it too, so
# that SQLite's -wal and -shm files stay writable by the pipe.
PIPE_USER=nobody

fail() {
    echo "FAIL: $*" >&2
    if [ -n "${T:-}" ] && [ -f "$T/maillog" ]; then
        echo "--- Postfix log (last 40 lines) ---" >&2
        tail -n 40 "$T/maillog" >&2 || true
    fi
    exit 1
}
step() { echo "== $*"; }

[ "$(id -u)" -eq 0 ] || fail "run as root: Postfix's master process needs it"

install_postfix() {
    if command -v postfix >/dev/null 2>&1 && [ -x /usr/sbin/postalias ]; then
        return
    fi
    step "installing Postfix from Debian"
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    # Keep the package from starting a system instance: this test runs its
    # own, and the machine's port 25 is none of its business.
    local policy=/usr/sbin/policy-rc.d created=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        created=1
    fi
    local status=0
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends postfix >/dev/null; } || status=$?
    [ -n "$created" ] && rm -f "$policy"
    [ "$status" -eq 0 ] || fail "apt-get install postfix failed ($status)"
}

install_postfix
command -v sqlite3 >/dev/null 2>&1 || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 >/dev/null || fail "installing sqlite3"
}

if [ -n "${HERALD_BIN:-}" ]; then
    HERALD="$HERALD_BIN"
else
    step "building herald"
    (cd "$REPO" && cargo build --quiet --bin herald) || fail "cargo build"
    HERALD="$(cd "$REPO" && cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/herald"
fi
[ -x "$HERALD" ] || fail "no herald binary at $HERALD"

T="$(mktemp -d /tmp/herald-postfix-e2e.XXXXXX)"
chmod 755 "$T"
PF="$T/postfix"
cleanup() {
    if [ -f "$T/queue/pid/master.pid" ]; then
        postfix -c "$PF" stop >/dev/null 2>&1 || true
        sleep 1
        # A master that did not stop by itself within a few seconds.
        local pid
        pid="$(tr -dc 0-9 <"$T/queue/pid/master.pid" 2>/dev/null || true)"
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    fi
    if [ -z "${KEEP_E2E:-}" ]; then
        rm -rf "$T"
    else
        echo "kept $T"
    fi
}
trap cleanup EXIT

# The pipe runs as $PIPE_USER, which may not reach the build folder (a
# clone under /root): it gets its own copy of the binary.
mkdir -p "$T/bin"
cp "$HERALD" "$T/bin/herald"
chmod 755 "$T/bin" "$T/bin/herald"
HERALD="$T/bin/herald"

free_port() {
    local port
    for _ in $(seq 50); do
        port=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    fail "no free port found"
}
SMTP_PORT="$(free_port)"

# --- Herald's side: a list, an issue, a config ---------------------------
H="$T/herald"
mkdir -p "$H/issues"
cp "$REPO"/examples/issues/*.md "$H/issues/"
ISSUE="$(ls "$H"/issues/*.md | head -n 1)"
cat >"$H/herald.toml" <<EOF
[site]
title = "Herald end-to-end"
base_url = "https://news.$DOMAIN/"

[mail]
from = "Herald E2E <news@$DOMAIN>"
list_id = "e2e.$DOMAIN"

[smtp]
url = "smtp://127.0.0.1:$SMTP_PORT?tls=none"

[send]
rate = 0

[bounces]
return_path = "bounces@$DOMAIN"
EOF
chown -R "$PIPE_USER" "$H"

herald_as_pipe_user() {
    runuser -u "$PIPE_USER" -- "$HERALD" --config "$H/herald.toml" "$@"
}

for user in "${KNOWN[@]}" "${UNKNOWN[@]}"; do
    herald_as_pipe_user subscribers add "$user@$DOMAIN" --confirmed >/dev/null ||
        fail "adding $user@$DOMAIN"
done

# --- Postfix's side --------------------------------------------------------
step "starting Postfix on 127.0.0.1:$SMTP_PORT (config in $PF)"
mkdir -p "$PF" "$T/queue" "$T/data" "$T/mail"
chown postfix "$T/data"
# Known users are aliases to files; the unknown ones match no alias and no
# system user, so local(8) bounces them. mboxes are written as
# default_privs, hence the open folder.
chmod 1777 "$T/mail"
{
    for user in "${KNOWN[@]}"; do
        echo "$user: $T/mail/$user"
    done
    echo "postmaster: $T/mail/postmaster"
    echo "MAILER-DAEMON: $T/mail/postmaster"
    # The bounce address: every bounce goes to Herald, and a copy to a file
    # so the test can feed the same bounce again.
    echo "bounces: \"|$HERALD --config $H/herald.toml bounces process\", $T/mail/bounces-copy"
} >"$PF/aliases"

cat >"$PF/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $T/queue
data_directory = $T/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.$DOMAIN
mydomain = $DOMAIN
myorigin = \$mydomain
mydestination = $DOMAIN, mx.$DOMAIN
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost =
# Accept every local recipient at SMTP time: the failure must come after
# acceptance, as it does behind a relay.
local_recipient_maps =
recipient_delimiter = +
alias_maps = hash:$PF/aliases
alias_database = hash:$PF/aliases
allow_mail_to_commands = alias
allow_mail_to_files = alias
default_privs = $PIPE_USER
mail_spool_directory = $T/mail
mailbox_size_limit = 0
message_size_limit = 10240000
biff = no
smtputf8_enable = no
notify_classes =
maillog_file = $T/maillog
maillog_file_prefixes = $T
EOF

# The services Postfix needs, none chrooted (a chroot would need copies of
# system files under the temporary queue), smtpd on our port only.
cat >"$PF/master.cf" <<EOF
127.0.0.1:$SMTP_PORT inet n - n - - smtpd
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
proxywrite unix -       -       n       -       1       proxymap
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

postalias -c "$PF" "$PF/aliases" || fail "postalias"
postfix -c "$PF" check >"$T/postfix-check.log" 2>&1 || { cat "$T/postfix-check.log" >&2; fail "postfix check"; }
postfix -c "$PF" start >"$T/postfix-start.log" 2>&1 || { cat "$T/postfix-start.log" >&2; fail "postfix start"; }
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT") 2>/dev/null && break
    sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT") 2>/dev/null || fail "Postfix does not listen on $SMTP_PORT"

# --- Send, and wait for the bounces ----------------------------------------
step "herald send $(basename "$ISSUE") to ${#KNOWN[@]} known and ${#UNKNOWN[@]} unknown local users"
herald_as_pipe_user send "$ISSUE" >"$T/send.log" 2>&1 || { cat "$T/send.log" >&2; fail "herald send"; }

# A subscriber's state, read from `herald subscribers list --json` (one
# object per subscriber, "email" before "state").
state_of() {
    herald_as_pipe_user subscribers list --json | awk -v email="$1" '
        /"email" *:/ { line = $0; gsub(/.*"email" *: *"|".*/, "", line); mine = (line == email) }
        mine && !found && /"state" *:/ { gsub(/.*"state" *: *"|".*/, ""); print; found = 1 }'
}
copies_saved() {
    grep -c "status=sent (delivered to file: $T/mail/bounces-copy" "$T/maillog" 2>/dev/null || true
}
pipe_deliveries() {
    grep -c "to=<bounces+.*@$DOMAIN>.*status=sent (delivered to command" "$T/maillog" 2>/dev/null || true
}

step "waiting for Postfix to bounce the unknown users back through the alias pipe"
deadline=$((SECONDS + 120))
while :; do
    done_count=0
    for user in "${UNKNOWN[@]}"; do
        [ "$(state_of "$user@$DOMAIN")" = bounced ] && done_count=$((done_count + 1))
    done
    [ "$done_count" -eq "${#UNKNOWN[@]}" ] && [ "$(pipe_deliveries)" -ge "${#UNKNOWN[@]}" ] &&
        [ "$(copies_saved)" -ge "${#UNKNOWN[@]}" ] && break
    [ "$SECONDS" -lt "$deadline" ] || fail "after 120s, $done_count of ${#UNKNOWN[@]} unknown users are bounced"
    sleep 0.5
done

# --- What must be true ------------------------------------------------------
step "checking the outcome"
for user in "${UNKNOWN[@]}"; do
    grep -q "to=<$user@$DOMAIN>.*status=bounced (unknown user" "$T/maillog" ||
        fail "Postfix did not bounce $user after acceptance"
done
grep -Eq "to=<bounces\+[^@]+@$DOMAIN>" "$T/maillog" ||
    fail "no bounce reached a VERP address bounces+TAG@$DOMAIN"
for user in "${KNOWN[@]}"; do
    [ "$(state_of "$user@$DOMAIN")" = active ] || fail "$user@$DOMAIN is $(state_of "$user@$DOMAIN"), not active"
    grep -q "^Subject:" "$T/mail/$user" 2>/dev/null || fail "$user's mailbox got no issue"
done
DB="$H/herald.db"
history_of() {
    sqlite3 "$DB" "SELECT e.state || ': ' || e.reason FROM subscriber_events e
        JOIN subscribers s ON s.id = e.subscriber_id
        WHERE s.email = '$1' ORDER BY e.at, e.id;"
}
for user in "${UNKNOWN[@]}"; do
    history="$(history_of "$user@$DOMAIN")"
    echo "$user@$DOMAIN history:"
    echo "$history" | sed 's/^/    /'
    echo "$history" | grep -q '^bounced: .*5\.1\.1' ||
        fail "$user@$DOMAIN's history has no bounced event with the reason (5.1.1)"
done

# --- The same bounce again changes nothing ---------------------------------
# What the list and its history say, and what each delivery's reports
# concluded. Not `reported_at`: a later report of the same gravity may
# stamp its own time there, which decides nothing.
snapshot() {
    herald_as_pipe_user subscribers list --json
    sqlite3 "$DB" "SELECT subscriber_id, state, reason, at FROM subscriber_events ORDER BY id;"
    sqlite3 "$DB" "SELECT id, subscriber_id, state, report_kind, report_class, report_status,
        report_diagnostic FROM deliveries ORDER BY id;"
}
reports() { sqlite3 "$DB" "SELECT count(*) FROM bounce_reports;"; }
before="$(snapshot)"
reports_before="$(reports)"

# The copy the alias wrote is an mbox: split it back into messages, as
# the pipe was given them (local(8) gives a command a From_ line too, but
# neither the >From quoting nor the blank line that end an mbox entry).
# The From_ line's time may differ from the pipe's by a second, as it does
# when an MTA retries a pipe: the same bounce, not the same bytes.
mkdir -p "$T/again"
awk -v dir="$T/again" '
    function flush() { if (file != "") { for (i = 1; i < held; i++) print lines[i] > file; if (held && lines[held] != "") print lines[held] > file; close(file) } held = 0 }
    /^From / { flush(); n++; file = sprintf("%s/bounce-%d.eml", dir, n) }
    n { line = $0; sub(/^>From /, "From ", line); lines[++held] = line }
    END { flush() }
' "$T/mail/bounces-copy"
count="$(ls "$T/again" | wc -l)"
[ "$count" -ge "${#UNKNOWN[@]}" ] || fail "the alias's copy holds $count bounces, expected ${#UNKNOWN[@]}"

feed_copies() {
    for file in "$T"/again/*.eml; do
        recipient="$(sed -n 's/^X-Original-To: //p;/^$/q' "$file" | head -n 1)"
        runuser -u "$PIPE_USER" -- env ORIGINAL_RECIPIENT="$recipient" \
            "$HERALD" --config "$H/herald.toml" bounces process <"$file" ||
            fail "bounces process exited $? on the copy $(basename "$file")"
    done
}
step "feeding the same $count bounces to herald bounces process again"
feed_copies
[ "$(snapshot)" = "$before" ] || fail "the same bounces again changed the list, its history or deliveries"
reports_now="$(reports)"
step "and the very same bytes once more: recorded before, so not even a new report"
feed_copies
[ "$(reports)" = "$reports_now" ] ||
    fail "the same bytes again were stored as a new report ($reports_now reports before, $(reports) after)"
[ "$(snapshot)" = "$before" ] || fail "the same bytes again changed the list, its history or deliveries"

step "and once more through Postfix, as a mail system that sent it twice would"
smtp_send() { # $1 = envelope recipient, $2 = message file
    exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT"
    local line
    read -r line <&3
    for command in "HELO mx.$DOMAIN" "MAIL FROM:<>" "RCPT TO:<$1>" "DATA"; do
        printf '%s\r\n' "$command" >&3
        read -r line <&3
        case "$line" in 2* | 3*) ;; *) exec 3>&-; fail "Postfix answered \"$line\" to $command" ;; esac
    done
    # The headers Postfix's first delivery added go (a second Delivered-To
    # for the same address would be taken for a loop); dots are stuffed.
    awk 'BEGIN { h = 1 } h && /^$/ { h = 0 }
         h && /^(Delivered-To|X-Original-To|Return-Path):/ { next }
         { sub(/\r$/, ""); if (substr($0, 1, 1) == ".") $0 = "." $0; printf "%s\r\n", $0 }' "$2" >&3
    printf '.\r\n' >&3
    read -r line <&3
    case "$line" in 2*) ;; *) exec 3>&-; fail "Postfix refused the bounce: $line" ;; esac
    printf 'QUIT\r\n' >&3
    exec 3>&-
}
delivered_before="$(pipe_deliveries)"
for file in "$T"/again/*.eml; do
    recipient="$(sed -n 's/^X-Original-To: //p;/^$/q' "$file" | head -n 1)"
    smtp_send "$recipient" "$file"
done
deadline=$((SECONDS + 60))
until [ "$(pipe_deliveries)" -ge $((delivered_before + count)) ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "the re-sent bounces did not reach the pipe within 60s"
    sleep 0.5
done

after="$(snapshot)"
echo "the re-sent bounces were kept as new reports ($reports_before before, $(reports) now); they changed nothing else"
if [ "$before" != "$after" ]; then
    diff <(echo "$before") <(echo "$after") >&2 || true
    fail "feeding the same bounce again changed subscribers, their history or deliveries"
fi
herald_as_pipe_user bounces list

echo "PASS: Postfix bounced ${#UNKNOWN[@]} unknown users after acceptance; Herald marked them bounced with the reason, kept ${#KNOWN[@]} active, and ignored the same bounces fed twice more"
