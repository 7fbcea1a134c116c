#!/usr/bin/env bash
# `make run`: start the daemon in the foreground with the example configuration
# (SQLite file under ./data, HTTP on 127.0.0.1:8500, DNS on 127.0.0.1:8600).
# If no Redis answers on 127.0.0.1:6379, start a local one (no persistence: the
# cache is disposable, SQLite is the source of truth) and stop it on exit.
set -euo pipefail
binary=$1
shift
mkdir -p data

redis_pid=""
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "make run: starting a local redis-server on 127.0.0.1:6379 (log: data/redis.log)"
  redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --logfile "$PWD/data/redis.log" --daemonize no &
  redis_pid=$!
  for _ in $(seq 50); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
    sleep 0.1
  done
fi

daemon_pid=""
cleanup() {
  [[ -n "$daemon_pid" ]] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  [[ -n "$redis_pid" ]] && kill -TERM "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  return 0
}
trap cleanup EXIT
trap 'exit 0' INT TERM

"$binary" "$@" &
daemon_pid=$!
wait "$daemon_pid"
