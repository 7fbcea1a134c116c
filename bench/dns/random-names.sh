#!/bin/bash
# bench/dns/random-names.sh - what names that were never registered cost (issue
# "random names must cost nothing"): discoveryd (config a: near cache + Redis,
# the production default) and Knot, on the live-only mix and on a mix in which
# every second query is a random absent name (each name once), interleaved in one
# run; then a 60 s flood of the random mix to show that memory stays flat.
#
# Usage: bench/dns/random-names.sh [-r REPS] [-l SECONDS] [-F FLOOD_SECONDS] [-o DIR]
# Runtime with the defaults (3 reps x 10 s, 60 s flood): about 5 minutes.
# Reads: DIR/summary.md (CPU per query, from the harness) and
# DIR/*/max/serve-reports/serve-redis.txt (cache counters, Redis keys and RSS
# per daemon at its stop; serve.sh writes them).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
export BENCH_WORK=${BENCH_WORK:-$ROOT/bench/.work}
REPS=3 SECS=10 FLOOD=60 OUT=""
while getopts "r:l:F:o:h" o; do
    case $o in
        r) REPS=$OPTARG ;; l) SECS=$OPTARG ;; F) FLOOD=$OPTARG ;; o) OUT=$OPTARG ;;
        *) sed -n '2,13s/^# \{0,1\}//p' "$0"; exit 2 ;;
    esac
done
OUT=${OUT:-$ROOT/bench/results/random-names-$(date +%Y%m%d-%H%M%S)}
DATA=$BENCH_WORK/data
mkdir -p "$OUT"
if ! grep -qs "^services=1000 instances=3 ttl=5 queries=100000 " "$DATA/meta.txt"; then
    "$SHARED/gen-zone.py" -n 1000 -k 3 -o "$DATA" || exit 1
fi
MIX=$DATA/queries-random50.txt
[ -s "$MIX" ] || "$HERE/random_names.py" "$DATA/queries.txt" "$MIX" || exit 1

"$HERE/run.sh" -C a -s knot -q "$DATA/queries.txt" -q "$MIX" -R "" -r "$REPS" -l "$SECS" \
    -o "$OUT/mixes" || exit 1
"$HERE/run.sh" -C a -s "" -q "$MIX" -R "" -r 1 -l "$FLOOD" -o "$OUT/flood" || exit 1
{
    cat "$OUT/mixes/summary.md"
    echo
    echo "## Per daemon at its stop (mixes, then the ${FLOOD} s flood)"
    grep -h '^stop:\|^memory:\|^redis_keys' "$OUT"/mixes/max/serve-reports/*.txt \
        "$OUT"/flood/max/serve-reports/*.txt
} > "$OUT/summary.md"
echo "results in $OUT/summary.md"
