#!/usr/bin/python3
"""Registers N instances (N/100 per service, ttl checks, 127.x addresses) through
the daemon's HTTP API from 16 keep-alive clients. Usage: fill.py HTTP_PORT N"""
import http.client
import json
import sys
import threading

port, total = int(sys.argv[1]), int(sys.argv[2])


def client(first, step):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for n in range(first, total, step):
        body = json.dumps({"address": "127.40.%d.%d" % (n // 250 % 250, 1 + n % 250), "port": 80,
                           "check": {"type": "ttl", "ttl": "1h"}})
        conn.request("PUT", "/v1/services/svc%d/instances/i%d" % (n % (total // 100 or 1), n), body,
                     {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        if response.status != 201:
            sys.exit("registration failed: %d" % response.status)


threads = [threading.Thread(target=client, args=(i, 16)) for i in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()
