#!/bin/bash
# bench/dns/profile.sh - where discoveryd's DNS thread spends its CPU under load.
#
# Usage: bench/dns/profile.sh [-C CONFIG] [-l SECONDS] [-Q QPS] [-o DIR]
#   -C CONFIG   serve.sh configuration: redis (default) | noredis | redis-nonear | cold | sqlite
#   -l SECONDS  profiled dnsperf run (default 10), after a 2 s warm-up
#   -Q QPS      open loop at this rate instead of max throughput
#   -o DIR      output (default bench/results/profile-<CONFIG>-<timestamp>)
# Needs the template database of a previous bench/dns/run.sh (bench/.work/dns/template.db)
# and linux-perf. Starts the daemon like run.sh does (server on CPU 1, dnsperf on CPU 0),
# records `perf record -e cpu-clock -g` of the daemon process (perf itself on CPU 0) and
# `perf stat` of it, and writes DIR/report.txt: CPU per thread (from /proc), perf's split
# by thread, by kernel vs user, by DSO and the top symbols.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# Nothing the benchmark starts can reach beyond loopback: re-run inside a network
# namespace with only loopback (.ci/loopback-netns.sh; it warns where it cannot).
[ -n "${DISCOVERYD_LOOPBACK_NETNS:-}" ] || exec "$ROOT/.ci/loopback-netns.sh" bash "$HERE/${0##*/}" "$@"
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
export BENCH_WORK=${BENCH_WORK:-$ROOT/bench/.work}
CFG=redis SECS=10 RATE="" OUT=""
while getopts "C:l:Q:o:h" o; do
    case $o in
        C) CFG=$OPTARG ;; l) SECS=$OPTARG ;; Q) RATE=$OPTARG ;; o) OUT=$OPTARG ;;
        *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
    esac
done
OUT=${OUT:-$ROOT/bench/results/profile-$CFG-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
command -v perf >/dev/null || { echo "perf missing (apt-get install linux-perf)" >&2; exit 1; }
[ -s "$BENCH_WORK/dns/template.db" ] || { echo "run bench/dns/run.sh first (template DB)" >&2; exit 1; }
S=$SHARED/servers.sh NAME=profile-$CFG PORT=5319
export DNS_REPORT_DIR=$OUT
"$S" start-custom "$NAME" "$PORT" pinned "$HERE/serve.sh" "$CFG" "$PORT" || exit 1
trap '"$S" stop "$NAME"' EXIT
dpid=$(pgrep -P "$(cat "$BENCH_WORK/run/$NAME/server.pid")" -x discoveryd)
[ -n "$dpid" ] || { echo "no discoveryd child found" >&2; exit 1; }
Q=$BENCH_WORK/data/queries.txt
export DNSPERF_QPS=$RATE
"$SHARED/dns-qps.sh" 127.0.0.1 "$PORT" "$Q" 2 >/dev/null 2>&1   # warm-up

thread_ticks() { for t in /proc/"$dpid"/task/*; do
    printf '%s %s %s\n' "${t##*/}" "$(cat "$t/comm")" "$(awk '{ sub(/^.*\) /, ""); print $12, $13 }' "$t/stat")"; done; }
thread_ticks > "$OUT/threads.before"
taskset -c 0 perf record -q -e cpu-clock -F 4999 -g -p "$dpid" -o "$OUT/perf.data" -- sleep "$SECS" 2>"$OUT/perf-record.log" &
ppid=$!
taskset -c 0 perf stat -e task-clock,context-switches,cpu-migrations,page-faults -p "$dpid" -o "$OUT/perf-stat.txt" -- sleep "$SECS" &
spid=$!
SERVER_PIDS="$("$S" pids "$NAME")" "$SHARED/dns-qps.sh" 127.0.0.1 "$PORT" "$Q" "$SECS" > "$OUT/dnsperf.txt" 2>&1
wait "$ppid" "$spid"
thread_ticks > "$OUT/threads.after"

{
    echo "# profile of discoveryd ($CFG), $(date -Is), ${RATE:+open loop at $RATE q/s}${RATE:-max throughput}, $SECS s"
    echo
    cat "$OUT/dnsperf.txt"
    echo
    echo "## CPU per thread during the run (user/sys ticks of $(getconf CLK_TCK)/s, from /proc)"
    join <(sort "$OUT/threads.before") <(sort "$OUT/threads.after") |
        awk '{ u = $6 - $3; s = $7 - $4; if (u + s > 0) printf "  tid %s %-12s user %5d sys %5d total %5d\n", $1, $2, u, s, u + s }' | sort -k9 -n -r
    echo
    echo "## perf stat"
    grep -v '^#' "$OUT/perf-stat.txt" | grep .
    echo
    echo "## perf samples by thread (perf's \"pid\" key is the thread id)"
    perf report -i "$OUT/perf.data" --stdio --no-children --sort pid -g none 2>/dev/null | grep -v '^#' | grep . | head -12
    echo
    echo "## by DSO (kernel vs ours vs libraries)"
    perf report -i "$OUT/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null | grep -v '^#' | grep '%' | head -15
    echo
    echo "## top symbols (self)"
    perf report -i "$OUT/perf.data" --stdio --no-children --sort dso,sym -g none 2>/dev/null | grep -v '^#' | grep '%' | head -45
    echo
    echo "## top symbols including callees (children)"
    perf report -i "$OUT/perf.data" --stdio --children --sort sym -g none 2>/dev/null | grep -v '^#' | grep '%' | head -40
} > "$OUT/report.txt"
cat "$OUT/report.txt"
echo "profile: $OUT"
