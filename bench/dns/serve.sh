#!/bin/bash
# serve.sh CONFIG DNS_PORT : runs discoveryd in the foreground for the benchmark
# harness (../shared/bench/anchors.sh -x "NAME PORT bench/dns/serve.sh CONFIG PORT").
#
# CONFIG (cache configuration of the read path, docs/architecture.md):
#   redis         near cache on, Redis (production default)            [config a]
#   noredis       near cache on, --redis none (near cache + SQLite)    [config b]
#   redis-nonear  near cache off, Redis: every lookup a Redis GET       [config c]
#   cold          near cache off, Redis, cache TTL 1 ms: every lookup a
#                 Redis miss -> SQLite read -> fenced Redis fill        [config d]
#   sqlite        near cache off, --redis none: every lookup a SQLite read [config e]
#   redis-dead    near cache on, its Redis killed once it serves           [config f]
#   pg-redis      as redis, on PostgreSQL (DNS_PG_URL; run.sh starts one)  [config p]
#   pg-redis-dead as redis-dead, on PostgreSQL                             [config q]
#
# Uses a copy of the template database that bench/dns/run.sh filled over HTTP
# (DNS_TEMPLATE_DB, default $BENCH_WORK/dns/template.db), so the daemon serves
# every instance as soon as its DNS port answers. For Redis configurations it
# starts its own redis-server (no persistence, io-threads 1) on a free port as a
# child: it inherits the wrapper's CPU pinning (taskset -c 1 under anchors.sh)
# and, being a descendant, its CPU time is counted in the server's CPU per query.
# DNS_REDIS=HOST:PORT uses an existing Redis instead (its CPU is then not counted).
# DNS_REDIS_TIMEOUT=DURATION sets --redis-timeout (default: the daemon's, 5ms).
# On SIGTERM (servers.sh stop) it appends to $DNS_REPORT_DIR/serve-CONFIG.txt the
# CPU ticks of the daemon and of redis-server, the daemon's /v1/status and its
# last warnings, then stops both by PID.
set -u
[ $# -eq 2 ] || { sed -n '2,20s/^# \{0,1\}//p' "$0"; exit 2; }
CFG=$1 PORT=$2
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${DISCOVERYD:-$ROOT/build/discoveryd}
WORK=${BENCH_WORK:-$ROOT/bench/.work}
TEMPLATE=${DNS_TEMPLATE_DB:-$WORK/dns/template.db}
ZONES=${DNS_ZONES:-$ROOT/zones}

kill_redis=0 pg=0
case $CFG in
    redis)        use_redis=1 near=true  ttl=30s ;;
    noredis)      use_redis=0 near=true  ttl=30s ;;
    redis-nonear) use_redis=1 near=false ttl=30s ;;
    cold)         use_redis=1 near=false ttl=1ms ;;
    sqlite)       use_redis=0 near=false ttl=30s ;;
    redis-dead)   use_redis=1 near=true  ttl=30s kill_redis=1 ;;
    pg-redis)     use_redis=1 near=true  ttl=30s pg=1 ;;
    pg-redis-dead) use_redis=1 near=true ttl=30s pg=1 kill_redis=1 ;;
    *) echo "serve.sh: unknown CONFIG '$CFG'" >&2; exit 2 ;;
esac
[ -x "$BIN" ] || { echo "serve.sh: $BIN not built" >&2; exit 1; }
if [ $pg = 1 ]; then
    [ -n "${DNS_PG_URL:-}" ] || { echo "serve.sh: $CFG needs DNS_PG_URL (bench/dns/run.sh sets it)" >&2; exit 1; }
else
    [ -s "$TEMPLATE" ] || { echo "serve.sh: no template DB $TEMPLATE (bench/dns/run.sh makes it)" >&2; exit 1; }
fi

mkdir -p "$WORK/dns"
tmp=$(mktemp -d "$WORK/dns/serve-$CFG.XXXXXX")
db=$tmp/d.db
# PostgreSQL: the database run.sh filled, shared by the runs (they only read it).
if [ $pg = 1 ]; then db=$DNS_PG_URL; else cp "$TEMPLATE" "$tmp/d.db"; fi
rpid="" dpid="" redis_addr=none

ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }
rss_start="" rport=""
shutdown() {
    local http st
    http=$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' "$tmp/ready.json" 2>/dev/null)
    [ -n "$http" ] && st=$(curl -s --max-time 2 "http://$http/v1/status")
    {
        echo "stop: $(date -Is) config=$CFG port=$PORT"
        echo "cpu_ticks daemon=$( [ -n "$dpid" ] && ticks "$dpid") redis=$( [ -n "$rpid" ] && ticks "$rpid") hz=$(getconf CLK_TCK)"
        echo "memory: rss_start_kb=$rss_start rss_kb=$(status_kb "$dpid" VmRSS) hwm_kb=$(status_kb "$dpid" VmHWM)"
        [ -n "$rport" ] && echo "redis_keys: $(redis-cli -p "$rport" DBSIZE)"
        echo "status: ${st:-}"
        grep -v '^serve.sh:' "$tmp/daemon.log" 2>/dev/null | tail -20 | sed 's/^/log: /'
    } | tee -a "${DNS_REPORT_DIR:-$tmp}/serve-$CFG.txt"
    [ -n "$dpid" ] && kill -TERM "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null
    [ -n "$rpid" ] && kill -TERM "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null
    rm -rf "$tmp"
    exit 0
}
trap shutdown TERM INT

if [ $use_redis = 1 ]; then
    if [ -n "${DNS_REDIS:-}" ]; then
        redis_addr=$DNS_REDIS
        redis-cli -u "redis://$redis_addr" FLUSHALL >/dev/null
    else
        rport=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        redis-server --bind 127.0.0.1 --port "$rport" --save "" --appendonly no --io-threads 1 \
            --daemonize no --protected-mode no --dir "$tmp" --logfile "$tmp/redis.log" &
        rpid=$!
        for _ in $(seq 1 50); do
            [ "$(redis-cli -p "$rport" PING 2>/dev/null)" = PONG ] && break
            sleep 0.1
        done
        redis_addr=127.0.0.1:$rport
    fi
fi

cat > "$tmp/discoveryd.toml" <<CONF
# written by bench/dns/serve.sh ($CFG)
[cache]
near_cache = $near
ttl = "$ttl"
[log]
level = "warn"
CONF
echo "serve.sh: config=$CFG redis=$redis_addr near_cache=$near cache_ttl=$ttl db=$db"
extra=()
[ -n "${DNS_REDIS_TIMEOUT:-}" ] && extra+=(--redis-timeout "$DNS_REDIS_TIMEOUT")
"$BIN" --config "$tmp/discoveryd.toml" --db "$db" --redis "$redis_addr" "${extra[@]}" \
    --dns-listen "127.0.0.1:$PORT" --http-listen 127.0.0.1:0 --zones "$ZONES" \
    --log-level warn --ready-file "$tmp/ready.json" > >(tee "$tmp/daemon.log") 2>&1 &
dpid=$!
# until the daemon serves (and, with Redis, trusts it), then sit in the foreground
for _ in $(seq 1 100); do
    kill -0 "$dpid" 2>/dev/null || { echo "serve.sh: discoveryd exited"; rm -rf "$tmp"; [ -n "$rpid" ] && kill "$rpid"; exit 1; }
    if [ -s "$tmp/ready.json" ]; then
        [ $use_redis = 0 ] && break
        http=$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' "$tmp/ready.json")
        curl -s --max-time 1 "http://$http/v1/status" | grep -q '"redis_trusted":true' && break
    fi
    sleep 0.1
done
if [ $kill_redis = 1 ] && [ -n "$rpid" ]; then
    # Redis dies once the daemon trusts it: the near cache must carry on alone.
    kill -KILL "$rpid"; wait "$rpid" 2>/dev/null; rpid=""
    echo "serve.sh: Redis killed"
fi
rss_start=$(status_kb "$dpid" VmRSS)
echo "serve.sh: serving, daemon pid $dpid, redis pid ${rpid:-none}; start status: $(curl -s --max-time 1 "http://$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' "$tmp/ready.json")/v1/status" | grep -o '"cache":{[^}]*}')"
while kill -0 "$dpid" 2>/dev/null; do wait "$dpid"; done
echo "serve.sh: discoveryd exited on its own"
[ -n "$rpid" ] && kill -TERM "$rpid" 2>/dev/null
rm -rf "$tmp"
exit 1
