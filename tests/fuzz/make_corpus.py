#!/usr/bin/env python3
"""Writes the seed corpus of dns_query_fuzzer: a few valid queries, one per file.

Run once from the repository root: python3 tests/fuzz/make_corpus.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "dns")


def name(text):
    wire = b""
    for label in text.rstrip(".").split("."):
        if label:
            wire += bytes([len(label)]) + label.encode()
    return wire + b"\x00"


def query(qname, qtype=1, qclass=1, qid=0x1234, edns=None, version=0, options=b"", flags=0x0100):
    header = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 1 if edns is not None else 0)
    body = name(qname) + struct.pack("!HH", qtype, qclass)
    if edns is not None:
        body += b"\x00" + struct.pack("!HHBBHH", 41, edns, 0, version, 0x8000, len(options)) + options
    return header + body


SEEDS = {
    "a_service": query("web.service.discovery."),
    "aaaa_service_edns": query("Web.Service.Discovery.", qtype=28, edns=1232),
    "srv_rfc2782": query("_web._tcp.service.discovery.", qtype=33, edns=4096),
    "srv_tag": query("primary.web.service.discovery.", qtype=33),
    "a_instance": query("a1.web.instance.discovery."),
    "any_service": query("web.service.discovery.", qtype=255, edns=1232),
    "uncached_service": query("api.service.discovery.", qtype=1, edns=512),
    "ns_apex": query("discovery.", qtype=2, edns=1232),
    "mx_apex": query("discovery.", qtype=15),
    "nxdomain": query("nope.discovery."),
    "ent": query("b.deep.discovery.", qtype=16),
    "chaos_version": query("version.bind.", qtype=16, qclass=3),
    "badvers": query("web.service.discovery.", edns=1232, version=1),
    "edns_options": query("www.discovery.", edns=1232, options=b"\x00\x0a\x00\x08" + b"12345678"),
    "notify_opcode": query("discovery.", qtype=6, flags=0x2000),
}

os.makedirs(OUT, exist_ok=True)
for seed, data in SEEDS.items():
    with open(os.path.join(OUT, seed + ".bin"), "wb") as f:
        f.write(data)
print(f"wrote {len(SEEDS)} seeds to {OUT}")
