#!/usr/bin/env bash
# Installs Dovecot's IMAP server from Debian when it is missing, for the
# IMAP tests (HERALD_TEST_IMAP=dovecot). The tests start their own
# throwaway instance on loopback; the system's service is left stopped.
set -euo pipefail

if command -v dovecot >/dev/null 2>&1 && [ -e /usr/lib/dovecot/imap ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "dovecot-imapd is missing and installing it needs root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the package's own service from starting: the tests run
# their own instance and port 143/993 may be in use.
policy=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created_policy=1
fi
status=0
apt-get install -y -qq --no-install-recommends dovecot-imapd >/dev/null || status=$?
if [ -n "$created_policy" ]; then
    rm -f "$policy"
fi
if [ "$status" -ne 0 ]; then
    echo "installing dovecot-imapd failed (apt-get exit $status)" >&2
    exit "$status"
fi
command -v dovecot >/dev/null
