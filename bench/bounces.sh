#!/usr/bin/env bash
# Bounce parsing: herald against Sisimai on the shared corpus, in one run.
#
#   bash bench/bounces.sh            # from the repository root
#   BOUNCES=/path/to/shared/bounces RUNS=5 bash bench/bounces.sh
#
# Installs Debian's libsisimai-perl when it is missing, builds herald
# --release, then times `herald bounces parse --json` over every corpus
# file and `Sisimai->make` over the same files (best of RUNS, each a whole
# process: startup included for both; Sisimai's time inside perl, without
# its startup, is printed too). Prints messages/s, the ratio, and the
# agreement with Sisimai's reading from this very run.
set -euo pipefail
cd "$(dirname "$0")/.."
BOUNCES=${BOUNCES:-../shared/bounces}
RUNS=${RUNS:-5}
[ -d "$BOUNCES/corpus" ] || { echo "no corpus at $BOUNCES/corpus (set BOUNCES)" >&2; exit 1; }

if ! perl -MSisimai -e1 2>/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq libsisimai-perl >/dev/null
fi
cargo build --release --quiet --bin herald
HERALD=target/release/herald

mapfile -t FILES < <(ls "$BOUNCES"/corpus/*.eml)
N=${#FILES[@]}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
cat "${FILES[@]}" >/dev/null # both read from the page cache

# The same reading as shared/bounces/sisimai_ref.pl, plus its own clock.
cat >"$OUT/sisimai.pl" <<'PERL'
use strict; use warnings; use Sisimai; use JSON::PP; use Time::HiRes qw(time);
my $out = {}; my $t0 = time;
for my $f (@ARGV) {
  my $v = Sisimai->make($f, delivered => 0, vacation => 0);
  my @r = map { { recipient => $_->recipient->address, reason => $_->reason, status => $_->deliverystatus, soft => $_->softbounce + 0, feedback => $_->feedbacktype } } @{ $v || [] };
  (my $k = $f) =~ s{.*/}{};
  $out->{$k} = \@r;
}
printf STDERR "%.6f\n", time - $t0;
print JSON::PP->new->canonical->pretty->encode($out);
PERL

now() { date +%s.%N; }
best() { sort -g | head -1; }

herald_times=() sisimai_times=() sisimai_inner=()
for _ in $(seq "$RUNS"); do
    t0=$(now); "$HERALD" bounces parse --json "${FILES[@]}" >"$OUT/herald.jsonl"; t1=$(now)
    herald_times+=("$(echo "$t1 - $t0" | bc -l)")
    t0=$(now); perl "$OUT/sisimai.pl" "${FILES[@]}" >"$OUT/sisimai.json" 2>"$OUT/inner"; t1=$(now)
    sisimai_times+=("$(echo "$t1 - $t0" | bc -l)")
    sisimai_inner+=("$(cat "$OUT/inner")")
done
h=$(printf '%s\n' "${herald_times[@]}" | best)
s=$(printf '%s\n' "${sisimai_times[@]}" | best)
si=$(printf '%s\n' "${sisimai_inner[@]}" | best)
"$HERALD" bounces parse --json "$BOUNCES"/not-bounces/*.eml >"$OUT/not-bounces.jsonl"

echo "corpus: $N files, best of $RUNS runs"
printf 'herald  bounces parse --json: %8.4f s  %10.0f msgs/s\n' "$h" "$(echo "$N / $h" | bc -l)"
printf 'Sisimai->make (perl process): %8.4f s  %10.0f msgs/s\n' "$s" "$(echo "$N / $s" | bc -l)"
printf 'Sisimai->make (inside perl):  %8.4f s  %10.0f msgs/s\n' "$si" "$(echo "$N / $si" | bc -l)"
printf 'herald / Sisimai: %.1fx (process), %.1fx (Sisimai without perl startup); target >= 10x\n' \
    "$(echo "$s / $h" | bc -l)" "$(echo "$si / $h" | bc -l)"
echo
if ! cmp -s <(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), sort_keys=True))' "$OUT/sisimai.json") \
            <(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), sort_keys=True))' "$BOUNCES/expected.json"); then
    echo "note: this Sisimai reads the corpus differently from expected.json; comparing with this run's reading"
fi
python3 bench/bounces_compare.py "$OUT/sisimai.json" "$OUT/herald.jsonl" "$OUT/not-bounces.jsonl"
