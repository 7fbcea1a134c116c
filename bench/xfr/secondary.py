#!/usr/bin/python3
"""Zone transfers to a Knot secondary, measured (run by run.sh).

Usage: secondary.py HTTP_PORT DAEMON_DNS_PORT KNOT_DNS_PORT KNOT_LOG [--rounds 200]

1. Propagation: ROUNDS times register (then remove) an instance through the
   daemon and, from the acknowledgement on, ask Knot over UDP every 2 ms until
   its answer shows the change. Reports p50 and p99 of acknowledgement ->
   Knot's answer changed.
2. IXFR bytes per change, from Knot's log ("IXFR, incoming, ... N bytes").
Loopback only: every address is in 127.0.0.0/8, with ttl checks.
"""
import argparse
import http.client
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "cluster"))
from propagation import dns_query, percentile  # noqa: E402


def until_visible(port, name, want_present, address, deadline_s=10.0):
    start = time.perf_counter()
    while time.perf_counter() - start < deadline_s:
        answer = dns_query(port, name, timeout=0.5) or []
        if (address in answer) == want_present:
            return time.perf_counter()
        time.sleep(0.002)
    return None


def propagation(http_port, knot_port, rounds):
    conn = http.client.HTTPConnection("127.0.0.1", http_port)
    delays, missed = [], 0
    for n in range(rounds):
        address = "127.30.%d.%d" % (1 + n // 250 % 250, 1 + n % 250)
        path = "/v1/services/xfr-bench/instances/r%d" % n
        body = json.dumps({"address": address, "port": 80, "check": {"type": "ttl", "ttl": "1h"}})
        for method, present in (("PUT", True), ("DELETE", False)):
            conn.request(method, path, body if method == "PUT" else None,
                         {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            acked = time.perf_counter()
            seen = until_visible(knot_port, "xfr-bench.service.discovery.", present, address)
            if seen is None:
                missed += 1
            else:
                delays.append(seen - acked)
    return delays, missed


def ixfr_bytes(log_path):
    sizes = [int(m.group(1)) for m in
             re.finditer(r"IXFR, incoming, .* finished, .* messages, (\d+) bytes", open(log_path).read())]
    return sizes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("http", type=int)
    parser.add_argument("dns", type=int)
    parser.add_argument("knot", type=int)
    parser.add_argument("knot_log")
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    delays, missed = propagation(args.http, args.knot, args.rounds)
    print("propagation to Knot: %d changes; ack -> Knot answer p50 %.1f ms p99 %.1f ms; %d not seen within 10 s"
          % (len(delays), percentile(delays, 0.5), percentile(delays, 0.99), missed))
    sizes = ixfr_bytes(args.knot_log)
    if sizes:
        sizes.sort()
        print("IXFR: %d transfers, median %d bytes, max %d bytes" % (len(sizes), sizes[len(sizes) // 2], sizes[-1]))
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
