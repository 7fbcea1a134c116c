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
pg_bin=/usr/lib/postgresql/15/bin
pg_port=${PG_PORT:-25432}
work=$(mktemp -d /tmp/discoveryd-bench-cluster.XXXXXX)
chown postgres "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
runuser -u postgres -- "$pg_bin/initdb" -D "$work/pg" -A trust -U discoveryd >/dev/null
runuser -u postgres -- "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/postgres.log" -w \
  -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
psql -q "postgresql://discoveryd@127.0.0.1:$pg_port/postgres" -c 'CREATE DATABASE discoveryd'
http=() dns=()
for n in $(seq "$daemons"); do
  "$build/discoveryd" --db "postgresql://discoveryd@127.0.0.1:$pg_port/discoveryd" --redis none \
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
