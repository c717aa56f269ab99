#!/usr/bin/env bash
# Runs every fuzz target under fuzz/ for a set time and fails on any crash.
#
#   bash bench/fuzz.sh                     # 600 s per target
#   FUZZ_SECONDS=60 bash bench/fuzz.sh     # a quicker look
#   TARGETS="issue bounce" bash bench/fuzz.sh
#
# cargo fuzz needs nightly features; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain (the only one this machine has) build them. Installs cargo-fuzz
# from crates.io when missing. Each target starts from its committed seed
# corpus in fuzz/corpus/<target> (the shared bounce corpus is added when it
# is beside the repository) and grows a working corpus under
# fuzz/corpus-run/ (not committed). A crash leaves its input, minimised, in
# fuzz/regressions/<target>/, to be added to the tests; the script then
# exits 1. The last lines per target (runs, execs/s, coverage) are printed
# for bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${FUZZ_SECONDS:-600}
TARGETS=${TARGETS:-"issue front_matter csv_row config smtp_reply bounce"}
export RUSTC_BOOTSTRAP=1

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

status=0
for target in $TARGETS; do
    work=fuzz/corpus-run/$target
    mkdir -p "$work" "fuzz/regressions/$target"
    cp -n fuzz/corpus/"$target"/* "$work"/ 2>/dev/null || true
    if [ "$target" = bounce ] && [ -d ../shared/bounces/corpus ]; then
        cp -n ../shared/bounces/corpus/*.eml "$work"/ 2>/dev/null || true
    fi
    echo "== $target: ${SECONDS_PER_TARGET}s"
    log=$(mktemp)
    if (cd fuzz && cargo fuzz run "$target" "corpus-run/$target" -- \
            -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10 \
            -artifact_prefix="regressions/$target/" -print_final_stats=1) >"$log" 2>&1; then
        grep -E "^(#[0-9]+\s+DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)" "$log" || tail -n 5 "$log"
    else
        echo "CRASH in $target: the input is in fuzz/regressions/$target/"
        tail -n 40 "$log"
        status=1
    fi
    rm -f "$log"
done
exit $status
