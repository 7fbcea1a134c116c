#!/usr/bin/env bash
# Propagation and write throughput of N daemons (default 3) sharing one
# database on loopback, no Redis: a throwaway PostgreSQL (default settings:
# fsync and synchronous_commit on) or, with --backend sqlite, one SQLite file.
# Usage: bench/cluster/run.sh [BUILD_DIR] [N] [--rounds R] [--seconds S]
#        [--connections C] [--backend postgresql|sqlite]
# Must run as root (initdb runs as the postgres user). Needs wrk (apt-get
# install wrk). Figures: docs/performance.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(realpath "${1:-build}")
daemons=${2:-3}
shift $(( $# < 2 ? $# : 2 ))
rounds=300 seconds=10 connections=64 backend=postgresql
while (( $# )); do
  case $1 in
    --rounds) rounds=$2 ;;
    --seconds) seconds=$2 ;;
    --connections) connections=$2 ;;
    --backend) backend=$2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
command -v wrk >/dev/null || { echo "bench/cluster needs wrk: apt-get install -y wrk" >&2; exit 1; }
pg_port=${PG_PORT:-25432}
work=$(mktemp -d /tmp/discoveryd-bench-cluster.XXXXXX)
source "$here/../../.ci/local-postgres.sh"
pids=()
trap 'local_cluster_cleanup "$work" "${pids[@]}"' EXIT
if [[ $backend == postgresql ]]; then
  local_postgres_start "$work" "$pg_port" -c max_connections=200
  db=$LOCAL_POSTGRES_URL
else
  db=$work/registry.db
fi
http=() dns=()
for n in $(seq "$daemons"); do
  "$build/discoveryd" --db "$db" --redis none \
    --zones "$here/../../zones" --http-listen "127.0.0.1:$((18510 + n))" \
    --dns-listen "127.0.0.1:$((18610 + n))" --log-level warn \
    --ready-file "$work/ready-$n.json" >"$work/daemon-$n.log" 2>&1 &
  pids+=($!)
  http+=($((18510 + n))) dns+=($((18610 + n)))
done
for n in $(seq "$daemons"); do
  for _ in $(seq 100); do [[ -e "$work/ready-$n.json" ]] && break; sleep 0.1; done
done
sleep 1  # every member has seen the others (renewals every 250 ms)
echo "backend: $backend, $daemons daemon(s)"
"$here/propagation.py" "$(IFS=,; echo "${http[*]}")" "$(IFS=,; echo "${dns[*]}")" --rounds "$rounds"
# Write throughput: one wrk per daemon (the connections split between them),
# each on keep-alive connections, every request a new instance.
wrk_pids=()
for n in $(seq "$daemons"); do
  wrk -t 1 -c $(( connections / daemons )) -d "${seconds}s" -s "$here/register.lua" \
    "http://127.0.0.1:${http[n - 1]}" -- "d$n-" >"$work/wrk-$n.txt" &
  wrk_pids+=($!)
done
wait "${wrk_pids[@]}"
total=0 failed=0
for n in $(seq "$daemons"); do
  line=$(grep '^registrations:' "$work/wrk-$n.txt")
  echo "daemon $n: $line"
  total=$(( total + $(awk '{print $2}' <<<"$line") ))
  failed=$(( failed + $(awk '{print $6}' <<<"$line") ))
done
echo "throughput: $connections connections over $daemons daemon(s): $(( total / seconds )) durable registrations/s ($failed not 201)"
(( failed == 0 ))
