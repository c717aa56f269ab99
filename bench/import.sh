#!/usr/bin/env bash
# Times `herald subscribers import --confirmed` of a 100,000-row CSV (a few
# rows bad on purpose) in a release build, then checks that the bad rows
# were reported by line, the good ones kept, and that a rerun changes
# nothing. Usage: bench/import.sh [ROWS]   (default 100000)
set -euo pipefail
cd "$(dirname "$0")/.."

rows=${1:-100000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

printf '[database]\nurl = "sqlite://herald.db"\n' > "$work/herald.toml"
# Every 20,000th row is not an address: bad rows the import must report.
awk -v n="$rows" 'BEGIN {
    print "email,name"
    for (i = 1; i <= n; i++) {
        if (i % 20000 == 0) printf "not-an-address-%d,Bad Row\n", i
        else printf "reader%06d@example.com,Reader %d\n", i, i
    }
}' > "$work/list.csv"
bad=$((rows / 20000))

cargo build --release --quiet
herald=target/release/herald

run_import() {
    # Exit 1 is expected: the file has bad rows. Anything else is a failure.
    local status=0
    "$herald" --config "$work/herald.toml" -q subscribers import "$work/list.csv" --confirmed \
        > "$work/out.txt" 2> "$work/err.txt" || status=$?
    if [ "$status" -ne 1 ]; then
        echo "import exited $status" >&2
        cat "$work/err.txt" >&2
        exit 1
    fi
}

start=$(date +%s.%N)
run_import
end=$(date +%s.%N)
seconds=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }')

reported=$(grep -c ': error: ' "$work/err.txt" || true)
imported=$("$herald" --config "$work/herald.toml" subscribers count | awk '$1 == "active" { print $2 }')
first=$(cat "$work/out.txt")
run_import
second=$(cat "$work/out.txt")
after=$("$herald" --config "$work/herald.toml" subscribers count | awk '$1 == "active" { print $2 }')

echo "rows: $rows (bad: $bad)"
echo "first run:  $first"
echo "second run: $second"
echo "bad rows reported: $reported, active after first run: $imported, after second: $after"
echo "import of $rows rows: ${seconds} s"

[ "$reported" -eq "$bad" ] || { echo "expected $bad bad rows reported" >&2; exit 1; }
[ "$imported" -eq $((rows - bad)) ] || { echo "expected $((rows - bad)) imported" >&2; exit 1; }
[ "$after" -eq "$imported" ] || { echo "the rerun changed the list" >&2; exit 1; }
case "$second" in "imported 0 "*) ;; *) echo "the rerun imported rows" >&2; exit 1 ;; esac
awk -v s="$seconds" 'BEGIN { exit !(s < 5) }' || echo "warning: slower than the 5 s budget" >&2
