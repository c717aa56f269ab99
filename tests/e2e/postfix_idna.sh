#!/usr/bin/env bash
# Internationalised addresses through a real Postfix (Debian's), twice: once
# with `smtputf8_enable = no`, once with `= yes`.
#
# The list's domain, the sender's included, is 例子.中国, written in Unicode
# in herald.toml and in `subscribers add`. Whatever the relay offers:
#   - `user@例子.中国` (an ASCII local part) is delivered, to
#     user@xn--fsqu00a.xn--fiqs8s (the A-label), in the envelope and in
#     every address header, and the headers hold no 8-bit byte;
#   - the sender is news@xn--fsqu00a.xn--fiqs8s in MAIL FROM and From.
# A non-ASCII local part (`张三@例子.中国`) needs SMTPUTF8:
#   - without it, Herald refuses that one message itself, and says so: the
#     send counts it failed, `herald status` names SMTPUTF8, Postfix never
#     sees the address, and the subscriber is not marked bounced;
#   - with it, the message is delivered to 张三@xn--fsqu00a.xn--fiqs8s.
#
# Each Postfix is a throwaway one, as in postfix_bounce.sh: its own
# config, queue and data folders under a temporary folder, listening on
# 127.0.0.1 only, delivering into maildirs there, stopped and removed on
# exit. Needs root (Postfix's master runs as root).
#
# Usage: tests/e2e/postfix_idna.sh   (HERALD_BIN=path to skip the build)
# Exits non-zero, saying why, on any failure.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
UNICODE_DOMAIN="例子.中国"
ALABEL_DOMAIN="xn--fsqu00a.xn--fiqs8s"
ASCII_USER="user"
UTF8_USER="张三"
# The virtual delivery agent writes the maildirs as this user.
MAIL_USER=nobody

T=""
fail() {
    echo "FAIL: $*" >&2
    if [ -n "${CASE_DIR:-}" ] && [ -f "$CASE_DIR/maillog" ]; then
        echo "--- Postfix log (last 40 lines) ---" >&2
        tail -n 40 "$CASE_DIR/maillog" >&2 || true
    fi
    exit 1
}
step() { echo "== $*"; }

[ "$(id -u)" -eq 0 ] || fail "run as root: Postfix's master process needs it"

install_postfix() {
    if command -v postfix >/dev/null 2>&1 && [ -x /usr/sbin/postmap ]; then
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

if [ -n "${HERALD_BIN:-}" ]; then
    HERALD="$HERALD_BIN"
else
    step "building herald"
    (cd "$REPO" && cargo build --quiet --bin herald) || fail "cargo build"
    HERALD="$(cd "$REPO" && cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/herald"
fi
[ -x "$HERALD" ] || fail "no herald binary at $HERALD"

T="$(mktemp -d /tmp/herald-postfix-idna.XXXXXX)"
chmod 755 "$T"
RUNNING=()
cleanup() {
    local dir pid
    for dir in "${RUNNING[@]}"; do
        postfix -c "$dir/postfix" stop >/dev/null 2>&1 || true
        sleep 1
        # A master that did not stop by itself.
        pid="$(tr -dc 0-9 <"$dir/queue/pid/master.pid" 2>/dev/null || true)"
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    if [ -z "${KEEP_E2E:-}" ]; then
        rm -rf "$T"
    else
        echo "kept $T"
    fi
}
trap cleanup EXIT

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

# start_postfix DIR PORT SMTPUTF8(yes|no)
start_postfix() {
    local dir="$1" port="$2" utf8="$3" pf="$1/postfix"
    mkdir -p "$pf" "$dir/queue" "$dir/data" "$dir/vmail"
    chown postfix "$dir/data"
    chown "$MAIL_USER" "$dir/vmail"
    # Maildirs (the trailing slash) per recipient, keyed by the A-label
    # address Herald must use. The UTF-8 key only where Postfix reads
    # UTF-8 in its tables.
    {
        echo "$ASCII_USER@$ALABEL_DOMAIN $ASCII_USER/"
        [ "$utf8" = yes ] && echo "$UTF8_USER@$ALABEL_DOMAIN zhangsan/"
    } >"$pf/vmailbox"
    cat >"$pf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.$ALABEL_DOMAIN
mydomain = $ALABEL_DOMAIN
myorigin = \$mydomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost =
virtual_mailbox_domains = $ALABEL_DOMAIN
virtual_mailbox_maps = hash:$pf/vmailbox
virtual_mailbox_base = $dir/vmail
virtual_uid_maps = static:$(id -u "$MAIL_USER")
virtual_gid_maps = static:$(id -g "$MAIL_USER")
alias_maps =
alias_database =
message_size_limit = 10240000
biff = no
smtputf8_enable = $utf8
notify_classes =
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
EOF
    # The services Postfix needs, none chrooted, smtpd on our port only.
    cat >"$pf/master.cf" <<EOF
127.0.0.1:$port inet n - n - - smtpd
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
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
    postmap -c "$pf" "$pf/vmailbox" || fail "postmap"
    postfix -c "$pf" check >"$dir/postfix-check.log" 2>&1 || { cat "$dir/postfix-check.log" >&2; fail "postfix check"; }
    postfix -c "$pf" start >"$dir/postfix-start.log" 2>&1 || { cat "$dir/postfix-start.log" >&2; fail "postfix start"; }
    RUNNING+=("$dir")
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return
        sleep 0.1
    done
    fail "Postfix does not listen on $port"
}

# What Postfix offers after EHLO, as Herald's relay sees it.
ehlo_reply() { # $1 = port
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    local line reply=""
    read -r line <&3
    printf 'EHLO probe.%s\r\n' "$ALABEL_DOMAIN" >&3
    while read -r line <&3; do
        reply+="$line"$'\n'
        case "$line" in 250\ *) break ;; esac
    done
    printf 'QUIT\r\n' >&3
    exec 3>&-
    printf '%s' "$reply"
}

# The header block of the one message in a maildir.
headers_in() { # $1 = maildir
    local files=("$1"/new/*)
    [ -f "${files[0]}" ] || fail "nothing delivered to $1"
    [ "${#files[@]}" -eq 1 ] || fail "${#files[@]} messages in $1, expected one"
    # sed reads the file itself and stops at the blank line: stopping
    # while a writer upstream still had the body to send would kill it with
    # SIGPIPE, which pipefail turns into a failure.
    sed '/^\r\?$/q' "${files[0]}" | tr -d '\r'
}

wait_for_delivery() { # $1 = case dir, $2 = recipient
    local deadline=$((SECONDS + 60))
    until grep -qF "to=<$2>" "$1/maillog" 2>/dev/null && grep -F "to=<$2>" "$1/maillog" | grep -q "status=sent"; do
        if grep -F "to=<$2>" "$1/maillog" 2>/dev/null | grep -Eq "status=(bounced|deferred)"; then
            fail "Postfix did not deliver to $2: $(grep -F "to=<$2>" "$1/maillog" | tail -n 1)"
        fi
        [ "$SECONDS" -lt "$deadline" ] || fail "Postfix did not deliver to $2 within 60 s"
        sleep 0.5
    done
}

# The address headers of a delivered copy: A-labels, 7-bit where the local
# part is ASCII, and the sender's domain in A-label form too.
check_headers() { # $1 = maildir, $2 = recipient as it must appear
    local headers
    headers="$(headers_in "$1")"
    echo "$headers" | grep -qx "To: $2" || fail "$1: To is not $2: $(echo "$headers" | grep '^To:')"
    echo "$headers" | grep -q "^From: .*<news@$ALABEL_DOMAIN>" ||
        fail "$1: From is not news@$ALABEL_DOMAIN: $(echo "$headers" | grep '^From:')"
    echo "$headers" | grep -q "^Return-Path: <news@$ALABEL_DOMAIN>" ||
        fail "$1: the envelope sender is not news@$ALABEL_DOMAIN: $(echo "$headers" | grep '^Return-Path:')"
    if echo "$headers" | grep -qF "$UNICODE_DOMAIN"; then
        fail "$1: a header holds the Unicode domain $UNICODE_DOMAIN"
    fi
}

# run_case yes|no
run_case() {
    local utf8="$1" port
    CASE_DIR="$T/smtputf8-$utf8"
    mkdir -p "$CASE_DIR"
    port="$(free_port)"
    step "smtputf8_enable = $utf8: starting Postfix on 127.0.0.1:$port"
    start_postfix "$CASE_DIR" "$port" "$utf8"
    local offered
    offered="$(ehlo_reply "$port")"
    if [ "$utf8" = yes ]; then
        echo "$offered" | grep -q SMTPUTF8 || fail "Postfix with smtputf8_enable = yes does not offer SMTPUTF8"
    else
        echo "$offered" | grep -q SMTPUTF8 && fail "Postfix with smtputf8_enable = no offers SMTPUTF8"
    fi

    local h="$CASE_DIR/herald"
    mkdir -p "$h/issues"
    cp "$REPO"/examples/issues/*.md "$h/issues/"
    local issue
    issue="$(ls "$h"/issues/*.md | head -n 1)"
    cat >"$h/herald.toml" <<EOF
[site]
title = "Herald IDN end-to-end"
base_url = "https://news.$ALABEL_DOMAIN/"

[mail]
from = "Herald IDN <news@$UNICODE_DOMAIN>"
list_id = "idn.$ALABEL_DOMAIN"

[smtp]
url = "smtp://127.0.0.1:$port?tls=none"

[send]
rate = 0
EOF
    herald() { "$HERALD" --config "$h/herald.toml" "$@"; }
    herald subscribers add "$ASCII_USER@$UNICODE_DOMAIN" --confirmed >/dev/null ||
        fail "adding $ASCII_USER@$UNICODE_DOMAIN"
    herald subscribers add "$UTF8_USER@$UNICODE_DOMAIN" --confirmed >/dev/null ||
        fail "adding $UTF8_USER@$UNICODE_DOMAIN"

    step "herald send $(basename "$issue")"
    herald send "$issue" >"$CASE_DIR/send.log" 2>&1 || { cat "$CASE_DIR/send.log" >&2; fail "herald send"; }
    cat "$CASE_DIR/send.log"

    wait_for_delivery "$CASE_DIR" "$ASCII_USER@$ALABEL_DOMAIN"
    grep -F "from=<news@$ALABEL_DOMAIN>" "$CASE_DIR/maillog" >/dev/null ||
        fail "Postfix saw no MAIL FROM:<news@$ALABEL_DOMAIN>"
    check_headers "$CASE_DIR/vmail/$ASCII_USER" "$ASCII_USER@$ALABEL_DOMAIN"
    if LC_ALL=C grep -q '[^ -~]' <(headers_in "$CASE_DIR/vmail/$ASCII_USER" | tr -d '\t'); then
        fail "the headers to $ASCII_USER hold 8-bit bytes: $(headers_in "$CASE_DIR/vmail/$ASCII_USER" | LC_ALL=C grep '[^ -~]')"
    fi
    echo "delivered to $ASCII_USER@$ALABEL_DOMAIN, envelope and headers in A-labels, 7-bit headers"

    local status_json
    status_json="$(herald status --json)" || fail "herald status"
    if [ "$utf8" = yes ]; then
        wait_for_delivery "$CASE_DIR" "$UTF8_USER@$ALABEL_DOMAIN"
        check_headers "$CASE_DIR/vmail/zhangsan" "$UTF8_USER@$ALABEL_DOMAIN"
        grep -q "failed 0" "$CASE_DIR/send.log" || fail "the send with SMTPUTF8 failed a message"
        echo "delivered to $UTF8_USER@$ALABEL_DOMAIN with SMTPUTF8"
    else
        grep -q "failed 1" "$CASE_DIR/send.log" ||
            fail "the send without SMTPUTF8 did not count $UTF8_USER's message as failed"
        echo "$status_json" | grep -q "SMTPUTF8" ||
            fail "herald status does not say why $UTF8_USER's message failed: $status_json"
        if grep -qF "$UTF8_USER" "$CASE_DIR/maillog"; then
            fail "Postfix without SMTPUTF8 was handed $UTF8_USER's address"
        fi
        local state
        state="$(herald subscribers list --json | tr -d '\n ' |
            grep -o "\"email\":\"$UTF8_USER@$ALABEL_DOMAIN\"[^}]*" | grep -o '"state":"[a-z]*"')"
        [ "$state" = '"state":"active"' ] ||
            fail "$UTF8_USER@$ALABEL_DOMAIN is $state after a refusal that was the relay's lack, not the address's"
        echo "refused $UTF8_USER@$ALABEL_DOMAIN without SMTPUTF8, and said so:"
        echo "$status_json" | grep "SMTPUTF8" | sed 's/^/    /'
    fi
    unset -f herald
}

run_case no
run_case yes
echo "PASS: Postfix without SMTPUTF8 got $ASCII_USER@$ALABEL_DOMAIN in A-labels and Herald refused $UTF8_USER clearly; Postfix with SMTPUTF8 got both"
