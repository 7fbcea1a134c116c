#!/usr/bin/env bash
# Installs every Debian bookworm package the build, the daemon and the tests need.
# Idempotent and fast when everything is present: it only calls apt-get when a
# package is missing. Must run as root on a fresh machine (CI, `make run`, `make test`).
set -euo pipefail

packages=(
  build-essential cmake pkg-config ninja-build ccache
  libboost-dev libc-ares-dev libldns-dev libhiredis-dev libsqlitecpp-dev libsqlite3-dev
  libgtest-dev libgmock-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev
  libtomlplusplus-dev libssl-dev
  clang-14 libclang-rt-14-dev clang-format
  redis-server redis-tools ldnsutils knot-dnsutils bind9-dnsutils nsd knot sqlite3 curl openssl
  postgresql libpq-dev
  # unshare and ip, for .ci/loopback-netns.sh (the tests run with loopback only)
  util-linux iproute2
)

missing=()
for package in "${packages[@]}"; do
  # dpkg-query reports "install ok installed" only for fully installed packages.
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or install them yourself) and retry" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Package maintainer scripts must not start nsd, knot or redis as system services:
# the tests and `make run` start their own instances on their own ports.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  created_policy=1
fi
cleanup() { [[ $created_policy -eq 1 ]] && rm -f "$policy"; return 0; }
trap cleanup EXIT

apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
