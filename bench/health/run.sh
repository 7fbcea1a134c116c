#!/bin/bash
# bench/health/run.sh [health_bench options] - the health checker benchmark (README.md),
# inside a network namespace with only loopback (.ci/loopback-netns.sh): the helpers
# listen on 127.0.1.* and nothing the checker probes can be anywhere else.
#   bench/health/run.sh --instances 100000 --mode tcp
# Env: HEALTH_BENCH (binary, default build-health/bench/health/health_bench; build it
# with `cmake --build build-health -j2 --target health_bench health_listeners`).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${HEALTH_BENCH:-$ROOT/build-health/bench/health/health_bench}
[ -x "$BIN" ] || { echo "run.sh: $BIN not built (see bench/health/README.md)" >&2; exit 2; }
exec "$ROOT/.ci/loopback-netns.sh" "$BIN" "$@"
