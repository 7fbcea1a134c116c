#!/usr/bin/python3
"""Register the instances of a gen-zone.py zone file in a running discoveryd.

Usage: bench/dns/register.py ZONEFILE HOST:PORT [--threads 16] [--check-ttl 1h]

For every service i and instance j of the zone (records written by
../shared/bench/gen-zone.py):
    svc-<i>-<j>             A    ADDR                  -> the instance's address
    _svc-<i>._tcp           SRV  PRIO WEIGHT PORT svc-<i>-<j>   -> its port and weight
it sends
    PUT /v1/services/svc-<i>/instances/svc-<i>-<j>
    {"address": ADDR, "port": PORT, "weight": WEIGHT, "check": {"type": "ttl", "ttl": "1h"}}
so that discoveryd answers svc-<i>.service.discovery A and
_svc-<i>._tcp.service.discovery SRV with the same addresses, ports and weights as
the zone (SRV targets differ: discoveryd names them svc-<i>-<j>.svc-<i>.instance.discovery.).
The addresses (10.x.y.z) are never contacted: the TTL check (a heartbeat
deadline) keeps any health checker from probing them during a benchmark.

Keep-alive HTTP/1.1 connections, THREADS in parallel (the daemon's writer
group-commits concurrent registrations). Exits non-zero if any PUT fails, then
verifies every service with GET /v1/services/svc-<i>.
"""
import argparse
import http.client
import json
import re
import sys
import threading
import time


def parse_zone(path):
    addr = {}   # (i, j) -> address
    srv = {}    # (i, j) -> (weight, port)
    svc_a = {}  # i -> set of addresses
    re_inst = re.compile(r"^svc-(\d+)-(\d+)\s+(?:\d+\s+)?IN\s+A\s+(\S+)")
    re_svc = re.compile(r"^svc-(\d+)\s+(?:\d+\s+)?IN\s+A\s+(\S+)")
    re_srv = re.compile(r"^_svc-(\d+)\._tcp\s+(?:\d+\s+)?IN\s+SRV\s+(\d+)\s+(\d+)\s+(\d+)\s+svc-(\d+)-(\d+)")
    with open(path) as f:
        for line in f:
            m = re_inst.match(line)
            if m:
                addr[(int(m.group(1)), int(m.group(2)))] = m.group(3)
                continue
            m = re_svc.match(line)
            if m:
                svc_a.setdefault(int(m.group(1)), set()).add(m.group(2))
                continue
            m = re_srv.match(line)
            if m:
                i, j = int(m.group(5)), int(m.group(6))
                srv[(i, j)] = (int(m.group(3)), int(m.group(4)))
    out = []
    for (i, j), a in sorted(addr.items()):
        if (i, j) not in srv:
            sys.exit("zone: svc-%d-%d has no SRV record" % (i, j))
        if a not in svc_a.get(i, ()):
            sys.exit("zone: svc-%d-%d address %s is not among svc-%d's A records" % (i, j, a, i))
        w, p = srv[(i, j)]
        out.append((i, j, a, p, w))
    if not out:
        sys.exit("zone: no svc-<i>-<j> instances found in %s" % path)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("zone")
    ap.add_argument("http")
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--check-ttl", default="1h")
    a = ap.parse_args()
    host, port = a.http.rsplit(":", 1)
    work = parse_zone(a.zone)
    lock = threading.Lock()
    errors = []
    pos = [0]

    def worker():
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        while True:
            with lock:
                if pos[0] >= len(work) or errors:
                    break
                i, j, addr, p, w = work[pos[0]]
                pos[0] += 1
            body = json.dumps({"address": addr, "port": p, "weight": w,
                               "check": {"type": "ttl", "ttl": a.check_ttl}})
            try:
                conn.request("PUT", "/v1/services/svc-%d/instances/svc-%d-%d" % (i, i, j), body,
                             {"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                if r.status not in (200, 201):
                    raise RuntimeError("HTTP %d %s" % (r.status, data[:200]))
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append("svc-%d-%d: %s" % (i, j, e))
                break
        conn.close()

    t0 = time.time()
    ts = [threading.Thread(target=worker) for _ in range(max(1, a.threads))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        sys.exit("register: %d failures, first: %s" % (len(errors), errors[0]))
    dt = time.time() - t0

    # verify: every service has exactly the zone's instances
    want = {}
    for i, j, addr, p, w in work:
        want.setdefault(i, set()).add(("svc-%d-%d" % (i, j), addr, p, w))
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    for i, inst in sorted(want.items()):
        conn.request("GET", "/v1/services/svc-%d" % i)
        r = conn.getresponse()
        data = json.loads(r.read())
        items = data.get("instances", data) if isinstance(data, dict) else data
        got = {(x["id"], x["address"], x["port"], x.get("weight", 1)) for x in items}
        if got != inst:
            sys.exit("verify: svc-%d has %s, want %s" % (i, sorted(got), sorted(inst)))
    conn.close()
    print("registered %d instances of %d services in %.1f s (%.0f/s, %d connections); verified"
          % (len(work), len(want), dt, len(work) / dt, a.threads))


if __name__ == "__main__":
    main()
