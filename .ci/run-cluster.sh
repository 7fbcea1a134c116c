#!/usr/bin/env bash
# `make run-cluster`: a local cluster on loopback, in the foreground: a throwaway
# PostgreSQL (initdb into a temporary folder as the postgres user, which initdb
# requires), a Redis without persistence, and three daemons sharing both:
#   daemon 1: HTTP 127.0.0.1:8501, DNS 127.0.0.1:8601
#   daemon 2: HTTP 127.0.0.1:8502, DNS 127.0.0.1:8602
#   daemon 3: HTTP 127.0.0.1:8503, DNS 127.0.0.1:8603
# Ctrl-C stops everything and removes the temporary folder. Must run as root
# (initdb runs as postgres through runuser).
set -euo pipefail
binary=$(realpath "$1")
pg_port=${PG_PORT:-15432}
redis_port=${REDIS_PORT:-16379}

work=$(mktemp -d /tmp/discoveryd-cluster.XXXXXX)
source "$(dirname "$0")/local-postgres.sh"
pids=()
trap 'local_cluster_cleanup "$work" "${pids[@]}"' EXIT
trap 'exit 0' INT TERM

echo "run-cluster: PostgreSQL on 127.0.0.1:$pg_port (data in $work/pg)"
local_postgres_start "$work" "$pg_port"
db=$LOCAL_POSTGRES_URL

echo "run-cluster: Redis on 127.0.0.1:$redis_port"
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
  --maxmemory-policy volatile-lru --logfile "$work/redis.log" --daemonize no &
pids+=($!)
for _ in $(seq 50); do
  redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
  sleep 0.1
done

for n in 1 2 3; do
  "$binary" --db "$db" --redis "127.0.0.1:$redis_port" --zones zones \
    --http-listen "127.0.0.1:850$n" --dns-listen "127.0.0.1:860$n" \
    --ready-file "$work/ready-$n.json" >"$work/daemon-$n.log" 2>&1 &
  pids+=($!)
done
for n in 1 2 3; do
  for _ in $(seq 100); do [[ -e "$work/ready-$n.json" ]] && break; sleep 0.1; done
  [[ -e "$work/ready-$n.json" ]] || { echo "daemon $n did not start:"; cat "$work/daemon-$n.log"; exit 1; }
done

cat <<TEXT
run-cluster: three daemons share $db
  register through any of them:
    curl -X PUT -H 'Content-Type: application/json' \\
      http://127.0.0.1:8501/v1/services/web/instances/w1 \\
      -d '{"address":"127.1.2.3","port":8080,"check":{"type":"ttl","ttl":"10m"}}'
  and ask any of them, right after the answer:
    dig @127.0.0.1 -p 8602 web.service.discovery A
    dig @127.0.0.1 -p 8603 web.service.discovery A
  the members and their applied sequence: curl -s http://127.0.0.1:8501/v1/status
  logs: $work/daemon-{1,2,3}.log, $work/postgres.log
Ctrl-C stops everything.
TEXT
wait "${pids[1]}"
