#!/usr/bin/env bash
# Zone transfers to a real Knot secondary, on loopback: AXFR of a large zone
# (time, messages, bytes), acknowledgement -> Knot's answer changed (p50/p99),
# IXFR bytes per change, and queries/s of Knot and the daemon side by side.
# Usage: bench/xfr/run.sh [BUILD_DIR] [INSTANCES] (default 100000).
# NOTIFY_INTERVAL (default 1s) sets --notify-interval. Needs knotd, kdig,
# dnsperf. Figures: docs/performance.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(realpath "${1:-build}")
instances=${2:-100000}
work=$(mktemp -d /tmp/discoveryd-bench-xfr.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
http=18901 dns=18902 knot=18903
"$build/discoveryd" --db "$work/registry.db" --redis none --zones "$here/../../zones" \
  --http-listen "127.0.0.1:$http" --dns-listen "127.0.0.1:$dns" --log-level warn \
  --xfr-allow 127.0.0.1 --notify "127.0.0.1:$knot" --notify-interval "${NOTIFY_INTERVAL:-1s}" \
  --ready-file "$work/ready.json" >"$work/daemon.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -e "$work/ready.json" ]] && break; sleep 0.1; done
echo "registering $instances instances..."
"$here/fill.py" "$http" "$instances"
echo "AXFR straight from the daemon (kdig):"
kdig @127.0.0.1 -p "$dns" +noall +stats discovery. AXFR | grep -E "Received|From"
mkdir -p "$work/knot-db"
cat >"$work/knot.conf" <<CONF
server:
    listen: 127.0.0.1@$knot
    rundir: $work
log:
  - target: stderr
    any: info
database:
    storage: $work/knot-db
remote:
  - id: primary
    address: 127.0.0.1@$dns
acl:
  - id: notify
    address: 127.0.0.1
    action: notify
zone:
  - domain: discovery.
    storage: $work
    file: secondary.zone
    master: primary
    acl: notify
    zonefile-sync: -1
    zonefile-load: none
    journal-content: changes
CONF
knotd -c "$work/knot.conf" >"$work/knot.log" 2>&1 &
pids+=($!)
serial() { kdig @127.0.0.1 -p "$1" +short +timeout=1 discovery. SOA | awk '{print $3}'; }
for _ in $(seq 600); do
  [[ -n "$(serial $knot)" && "$(serial $knot)" == "$(serial $dns)" ]] && break
  sleep 0.1
done
echo "Knot's first transfer:"; grep -E "AXFR, incoming.*finished" "$work/knot.log" | head -1
"$here/secondary.py" "$http" "$dns" "$knot" "$work/knot.log" --rounds "${ROUNDS:-200}"
names="$work/names.txt"
for i in $(seq 0 99); do echo "svc$i.service.discovery A"; done >"$names"
for target in "daemon $dns" "knot $knot"; do
  set -- $target
  echo "$1: $(dnsperf -s 127.0.0.1 -p "$2" -d "$names" -l 5 -c 4 2>&1 | grep -E 'Queries per second')"
done
