#!/usr/bin/python3
"""Propagation across daemons sharing one database (run.sh measures write
throughput with wrk after it).

Usage: bench/cluster/propagation.py HTTP1,HTTP2,HTTP3 DNS1,DNS2,DNS3 [--rounds 500]

Propagation: ROUNDS times, register an instance through daemon 1 and, the
   moment the acknowledgement arrives, ask every daemon over DNS (one UDP query
   each, no retries); then remove it the same way. Reports acknowledgement
   latency (p50, p99) and "visible everywhere" latency (request sent -> the
   last daemon's answer shows it), and counts answers that did NOT show the
   acknowledged state (must be 0: the acknowledgement rule).
Loopback only: every address is in 127.0.0.0/8.
"""
import argparse
import http.client
import json
import random
import socket
import struct
import sys
import time


def dns_query(port, name, timeout=1.0):
    """The A records of NAME from 127.0.0.1:PORT, or None on no answer."""
    qid = random.randint(0, 65535)
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", qid, 0x0000, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, ("127.0.0.1", port))
        try:
            reply = s.recv(4096)
        except socket.timeout:
            return None
    ancount = struct.unpack(">H", reply[6:8])[0]
    at = 12 + len(question) + 4
    addresses = []
    for _ in range(ancount):
        if reply[at] & 0xC0 == 0xC0:
            at += 2
        else:
            while reply[at]:
                at += reply[at] + 1
            at += 1
        rtype, _, _, rdlength = struct.unpack(">HHIH", reply[at:at + 10])
        at += 10
        if rtype == 1:
            addresses.append(socket.inet_ntoa(reply[at:at + 4]))
        at += rdlength
    return addresses


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000.0


def propagation(http_ports, dns_ports, rounds):
    conn = http.client.HTTPConnection("127.0.0.1", http_ports[0])
    headers = {"Content-Type": "application/json"}
    acks, visible, stale = [], [], 0
    for r in range(rounds):
        address = "127.10.%d.%d" % (1 + r // 250, 1 + r % 250)
        body = json.dumps({"address": address, "port": 80, "check": {"type": "ttl", "ttl": "1h"}})
        for method, expect_present in (("PUT", True), ("DELETE", False)):
            start = time.perf_counter()
            conn.request(method, "/v1/services/prop/instances/p%d" % r,
                         body if method == "PUT" else None, headers)
            response = conn.getresponse()
            response.read()
            if response.status // 100 != 2:
                sys.exit("%s answered %d" % (method, response.status))
            acked = time.perf_counter()
            acks.append(acked - start)
            for port in dns_ports:
                answer = dns_query(port, "prop.service.discovery.") or []
                if (address in answer) != expect_present:
                    stale += 1
            visible.append(time.perf_counter() - start)
    return acks, visible, stale


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("http")
    parser.add_argument("dns")
    parser.add_argument("--rounds", type=int, default=500)
    args = parser.parse_args()
    http_ports = [int(p) for p in args.http.split(",")]
    dns_ports = [int(p) for p in args.dns.split(",")]
    acks, visible, stale = propagation(http_ports, dns_ports, args.rounds)
    print("propagation: %d acknowledgements; ack p50 %.2f ms p99 %.2f ms; visible on all %d "
          "daemons p50 %.2f ms p99 %.2f ms; answers not showing an acknowledged change: %d"
          % (len(acks), percentile(acks, 0.5), percentile(acks, 0.99), len(dns_ports),
             percentile(visible, 0.5), percentile(visible, 0.99), stale))
    sys.exit(1 if stale else 0)


if __name__ == "__main__":
    main()
