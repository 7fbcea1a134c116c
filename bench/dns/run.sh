#!/bin/bash
# bench/dns/run.sh - discoveryd's DNS read path side by side with Knot and NSD, using
# the shared harness (../shared/bench: gen-zone.py, servers.sh, anchors.sh, dns-qps.sh).
#
# Usage: bench/dns/run.sh [options]
#   -n N          services (default 1000)           -k K   instances per service (default 3)
#   -C "CONFIGS"  discoveryd cache configurations, letters of (default "a b c d"):
#                   a = near cache + Redis (production default)   b = near cache, --redis none
#                   c = Redis, near cache off                     d = cold: Redis, near cache off,
#                   e = SQLite only (no Redis, no near cache)          cache TTL 1 ms (always a miss)
#                   f = as a, Redis killed once serving      p = as a, on PostgreSQL
#                   q = as f, on PostgreSQL (p and q start a throwaway PostgreSQL; root)
#   -s "SERVERS"  harness anchors run in the same invocation (default "echo-mmsg knot nsd")
#   -r REPS       repetitions, interleaved (default 3)
#   -l SECONDS    measured run (default 10)     -w SECONDS  warm-up before each run (default 2)
#   -c CLIENTS    dnsperf -c (default 4)
#   -q FILE       query file (default: queries.txt of the generated data; e.g. queries-nx.txt);
#                 repeat -q for several files, measured interleaved in each repetition
#   -R "RATES"    open-loop phases (dnsperf -Q, -v for percentiles); "knot" = Knot's median
#                 max-throughput QPS of this run rounded down to 1000 (default "knot 50000";
#                 "" skips the open-loop phases)
#   -P REPS       repetitions of each open-loop phase (default: REPS)
#   -M            skip the max-throughput phase (then "knot" in -R is skipped too)
#   -p PRIO       none (default) | nice | rt : the harness's scheduling option (anchors.sh -p);
#                 rt (SCHED_FIFO) removes most noise from other jobs but starves them meanwhile
#   -b            also run ../shared/bench/redis-bench.sh 1 5 (redis-benchmark GET/SET)
#   -o DIR        results (default bench/results/dns-<timestamp>, git-ignored)
# Env: DISCOVERYD (binary, default build/discoveryd), BENCH_WORK (default bench/.work),
#      DNS_REDIS (use this Redis), DNS_REDIS_TIMEOUT (--redis-timeout; see serve.sh).
# Runtime with the defaults: about 16 minutes (7 servers x 3 reps x 3 phases x ~15 s).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# Nothing the benchmark starts can reach beyond loopback: re-run inside a network
# namespace with only loopback (.ci/loopback-netns.sh; it warns where it cannot).
[ -n "${DISCOVERYD_LOOPBACK_NETNS:-}" ] || exec "$ROOT/.ci/loopback-netns.sh" bash "$HERE/${0##*/}" "$@"
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
export BENCH_WORK=${BENCH_WORK:-$ROOT/bench/.work}
mkdir -p "$BENCH_WORK/dns"
[ -e "$BENCH_WORK/.gitignore" ] || echo '*' > "$BENCH_WORK/.gitignore"
export DISCOVERYD=${DISCOVERYD:-$ROOT/build/discoveryd}

N=1000 K=3 CONFIGS="a b c d" SERVERS="echo-mmsg knot nsd" REPS=3 SECS=10 WARM=2 CLIENTS=4
QFILES=() RATES="knot 50000" OREPS="" REDISBENCH=0 OUT="" SKIPMAX=0
while getopts "n:k:C:s:r:l:w:c:q:R:P:p:Mbo:h" o; do
    case $o in
        n) N=$OPTARG ;; k) K=$OPTARG ;; C) CONFIGS=$OPTARG ;; s) SERVERS=$OPTARG ;;
        r) REPS=$OPTARG ;; l) SECS=$OPTARG ;; w) WARM=$OPTARG ;; c) CLIENTS=$OPTARG ;;
        q) QFILES+=("$OPTARG") ;; R) RATES=$OPTARG ;; P) OREPS=$OPTARG ;; b) REDISBENCH=1 ;; o) OUT=$OPTARG ;; p) export PRIO=$OPTARG ;; M) SKIPMAX=1 ;;
        *) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2 ;;
    esac
done
OREPS=${OREPS:-$REPS}
OUT=${OUT:-$ROOT/bench/results/dns-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
DATA=$BENCH_WORK/data
log() { echo "== $(date +%T) $*"; }
die() { echo "run.sh: $*" >&2; exit 1; }

for c in dnsperf knotd nsd redis-server redis-cli pdnsutil dig curl taskset; do
    command -v "$c" >/dev/null || die "$c missing (apt-get install dnsperf knot nsd redis-server redis-tools pdns-server pdns-backend-sqlite3 bind9-dnsutils curl)"
done
[ -x "$DISCOVERYD" ] || die "$DISCOVERYD not built (cmake --build build --target discoveryd)"

# 1. zone and query files (the harness's own generator; regenerated only if N/K changed,
#    so the PowerDNS DB that servers.sh prepare derives from it is not rebuilt for nothing)
if ! grep -qs "^services=$N instances=$K ttl=5 queries=100000 " "$DATA/meta.txt"; then
    log "gen-zone.py -n $N -k $K"
    "$SHARED/gen-zone.py" -n "$N" -k "$K" -o "$DATA" || die "gen-zone.py failed"
fi
"$SHARED/servers.sh" prepare || die "servers.sh prepare failed"
[ ${#QFILES[@]} -gt 0 ] || QFILES=("$DATA/queries.txt")
QARGS=()
for f in "${QFILES[@]}"; do QARGS+=(-q "$f"); done

# register_zone DB DIR REPORT: a daemon on DB (its ready file and log in DIR)
# gets the zone's N x K instances over HTTP; REPORT keeps register.py's output.
register_zone() {
    local db=$1 dir=$2 report=$3 pid http rc
    "$DISCOVERYD" --db "$db" --redis none --dns-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
        --zones "$ROOT/zones" --log-level warn --ready-file "$dir/ready.json" >"$dir/log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do [ -s "$dir/ready.json" ] && break; sleep 0.1; done
    http=$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' "$dir/ready.json" 2>/dev/null)
    [ -n "$http" ] || { kill "$pid"; cat "$dir/log"; die "registration daemon on $db did not start"; }
    "$HERE/register.py" "$DATA/service.discovery.zone" "$http" --threads 16 | tee "$report"
    rc=${PIPESTATUS[0]}
    kill -TERM "$pid"; wait "$pid"
    [ "$rc" = 0 ] || die "registration into $db failed"
}

# 2. register the zone's N x K instances over HTTP into a template database; every
#    benchmarked daemon starts on a copy of it (bench/dns/serve.sh)
log "registering $N x $K instances over HTTP"
tdir=$(mktemp -d "$BENCH_WORK/dns/register.XXXXXX")
register_zone "$tdir/t.db" "$tdir" "$OUT/register.txt"
mv "$tdir/t.db" "$BENCH_WORK/dns/template.db"; rm -rf "$tdir"

# 2b. configurations on PostgreSQL: a throwaway server, filled the same way once;
#     the benchmarked daemons only read it
case " $CONFIGS " in *" p "*|*" q "*)
    pgdir=$(mktemp -d /tmp/discoveryd-bench-dns-pg.XXXXXX)
    source "$ROOT/.ci/local-postgres.sh"
    trap 'local_postgres_stop "$pgdir"; rm -rf "$pgdir"' EXIT
    local_postgres_start "$pgdir" "${DNS_PG_PORT:-25433}" || die "PostgreSQL did not start"
    export DNS_PG_URL=$LOCAL_POSTGRES_URL
    log "registering $N x $K instances over HTTP into PostgreSQL"
    register_zone "$DNS_PG_URL" "$pgdir" "$OUT/register-pg.txt"
    ;;
esac

# 3. the discoveryd servers for anchors.sh -x
X=()
for c in $CONFIGS; do
    case $c in
        a) X+=(-x "discoveryd-a-redis 5311 $HERE/serve.sh redis 5311") ;;
        b) X+=(-x "discoveryd-b-noredis 5312 $HERE/serve.sh noredis 5312") ;;
        c) X+=(-x "discoveryd-c-redis-nonear 5313 $HERE/serve.sh redis-nonear 5313") ;;
        d) X+=(-x "discoveryd-d-cold 5314 $HERE/serve.sh cold 5314") ;;
        e) X+=(-x "discoveryd-e-sqlite 5315 $HERE/serve.sh sqlite 5315") ;;
        f) X+=(-x "discoveryd-f-redis-dead 5316 $HERE/serve.sh redis-dead 5316") ;;
        p) X+=(-x "discoveryd-p-pg-redis 5317 $HERE/serve.sh pg-redis 5317") ;;
        q) X+=(-x "discoveryd-q-pg-redis-dead 5318 $HERE/serve.sh pg-redis-dead 5318") ;;
        *) die "unknown config '$c' (a b c d e f p q)" ;;
    esac
done
{
    echo "date: $(date -Is)  commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) (worktree $(git -C "$ROOT" status --porcelain 2>/dev/null | grep -c .) changed files)"
    echo "binary: $DISCOVERYD $(stat -c '%y %s bytes' "$DISCOVERYD") build type $(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$(dirname "$DISCOVERYD")/CMakeCache.txt" 2>/dev/null)"
    echo "args: -n $N -k $K -C '$CONFIGS' -s '$SERVERS' -r $REPS -l $SECS -w $WARM -c $CLIENTS -q '${QFILES[*]}' -R '$RATES' -P $OREPS prio=${PRIO:-none} redis_timeout=${DNS_REDIS_TIMEOUT:-default}"
    echo "redis: $(redis-server --version)"
} > "$OUT/run-env.txt"

# 4. max throughput, closed loop
if [ "$SKIPMAX" = 0 ]; then
log "phase 1: max throughput ($REPS reps x $SECS s)"
mkdir -p "$OUT/max/serve-reports"
DNS_REPORT_DIR=$OUT/max/serve-reports "$SHARED/anchors.sh" -s "$SERVERS" -m pinned "${QARGS[@]}" -r "$REPS" -l "$SECS" -w "$WARM" -c "$CLIENTS" \
    -o "$OUT/max" "${X[@]}" 2>&1 | tee "$OUT/max.log"
"$HERE/report.py" split "$OUT/max" > "$OUT/max/split.md"
fi

# 5. open loop with per-response latencies (dnsperf -v) for percentiles
OPEN=()
for rate in $RATES; do
    if [ "$rate" = knot ]; then
        rate=$(awk -F'\t' 'NR > 1 && $5 == "knot" { print $7 }' "$OUT/max/results.tsv" 2>/dev/null | sort -n |
               awk '{ v[NR] = $1 } END { if (NR) { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print int(m / 1000) * 1000 } }')
        [ -n "$rate" ] && [ "$rate" -gt 0 ] || { echo "no Knot rate measured; skipping"; continue; }
    fi
    log "phase: open loop at $rate q/s ($OREPS reps x $SECS s, dnsperf -v)"
    mkdir -p "$OUT/open-$rate/serve-reports"
    DNS_REPORT_DIR=$OUT/open-$rate/serve-reports DNSPERF_OPTS="${DNSPERF_OPTS:-} -v" "$SHARED/anchors.sh" -s "$SERVERS" -m pinned "${QARGS[@]}" -r "$OREPS" \
        -l "$SECS" -w "$WARM" -c "$CLIENTS" -Q "$rate" -o "$OUT/open-$rate" "${X[@]}" 2>&1 | tee "$OUT/open-$rate.log"
    "$HERE/report.py" latency "$OUT/open-$rate"/raw/*.txt > "$OUT/open-$rate/latency.tsv"
    "$HERE/report.py" split "$OUT/open-$rate" > "$OUT/open-$rate/split.md"
    # keep dnsperf's summaries, drop the per-response lines (~45 MB per run)
    for r in "$OUT/open-$rate"/raw/*.txt; do grep -v '^> ' "$r" > "$r.tmp" && mv "$r.tmp" "$r"; done
    OPEN+=("$OUT/open-$rate")
done

if [ "$REDISBENCH" = 1 ]; then
    log "redis-bench.sh 1 5"
    "$SHARED/redis-bench.sh" 1 5 2>&1 | tee "$OUT/redis-bench.log"
fi

# 6. summary
{
    echo "# bench/dns/run.sh $(date -Is)"
    echo
    sed 's/^/    /' "$OUT/run-env.txt"
    echo
    if [ "$SKIPMAX" = 0 ]; then
        echo "## Max throughput (closed loop), medians"
        cat "$OUT/max/table.md"
        echo
        echo "## discoveryd: CPU split and where lookups were answered"
        echo
        cat "$OUT/max/split.md"
    fi
    if [ ${#OPEN[@]} -gt 0 ]; then
        echo
        echo "## Open loop (dnsperf -Q), latency percentiles from dnsperf -v"
        echo
        "$HERE/report.py" open "${OPEN[@]}"
        for o in "${OPEN[@]}"; do
            echo
            echo "### discoveryd during the open-loop phase ${o##*/}"
            echo
            cat "$o/split.md"
        done
    fi
} > "$OUT/summary.md"
cat "$OUT/summary.md"
log "done: $OUT/summary.md"
