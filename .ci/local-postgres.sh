# Sourced by the scripts that need a throwaway PostgreSQL on loopback
# (.ci/run-cluster.sh, bench/cluster/run.sh, bench/dns/run.sh). Must run as
# root: initdb refuses root, so the server runs as the postgres user
# (../shared/toolchain.md).
#   local_postgres_start DIR PORT [SERVER OPTIONS...]  initdb into DIR/pg, start on
#       127.0.0.1:PORT (socket in DIR), create database discoveryd; sets
#       LOCAL_POSTGRES_URL. Trust authentication: loopback only, a throwaway.
#   local_postgres_stop DIR                             fast shutdown
#   local_cluster_cleanup DIR PID...                    the EXIT trap of a cluster script
local_postgres_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

local_postgres_start() {
  local dir=$1 port=$2
  shift 2
  local bin
  bin=$(local_postgres_bin)
  [ -n "$bin" ] || { echo "local-postgres: PostgreSQL is not installed (apt-get install postgresql)" >&2; return 1; }
  chown postgres "$dir"
  runuser -u postgres -- "$bin/initdb" -D "$dir/pg" -A trust -U discoveryd --no-sync >/dev/null ||
    return 1
  runuser -u postgres -- "$bin/pg_ctl" -D "$dir/pg" -l "$dir/postgres.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 $*" start >/dev/null || {
    cat "$dir/postgres.log" >&2
    return 1
  }
  psql -q "postgresql://discoveryd@127.0.0.1:$port/postgres" -c 'CREATE DATABASE discoveryd' ||
    return 1
  LOCAL_POSTGRES_URL="postgresql://discoveryd@127.0.0.1:$port/discoveryd"
}

local_postgres_stop() {
  local bin
  bin=$(local_postgres_bin)
  [ -n "$bin" ] && [ -d "$1/pg" ] &&
    runuser -u postgres -- "$bin/pg_ctl" -D "$1/pg" -m fast stop >/dev/null 2>&1
  return 0
}

# local_cluster_cleanup DIR PID...: what an EXIT trap does: TERM the processes,
# reap them, stop the server and remove DIR.
local_cluster_cleanup() {
  local dir=$1 pid
  shift
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
  local_postgres_stop "$dir"
  rm -rf "$dir"
}
