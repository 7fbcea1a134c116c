#!/usr/bin/env bash
# Propagation and write throughput of N daemons (default 3) over one throwaway
# PostgreSQL on loopback (default settings: fsync and synchronous_commit on),
# no Redis. Usage: bench/cluster/run.sh [BUILD_DIR] [N] [propagation.py options]
# Must run as root (initdb runs as the postgres user). Figures: docs/performance.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(realpath "${1:-build}")
daemons=${2:-3}
shift $(( $# < 2 ? $# : 2 ))
pg_port=${PG_PORT:-25432}
work=$(mktemp -d /tmp/discoveryd-bench-cluster.XXXXXX)
source "$here/../../.ci/local-postgres.sh"
pids=()
trap 'local_cluster_cleanup "$work" "${pids[@]}"' EXIT
local_postgres_start "$work" "$pg_port" -c max_connections=200
http=() dns=()
for n in $(seq "$daemons"); do
  "$build/discoveryd" --db "$LOCAL_POSTGRES_URL" --redis none \
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
"$here/propagation.py" "$(IFS=,; echo "${http[*]}")" "$(IFS=,; echo "${dns[*]}")" "$@"
