#!/usr/bin/env bash
# loopback-netns.sh CMD [ARGS...]: runs CMD where nothing can leave the machine.
#
# The health checker connects to every registered address, so a test, benchmark or
# fuzzer that registers a non-loopback address by mistake would really probe it.
# As root, CMD runs in a fresh network namespace (`unshare -n`) whose only
# interface is loopback: a connect to any other address then fails at once with
# ENETUNREACH. Inside, DISCOVERYD_LOOPBACK_NETNS=1 (tests/netns asserts it holds).
# Where no namespace can be made (not root, no unshare or ip, a container that
# forbids it) it says so loudly on stderr and runs CMD as is, with
# DISCOVERYD_LOOPBACK_NETNS=0. Install packages before calling this: inside, no
# mirror is reachable. Per-namespace sysctls (net.ipv4.*, net.core.somaxconn) are
# the kernel's defaults inside.
set -euo pipefail
[[ $# -gt 0 ]] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }

# Already wrapped (make test inside a wrapped script, a bench script that re-execs
# itself): one namespace, and one warning, is enough.
if [[ -n "${DISCOVERYD_LOOPBACK_NETNS:-}" ]]; then
  exec "$@"
fi

why=""
if [[ $(id -u) -ne 0 ]]; then
  why="not root"
elif ! command -v unshare >/dev/null || ! command -v ip >/dev/null; then
  why="unshare or ip missing (util-linux, iproute2)"
elif ! unshare -n true 2>/dev/null; then
  why="unshare -n refused (no CAP_SYS_ADMIN here?)"
fi

if [[ -z "$why" ]]; then
  echo "loopback-netns: running in a network namespace with only loopback: $*" >&2
  # shellcheck disable=SC2016 # "$@" is expanded by the inner shell
  exec unshare -n -- env DISCOVERYD_LOOPBACK_NETNS=1 \
    bash -c 'ip link set lo up && exec "$@"' loopback-netns "$@"
fi

{
  echo "WARNING: loopback-netns: $why; running WITHOUT a loopback-only network namespace."
  echo "WARNING: a registration of a non-loopback address would really be probed: $*"
} >&2
DISCOVERYD_LOOPBACK_NETNS=0 exec "$@"
