#!/usr/bin/env bash
# The systemd units in contrib/systemd/ are accepted by systemd as shipped:
#
# 1. `systemd-analyze verify` passes with no warning at all. It checks every
#    key, and that ExecStart's binary exists and that each Documentation=
#    man page opens. So the freshly built herald is installed to a temporary
#    bin folder (the one rewrite: /usr/local/bin/herald becomes that path),
#    and its own pages, made by `herald man`, are put on MANPATH.
# 2. The command line of each ExecStart parses: the same arguments with
#    `--help` exit 0 (a renamed subcommand or flag fails here).
# 3. The hardening stays: `systemd-analyze security --offline` rates each
#    unit's exposure at most 2.0 ("OK"), and the keys the README promises
#    (ProtectSystem=strict, NoNewPrivileges, PrivateTmp, ReadWritePaths,
#    EnvironmentFile, User) are there.
# 4. The serve unit waits longer than the server's default shutdown grace.
#
# Installs systemd (for systemd-analyze) and man-db from Debian when
# missing. Nothing is started: this checks the files, not a running service.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
UNITS=(herald-serve.service herald-worker.service)

fail() { echo "FAIL: $*" >&2; exit 1; }

need=()
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v man >/dev/null 2>&1 || need+=(man-db)
if ((${#need[@]})); then
    echo "installing ${need[*]} from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

(cd "$REPO" && cargo build --quiet --locked --bin herald) || fail "cargo build"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/units"
install -m 0755 "$REPO/target/debug/herald" "$work/bin/herald"
"$work/bin/herald" man "$work/man/man1" >/dev/null || fail "herald man"

for unit in "${UNITS[@]}"; do
    source_unit="$REPO/contrib/systemd/$unit"
    grep -q '^ExecStart=/usr/local/bin/herald ' "$source_unit" \
        || fail "$unit: ExecStart does not start with /usr/local/bin/herald"
    sed "s|^ExecStart=/usr/local/bin/herald |ExecStart=$work/bin/herald |" \
        "$source_unit" >"$work/units/$unit"

    # 2. The command line parses.
    args=$(sed -n 's|^ExecStart=/usr/local/bin/herald ||p' "$source_unit")
    # shellcheck disable=SC2086 # the unit's words, split as systemd splits them
    "$work/bin/herald" $args --help >/dev/null \
        || fail "$unit: \`herald $args --help\` failed: the unit names a command herald does not have"

    # 3. The promised keys.
    for key in '^ProtectSystem=strict$' '^NoNewPrivileges=yes$' '^PrivateTmp=yes$' \
        '^ReadWritePaths=/var/lib/herald$' '^EnvironmentFile=' '^User=herald$' \
        '^KillSignal=SIGTERM$' '^TimeoutStopSec='; do
        grep -q "$key" "$source_unit" || fail "$unit: no line matching $key"
    done
    score=$(systemd-analyze security --offline=yes "$work/units/$unit" 2>&1 \
        | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    echo "$unit: exposure $score"
    systemd-analyze security --offline=yes --threshold=20 "$work/units/$unit" >/dev/null 2>&1 \
        || fail "$unit: exposure $score is above 2.0; was a protection removed?"
done

# 1. verify, with no warnings either (an unknown key is only a warning).
out=$(cd "$work/units" && MANPATH="$work/man" systemd-analyze verify "${UNITS[@]/#/./}" 2>&1) \
    || fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warned: $out"

# 4. TimeoutStopSec covers the default grace (and the README's advice).
grace=$(sed -n 's/^shutdown_grace_secs = \([0-9]*\)$/\1/p' "$REPO/config.example.toml")
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$REPO/contrib/systemd/herald-serve.service")
[ -n "$grace" ] && [ -n "$stop" ] || fail "could not read the grace ($grace) or TimeoutStopSec ($stop)"
((stop > grace)) || fail "herald-serve TimeoutStopSec=${stop}s does not exceed shutdown_grace_secs = $grace"

echo "ok: ${UNITS[*]} verify, parse, and keep their hardening"
