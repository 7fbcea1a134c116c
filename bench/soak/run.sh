#!/bin/bash
# bench/soak/run.sh - the soak benchmark (issue 7): DNS, registrations and health
# probes together against one discoveryd on loopback, for --duration seconds
# (default 300), then a report and a verdict (exit 0 pass, 1 fail, 2 setup error).
#
# Usage: bench/soak/run.sh [soak.py options]      (bench/soak/soak.py --help lists them)
#   bench/soak/run.sh                              # 5 minutes, the defaults
#   bench/soak/run.sh --duration 1800 --dns-rate 4000 --dns-procs 2
#   bench/soak/run.sh --nx-random                  # NXDOMAIN for random names (cache growth)
# Env: DISCOVERYD (binary, default build/discoveryd). Results: bench/results/soak-<timestamp>/
# (report.txt, report.json, samples.csv, daemon.log, redis.log) unless --out DIR.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# Nothing the benchmark starts can reach beyond loopback: re-run inside a network
# namespace with only loopback (.ci/loopback-netns.sh; it warns where it cannot).
[ -n "${DISCOVERYD_LOOPBACK_NETNS:-}" ] || exec "$ROOT/.ci/loopback-netns.sh" bash "$HERE/${0##*/}" "$@"
export DISCOVERYD=${DISCOVERYD:-$ROOT/build/discoveryd}
for c in python3 redis-server; do
    command -v "$c" >/dev/null || { echo "run.sh: $c missing (apt-get install python3 redis-server)" >&2; exit 2; }
done
[ -x "$DISCOVERYD" ] || { echo "run.sh: $DISCOVERYD not built (cmake --build build --target discoveryd)" >&2; exit 2; }
exec python3 "$HERE/soak.py" "$@"
