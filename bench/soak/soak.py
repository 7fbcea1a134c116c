#!/usr/bin/python3
"""Soak benchmark of discoveryd (issue 7): DNS queries, registrations and health
probes together for several minutes, on loopback only, watching for errors,
latency and any resource that keeps growing.

Starts its own redis-server and discoveryd (temp SQLite DB, 1 s health interval),
registers SERVICES x PER_SERVICE instances whose health checks point at listeners
this driver runs, then for DURATION seconds runs together:
  - DNS over UDP at --dns-rate (A, SRV, instance A, NXDOMAIN), open loop, every
    answer checked against what is registered; DNS over TCP at --dns-tcp-rate on
    short-lived connections;
  - HTTP at --http-rate: heartbeats, registrations and deregistrations of
    ephemeral instances, unchanged re-registrations, reads (services, resolve,
    status);
  - the health checker probing every instance each second; --flaps instances at a
    time are taken down (listener closed or 503) until the checker removes them,
    then brought back and registered again;
and samples the daemon (RSS, fds, threads, CPU), the database and WAL sizes and
Redis every --sample seconds. Prints one line per window and a report; writes
report.json, report.txt and samples.csv to --out. Exits 1 if the verdict fails
(errors, growth), 2 on a setup error. See bench/soak/README.md.
"""
import argparse
import collections
import csv
import http.client
import ipaddress
import json
import math
import multiprocessing as mp
import os
import queue
import random
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DOMAIN = "discovery."

# ---------------------------------------------------------------------------
# Latency histograms: log buckets about 1 % wide, so windows and processes merge
# by adding counts and percentiles stay within 1 % whatever the run length.


def bucket(seconds):
    us = seconds * 1e6
    return int(math.log(us) * 100) if us > 1 else 0


def bucket_value_ms(b):
    return math.exp((b + 0.5) / 100) / 1000.0


class Stat:
    """Counts, errors by kind and a latency histogram for one kind of operation
    in one window. Plain dicts so it pickles cheaply between processes."""

    def __init__(self):
        self.n = 0
        self.ok = 0
        self.hist = collections.Counter()
        self.max = 0.0
        self.errors = collections.Counter()

    def add(self, latency, error=None):
        self.n += 1
        if error:
            self.errors[error] += 1
        else:
            self.ok += 1
        if latency is not None:
            self.hist[bucket(latency)] += 1
            self.max = max(self.max, latency)

    def merge(self, other):
        self.n += other.n
        self.ok += other.ok
        self.hist.update(other.hist)
        self.max = max(self.max, other.max)
        self.errors.update(other.errors)

    def percentile_ms(self, p):
        total = sum(self.hist.values())
        if not total:
            return None
        rank = p / 100.0 * total
        seen = 0
        for b in sorted(self.hist):
            seen += self.hist[b]
            if seen >= rank:
                return min(bucket_value_ms(b), self.max * 1000)
        return self.max * 1000

    def summary(self):
        return {"n": self.n, "ok": self.ok, "errors": dict(self.errors),
                "p50_ms": rnd(self.percentile_ms(50)), "p99_ms": rnd(self.percentile_ms(99)),
                "p999_ms": rnd(self.percentile_ms(99.9)),
                "max_ms": rnd(self.max * 1000) if self.n else None}


def rnd(x, digits=3):
    return None if x is None else round(x, digits)


class WindowedStats:
    """A worker's stats per window; flush() ships finished windows to the main
    process as (source, window, {kind: Stat})."""

    def __init__(self, source, out, t0, window):
        self.source, self.out, self.t0, self.window = source, out, t0, window
        self.current = {}
        self.index = 0

    def stat(self, kind, at=None):
        index = int(((at or time.monotonic()) - self.t0) // self.window)
        if index != self.index:
            self.flush()
            self.index = index
        s = self.current.get(kind)
        if s is None:
            s = self.current[kind] = Stat()
        return s

    def flush(self):
        if self.current:
            self.out.put((self.source, self.index, self.current))
            self.current = {}


# ---------------------------------------------------------------------------
# The registered world. Every process derives the same layout from the same
# arguments, so the DNS checker knows which addresses each service may answer.


class Layout:
    def __init__(self, services, per_service, octet):
        if per_service < 6:
            raise SystemExit("--per-service must be at least 6 (5 stable kinds + 1 flapping)")
        if services > 240:
            raise SystemExit("--services must be at most 240")
        self.octet = octet
        self.services = ["soak-%d" % s for s in range(services)]
        self.instances = []  # dicts: service, id, address, port, check, role
        for s, name in enumerate(self.services):
            for k in range(per_service):
                if k < 2:
                    role, check = "tcp", {"type": "tcp"}
                elif k < 4:
                    role, check = "http", {"type": "http", "path": "/health"}
                elif k == 4:
                    role, check = "ttl", {"type": "ttl", "ttl": "10s"}
                else:
                    # flapping: taken down and brought back during the run
                    role = "flap-tcp" if (s + k) % 2 == 0 else "flap-http"
                    check = {"type": "tcp"} if role == "flap-tcp" else {"type": "http", "path": "/health"}
                self.instances.append({
                    "service": name, "s": s, "id": "s%d-i%d" % (s, k),
                    "address": "127.%d.%d.%d" % (octet, s, k + 1), "port": 8080,
                    "check": check, "role": role})
        self.by_service = collections.defaultdict(list)
        for inst in self.instances:
            self.by_service[inst["service"]].append(inst)

    def ephemeral_address(self, s):
        return "127.%d.%d.200" % (self.octet, s)

    def allowed_addresses(self, s):
        name = self.services[s]
        return {socket.inet_aton(i["address"]) for i in self.by_service[name]} | {
            socket.inet_aton(self.ephemeral_address(s))}

    def stable(self):
        return [i for i in self.instances if not i["role"].startswith("flap")]

    def probed(self):
        return [i for i in self.instances if i["role"] != "ttl"]

    def flapping(self):
        return [i for i in self.instances if i["role"].startswith("flap")]


def registration_body(inst):
    return json.dumps({"address": inst["address"], "port": inst["port"], "check": inst["check"]})


# ---------------------------------------------------------------------------
# Health targets: one listener per probed instance (asyncio, own process). TCP
# targets accept and close; HTTP targets answer 200 to GET /health, or 503 while
# "down". A down TCP target closes its listener (connection refused).


def targets_main(layout_args, control):
    import asyncio

    layout = Layout(*layout_args)
    insts = {i["id"]: i for i in layout.probed()}
    down = set()
    servers = {}
    hits = collections.Counter()

    async def handle_tcp(reader, writer):
        hits["tcp"] += 1
        writer.close()

    async def handle_http(reader, writer, ident):
        hits["http"] += 1
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            if ident in down:
                hits["http_503"] += 1
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n"
                             b"Connection: close\r\n\r\ndown")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except Exception:  # noqa: BLE001 - the checker may reset the connection first
            hits["http_aborted"] += 1
        writer.close()

    async def open_listener(inst):
        if inst["check"]["type"] == "tcp":
            handler = handle_tcp
        else:
            ident = inst["id"]
            handler = lambda r, w, ident=ident: handle_http(r, w, ident)  # noqa: E731
        servers[inst["id"]] = await asyncio.start_server(
            handler, inst["address"], inst["port"], reuse_address=True, backlog=64)

    async def command(msg):
        op, ident = msg
        try:
            if op == "down":
                inst = insts[ident]
                if inst["check"]["type"] == "tcp":
                    server = servers.pop(ident)
                    server.close()
                    await server.wait_closed()
                else:
                    down.add(ident)
            elif op == "up":
                inst = insts[ident]
                if inst["check"]["type"] == "tcp":
                    await open_listener(inst)
                else:
                    down.discard(ident)
            elif op == "stats":
                control.send(("ok", dict(hits)))
                return
            control.send(("ok", None))
        except Exception as e:  # noqa: BLE001
            control.send(("error", repr(e)))

    async def main():
        loop = asyncio.get_running_loop()
        for inst in insts.values():
            await open_listener(inst)
        stop = loop.create_future()

        def on_control():
            try:
                msg = control.recv()
            except EOFError:
                msg = None
            if msg is None or msg == "stop":
                if not stop.done():
                    stop.set_result(None)
                return
            loop.create_task(command(msg))

        loop.add_reader(control.fileno(), on_control)
        control.send(("ready", len(servers)))
        await stop
        for server in servers.values():
            server.close()

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(main())


class Targets:
    def __init__(self, layout_args):
        self.conn, child = mp.Pipe()
        self.proc = mp.Process(target=targets_main, args=(layout_args, child), name="soak-targets")
        self.proc.start()
        self.lock = threading.Lock()
        if not self.conn.poll(30):
            raise SystemExit("targets: listeners did not start")
        status, n = self.conn.recv()
        if status != "ready":
            raise SystemExit("targets: " + str(n))
        self.count = n

    def call(self, op, ident=None):
        with self.lock:
            self.conn.send((op, ident))
            if not self.conn.poll(30):
                raise RuntimeError("targets: no answer to " + op)
            status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError("targets: %s %s: %s" % (op, ident, value))
        return value

    def stop(self):
        try:
            self.conn.send("stop")
        except OSError:
            pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()


# ---------------------------------------------------------------------------
# DNS: queries, and answer checking.

T_A, T_SRV = 1, 33
# EDNS0 OPT, UDP payload 1232 (what stub resolvers send today), so SRV answers
# with their additional A records fit without truncation
EDNS_OPT = b"\0" + struct.pack("!HHIH", 41, 1232, 0, 0)


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def skip_name(msg, pos):
    while True:
        length = msg[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += length + 1


class QueryMix:
    """The query mix: service A (55 %), _svc._tcp SRV (25 %), one instance's A
    (12 %), unknown service (NXDOMAIN, 8 %). Each entry: (kind, question bytes,
    expectation)."""

    def __init__(self, layout, nx_random, seed):
        self.rng = random.Random(seed)
        self.layout = layout
        self.nx_random = nx_random
        self.allowed = [layout.allowed_addresses(s) for s in range(len(layout.services))]
        self.svc_a = [(encode_name("%s.service.%s" % (n, DOMAIN)) + struct.pack("!HH", T_A, 1), s)
                      for s, n in enumerate(layout.services)]
        self.svc_srv = [(encode_name("_%s._tcp.service.%s" % (n, DOMAIN)) + struct.pack("!HH", T_SRV, 1), s)
                        for s, n in enumerate(layout.services)]
        self.inst_a = [(encode_name("%s.%s.instance.%s" % (i["id"], i["service"], DOMAIN))
                        + struct.pack("!HH", T_A, 1), socket.inet_aton(i["address"]))
                       for i in layout.stable()]
        self.nx = [encode_name("nx-%d.service.%s" % (n, DOMAIN)) + struct.pack("!HH", T_A, 1)
                   for n in range(1000)]

    def next(self):
        r = self.rng.random()
        if r < 0.55:
            q, s = self.rng.choice(self.svc_a)
            return "a", q, s
        if r < 0.80:
            q, s = self.rng.choice(self.svc_srv)
            return "srv", q, s
        if r < 0.92:
            q, addr = self.rng.choice(self.inst_a)
            return "inst", q, addr
        if self.nx_random:
            q = encode_name("nx-%016x.service.%s" % (self.rng.getrandbits(64), DOMAIN)) + struct.pack("!HH", T_A, 1)
        else:
            q = self.rng.choice(self.nx)
        return "nx", q, None

    def check(self, kind, expect, msg):
        """None if the answer is right, else the error kind."""
        if len(msg) < 12:
            return "short-answer"
        flags, qd, an = struct.unpack_from("!HHH", msg, 2)
        rcode = flags & 0xF
        if flags & 0x0200 and kind != "srv":
            return "truncated"
        if rcode == 2:
            return "servfail"
        if rcode == 5:
            return "refused"
        if kind == "nx":
            return None if rcode == 3 else "rcode-%d-for-nx" % rcode
        if rcode == 3:
            return "nxdomain"
        if rcode != 0:
            return "rcode-%d" % rcode
        if an == 0:
            return "empty-answer"
        try:
            pos = 12
            for _ in range(qd):
                pos = skip_name(msg, pos) + 4
            for _ in range(an):
                pos = skip_name(msg, pos)
                rtype, _cls, _ttl, rdlen = struct.unpack_from("!HHIH", msg, pos)
                pos += 10
                rdata = msg[pos:pos + rdlen]
                pos += rdlen
                if kind == "srv":
                    if rtype != T_SRV:
                        return "wrong-type"
                elif rtype != T_A or len(rdata) != 4:
                    return "wrong-type"
                elif kind == "a" and rdata not in self.allowed[expect]:
                    return "wrong-address"
                elif kind == "inst" and rdata != expect:
                    return "wrong-address"
        except (struct.error, IndexError):
            return "malformed-answer"
        return None


def dns_udp_main(cfg, out, stop, seed):
    """Open loop: queries leave at cfg.dns_rate whatever the answers do; each is
    matched by id, checked, timed; unanswered after cfg.dns_timeout: timeout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    layout = Layout(*cfg["layout"])
    mix = QueryMix(layout, cfg["nx_random"], seed)
    stats = WindowedStats("dns-udp", out, cfg["t0"], cfg["window"])
    host, port = cfg["dns"]
    socks = []
    for _ in range(4):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.connect((host, port))
        s.setblocking(False)
        socks.append(s)
    import selectors
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    rate = cfg["dns_rate"]
    timeout = cfg["dns_timeout"]
    pending = collections.OrderedDict()  # id -> (sent_at, kind, expect)
    next_id = seed & 0xFFFF
    sent = 0
    start = time.monotonic()
    lag_max = 0.0
    while not stop.is_set():
        now = time.monotonic()
        due = int((now - start) * rate) - sent
        if due > 200:
            # the driver itself fell behind (CPU starved): note it, do not burst
            lag_max = max(lag_max, due / rate)
            stats.stat("client").add(None, "send-lag")
            sent += due - 200
            due = 200
        for _ in range(due):
            kind, q, expect = mix.next()
            qid = next_id
            next_id = (next_id + 1) & 0xFFFF
            if qid in pending:  # 65536 queries ago and still unanswered: count it now
                t, k, _e = pending.pop(qid)
                stats.stat("dns", t).add(None, "timeout")
            msg = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 1) + q + EDNS_OPT
            sent_at = time.monotonic()
            try:
                socks[qid & 3].send(msg)
            except OSError as e:
                stats.stat("dns", sent_at).add(None, "send-" + (e.__class__.__name__))
                sent += 1
                continue
            pending[qid] = (sent_at, kind, expect)
            sent += 1
        # receive until the next send is due (at most 5 ms, at least one poll)
        wait = max(0.0, min(0.005, start + (sent + 1) / rate - time.monotonic()))
        for key, _ in sel.select(wait):
            while True:
                try:
                    msg = key.fileobj.recv(4096)
                except BlockingIOError:
                    break
                except OSError:
                    stats.stat("dns").add(None, "recv-error")
                    break
                got = time.monotonic()
                if len(msg) < 2:
                    continue
                qid = struct.unpack_from("!H", msg)[0]
                entry = pending.pop(qid, None)
                if entry is None:
                    stats.stat("client").add(None, "late-or-unknown-id")
                    continue
                sent_at, kind, expect = entry
                stats.stat("dns", sent_at).add(got - sent_at, mix.check(kind, expect, msg))
                if len(msg) > 3 and msg[2] & 0x02:
                    # a big SRV answer cut at a whole record, as it should be; a real
                    # client retries over TCP, which the TCP client exercises anyway
                    stats.stat("client").add(None, "dns-udp-srv-truncated")
        now = time.monotonic()
        while pending:
            qid, (sent_at, kind, expect) = next(iter(pending.items()))
            if now - sent_at < timeout:
                break
            pending.popitem(last=False)
            stats.stat("dns", sent_at).add(None, "timeout")
    # the last answers
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(0.05):
            try:
                msg = key.fileobj.recv(4096)
            except OSError:
                continue
            entry = pending.pop(struct.unpack_from("!H", msg)[0], None)
            if entry:
                sent_at, kind, expect = entry
                stats.stat("dns", sent_at).add(time.monotonic() - sent_at, mix.check(kind, expect, msg))
    for sent_at, kind, expect in pending.values():
        stats.stat("dns", sent_at).add(None, "timeout")
    if lag_max:
        stats.stat("client").add(None, "send-lag-max-%.1fs" % lag_max)
    stats.flush()


def dns_tcp_loop(cfg, stats, stop, seed):
    """DNS over TCP at cfg.dns_tcp_rate: each connection carries 1 to 8 queries,
    some pipelined two at a time, then closes, so connections churn."""
    layout = Layout(*cfg["layout"])
    mix = QueryMix(layout, cfg["nx_random"], seed)
    rng = random.Random(seed)
    host, port = cfg["dns"]
    rate = cfg["dns_tcp_rate"]
    if rate <= 0:
        return
    start = time.monotonic()
    sent = 0
    conn = None
    left = 0

    def read_exact(sock, n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    while not stop.is_set():
        target = start + sent / rate
        delay = target - time.monotonic()
        if delay > 0:
            stop.wait(delay)
            continue
        batch = 2 if rng.random() < 0.2 else 1
        qs = []
        for b in range(batch):
            kind, q, expect = mix.next()
            qid = rng.getrandbits(16)
            qs.append((qid, kind, expect, struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + q))
        sent += batch
        t = time.monotonic()
        try:
            if conn is None:
                conn = socket.create_connection((host, port), timeout=cfg["dns_timeout"])
                left = rng.randint(1, 8)
            conn.sendall(b"".join(struct.pack("!H", len(m)) + m for _, _, _, m in qs))
            for qid, kind, expect, _m in qs:
                length = struct.unpack("!H", read_exact(conn, 2))[0]
                msg = read_exact(conn, length)
                err = mix.check(kind, expect, msg)
                if err is None and struct.unpack_from("!H", msg)[0] != qid:
                    err = "wrong-id"
                stats.stat("dns-tcp", t).add(time.monotonic() - t, err)
            left -= batch
            if left <= 0:
                conn.close()
                conn = None
        except socket.timeout:
            for _ in qs:
                stats.stat("dns-tcp", t).add(None, "timeout")
            conn = close_quietly(conn)
        except OSError as e:
            for _ in qs:
                stats.stat("dns-tcp", t).add(None, "conn-" + e.__class__.__name__)
            conn = close_quietly(conn)
    close_quietly(conn)


def close_quietly(conn):
    if conn is not None:
        try:
            conn.close()
        except OSError:
            pass
    return None


# ---------------------------------------------------------------------------
# HTTP load: a paced schedule shared by a few keep-alive workers.


class HttpClient:
    def __init__(self, addr, timeout):
        self.host, self.port = addr
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None):
        """(status, body bytes); raises OSError/HTTPException after closing."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (0, 1):
            fresh = self.conn is None
            if fresh:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body, headers)
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                # a keep-alive connection the server closed between requests
                # (idle timeout) is retried once on a new one; anything else counts
                self.close()
                if fresh or attempt == 1:
                    raise e
            except Exception:
                self.close()
                raise
        raise RuntimeError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def http_error_kind(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    return "conn-" + e.__class__.__name__


class HttpLoad:
    """Operations: heartbeat of a TTL-checked instance (35 %, round robin so each
    stays alive), ephemeral register/deregister (25 %), unchanged re-registration
    of a stable instance (10 %), GET a service (15 %), resolve (10 %), status (5 %)."""

    def __init__(self, cfg, stats, stop, seed):
        self.cfg, self.stats, self.stop = cfg, stats, stop
        self.layout = Layout(*cfg["layout"])
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.ttl = [i for i in self.layout.instances if i["role"] == "ttl"]
        self.hb_next = 0
        self.stable = self.layout.stable()
        self.ephemeral = collections.deque()
        self.eph_seq = 0
        self.scheduled = 0
        self.start = time.monotonic()

    def next_op(self):
        with self.lock:
            at = self.start + self.scheduled / self.cfg["http_rate"]
            self.scheduled += 1
            r = self.rng.random()
            if r < 0.35:
                inst = self.ttl[self.hb_next % len(self.ttl)]
                self.hb_next += 1
                body = json.dumps({"load": round(self.rng.random() * 100, 1)}) if self.rng.random() < 0.5 else None
                return at, "heartbeat", "PUT", "/v1/services/%s/instances/%s/heartbeat" % (inst["service"], inst["id"]), body, (200,)
            if r < 0.60:
                if len(self.ephemeral) >= 50 or (self.ephemeral and self.rng.random() < 0.5):
                    service, ident = self.ephemeral.popleft()
                    return at, "deregister", "DELETE", "/v1/services/%s/instances/%s" % (service, ident), None, (200,)
                s = self.rng.randrange(len(self.layout.services))
                service = self.layout.services[s]
                if self.rng.random() < self.cfg["service_churn"]:
                    # a service name used once (per-job or per-deploy names): whatever
                    # the daemon keeps per service name must not pile up
                    service = "tmp-%d" % self.eph_seq
                body = json.dumps({"address": self.layout.ephemeral_address(s), "port": 9000 + self.eph_seq % 1000,
                                   "check": {"type": "ttl", "ttl": "1h"}, "tags": ["eph"]})
                self.eph_seq += 1
                if self.eph_seq % 4 == 0:
                    return at, "register-post", "POST", "/v1/services/%s/instances" % service, body, (201,)
                ident = "eph-%d" % self.eph_seq
                return at, "register", "PUT", "/v1/services/%s/instances/%s" % (service, ident), body, (201,)
            if r < 0.70:
                inst = self.rng.choice(self.stable)
                return at, "reregister", "PUT", "/v1/services/%s/instances/%s" % (inst["service"], inst["id"]), registration_body(inst), (200,)
            service = self.rng.choice(self.layout.services)
            if r < 0.85:
                return at, "get-service", "GET", "/v1/services/" + service, None, (200,)
            if r < 0.95:
                return at, "resolve", "GET", "/v1/resolve/" + service, None, (200,)
            return at, "status", "GET", "/v1/status", None, (200,)

    def worker(self):
        client = HttpClient(self.cfg["http"], self.cfg["http_timeout"])
        stable_ids = {}
        for i in self.stable:
            stable_ids.setdefault(i["service"], set()).add(i["id"])
        while not self.stop.is_set():
            at, kind, method, path, body, ok = self.next_op()
            delay = at - time.monotonic()
            if delay > 0:
                if self.stop.wait(delay):
                    break
            elif delay < -1.0:
                self.stats.stat("client").add(None, "http-behind-1s")
            t = time.monotonic()
            try:
                status, data = client.request(method, path, body)
            except Exception as e:  # noqa: BLE001
                self.stats.stat("http", t).add(None, http_error_kind(e))
                self.stats.stat("http:" + kind, t).add(None, http_error_kind(e))
                continue
            latency = time.monotonic() - t
            err = None
            if status not in ok:
                err = "http-%d" % status
            elif kind == "register-post":
                with self.lock:
                    self.ephemeral.append((path.split("/")[3], json.loads(data)["id"]))
            elif kind == "register":
                with self.lock:
                    self.ephemeral.append((path.split("/")[3], path.split("/")[5]))
            elif kind == "get-service":
                got = {i["id"] for i in json.loads(data)["instances"]}
                if not stable_ids[path.split("/")[3]] <= got:
                    err = "stable-instance-missing"
            self.stats.stat("http", t).add(latency, err)
            self.stats.stat("http:" + kind, t).add(latency, err)
        client.close()


def load_main(cfg, out, stop, seed):
    """The second load process: HTTP workers and the DNS-over-TCP client."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stats = LockedStats(WindowedStats("load", out, cfg["t0"], cfg["window"]))
    load = HttpLoad(cfg, stats, stop, seed)
    threads = [threading.Thread(target=load.worker, daemon=True) for _ in range(cfg["http_workers"])]
    threads.append(threading.Thread(target=dns_tcp_loop, args=(cfg, stats, stop, seed + 1), daemon=True))
    for t in threads:
        t.start()
    while not stop.wait(0.5):
        stats.tick()
    for t in threads:
        t.join(cfg["http_timeout"] + 5)
    stats.flush()


class LockedStats:
    """WindowedStats shared by threads."""

    def __init__(self, inner):
        self.inner = inner
        self.lock = threading.Lock()

    def stat(self, kind, at=None):
        return LockedStat(self, kind, at)

    def tick(self):
        with self.lock:
            self.inner.stat("client")  # flushes a finished window even when idle

    def flush(self):
        with self.lock:
            self.inner.flush()


class LockedStat:
    def __init__(self, owner, kind, at):
        self.owner, self.kind, self.at = owner, kind, at

    def add(self, latency, error=None):
        with self.owner.lock:
            self.owner.inner.stat(self.kind, self.at).add(latency, error)


# ---------------------------------------------------------------------------
# Flapping: take an instance's target down, wait until the checker removed it
# (GET /v1/services/...), bring it back and register it again.


class Flapper:
    def __init__(self, cfg, layout, targets, stats, stop):
        self.cfg, self.layout, self.targets, self.stats, self.stop = cfg, layout, targets, stats, stop
        self.free = layout.flapping()
        random.Random(7).shuffle(self.free)
        self.lock = threading.Lock()
        self.taken_down = {}  # id -> monotonic time it went down (current flap)
        self.downs = collections.Counter()  # id -> times taken down

    def run(self):
        client = HttpClient(self.cfg["http"], self.cfg["http_timeout"])
        while not self.stop.is_set():
            with self.lock:
                inst = self.free.pop(0)
            try:
                self.flap(client, inst)
            except Exception as e:  # noqa: BLE001
                self.stats.stat("flap").add(None, "flap-" + e.__class__.__name__)
                client.close()
            with self.lock:
                self.free.append(inst)
        client.close()

    def flap(self, client, inst):
        ident, service = inst["id"], inst["service"]
        with self.lock:
            self.taken_down[ident] = time.monotonic()
            self.downs[ident] += 1
        self.targets.call("down", ident)
        t_down = time.monotonic()
        deadline = t_down + 30
        while True:
            if self.stop.wait(0.1):
                self.targets.call("up", ident)
                return
            status, data = client.request("GET", "/v1/services/" + service)
            if status != 200:
                self.stats.stat("flap", t_down).add(None, "get-http-%d" % status)
                break
            if ident not in {i["id"] for i in json.loads(data)["instances"]}:
                self.stats.stat("flap", t_down).add(time.monotonic() - t_down)
                break
            if time.monotonic() > deadline:
                self.stats.stat("flap", t_down).add(None, "not-removed-in-30s")
                break
        self.targets.call("up", ident)
        t = time.monotonic()
        status, _ = client.request("PUT", "/v1/services/%s/instances/%s" % (service, ident), registration_body(inst))
        self.stats.stat("flap-register", t).add(time.monotonic() - t, None if status in (200, 201) else "http-%d" % status)
        # stays up a moment before it can be picked again
        self.stop.wait(self.cfg["flap_up"])


# ---------------------------------------------------------------------------
# Processes we start, and resource sampling.


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_command(addr, *args):
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args)).encode())
        f = s.makefile("rb")
        line = f.readline()
        if line[:1] == b"$":
            n = int(line[1:])
            return f.read(n + 2)[:-2].decode()
        if line[:1] == b":":
            return int(line[1:])
        if line[:1] == b"-":
            raise RuntimeError(line.decode().strip())
        return line[1:].decode().strip()


class Resp:
    """A minimal RESP2 client on one connection (for the key census)."""

    def __init__(self, addr):
        self.sock = socket.create_connection(addr, timeout=5)
        self.f = self.sock.makefile("rb")

    def command(self, *args):
        self.sock.sendall(("*%d\r\n" % len(args) + "".join(
            "$%d\r\n%s\r\n" % (len(str(a)), a) for a in args)).encode())
        return self.reply()

    def reply(self):
        line = self.f.readline()
        t, rest = line[:1], line[1:].strip()
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2].decode(errors="replace")
        if t == b":":
            return int(rest)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        if t == b"-":
            raise RuntimeError(rest.decode())
        return rest.decode()

    def close(self):
        self.sock.close()


def redis_census(addr):
    """Keys grouped by shape (digits as #), with how many have no expiry: a key
    family without a TTL whose count follows the traffic is unbounded."""
    r = Resp(addr)
    families = {}
    cursor = "0"
    while True:
        cursor, keys = r.command("SCAN", cursor, "COUNT", 1000)
        for k in keys:
            shape = re.sub(r"[0-9a-f]{16}", "<hex16>", k)
            shape = re.sub(r"\d+", "#", shape)
            f = families.setdefault(shape, {"keys": 0, "no_ttl": 0, "example": k})
            f["keys"] += 1
            if r.command("PTTL", k) == -1:
                f["no_ttl"] += 1
        if cursor == "0":
            break
    r.close()
    return dict(sorted(families.items(), key=lambda kv: -kv[1]["keys"]))


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "VmSize", "Threads", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0])
    return out


def proc_cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def slope_per_s(points):
    """Least-squares slope of [(t, y)]."""
    if len(points) < 3:
        return 0.0
    n = len(points)
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / den if den else 0.0


# ---------------------------------------------------------------------------


def refuse(message):
    print("soak: " + message, file=sys.stderr)
    sys.exit(2)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=300, help="seconds of load (default 300)")
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds excluded from the growth verdict (default: 20%% of the run, 30 to 120 s)")
    ap.add_argument("--sample", type=float, default=5, help="sampling window, seconds (default 5)")
    ap.add_argument("--services", type=int, default=50)
    ap.add_argument("--per-service", type=int, default=6)
    ap.add_argument("--dns-rate", type=float, default=2000, help="UDP queries/s (default 2000)")
    ap.add_argument("--dns-procs", type=int, default=1, help="UDP client processes sharing --dns-rate")
    ap.add_argument("--dns-tcp-rate", type=float, default=50, help="TCP queries/s (default 50)")
    ap.add_argument("--dns-timeout", type=float, default=2.0)
    ap.add_argument("--nx-random", action="store_true",
                    help="NXDOMAIN queries for random names instead of 1,000 fixed ones")
    ap.add_argument("--http-rate", type=float, default=100, help="HTTP requests/s (default 100)")
    ap.add_argument("--http-workers", type=int, default=8)
    ap.add_argument("--http-timeout", type=float, default=5.0)
    ap.add_argument("--service-churn", type=float, default=0.1,
                    help="fraction of ephemeral registrations made in a new, never reused service name (default 0.1)")
    ap.add_argument("--flaps", type=int, default=6, help="instances being flapped at any time (default 6)")
    ap.add_argument("--flap-up", type=float, default=2.0, help="seconds a flapped instance stays up before reuse")
    ap.add_argument("--check-interval", default="1s")
    ap.add_argument("--check-timeout", default="500ms")
    ap.add_argument("--check-failures", type=int, default=3)
    ap.add_argument("--bind", default="127.0.0.1", help="daemon listen address; must be loopback")
    ap.add_argument("--redis", default=None,
                    help="use this Redis (loopback HOST:PORT, flushed!) instead of starting one; 'none': no Redis")
    ap.add_argument("--synchronous", choices=("full", "normal"), default="full")
    ap.add_argument("--discoveryd", default=os.environ.get("DISCOVERYD", os.path.join(ROOT, "build", "discoveryd")))
    ap.add_argument("--wrapper", default="",
                    help="command prefix for the daemon, e.g. 'heaptrack -o /tmp/soak-heap' (the daemon's own "
                         "PID is read from its ready file)")
    ap.add_argument("--out", default=None, help="results directory (default bench/results/soak-<timestamp>)")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory (DB, logs)")
    # verdict thresholds
    ap.add_argument("--max-rss-growth-mb", type=float, default=8.0,
                    help="fail if the daemon's RSS trend over the second half of the steady state, "
                         "extrapolated over the whole steady state, exceeds this (default 8)")
    ap.add_argument("--max-fd-growth", type=int, default=4,
                    help="fail if the fd floor of the last quarter exceeds the fd ceiling of the "
                         "first quarter of the steady state by more than this (default 4)")
    ap.add_argument("--max-wal-mb", type=float, default=64.0)
    ap.add_argument("--max-db-growth-mb", type=float, default=4.0)
    ap.add_argument("--max-redis-growth-mb", type=float, default=8.0)
    ap.add_argument("--max-timeout-fraction", type=float, default=1e-4,
                    help="DNS/HTTP timeouts tolerated as a fraction of requests (loaded machine; default 1e-4)")
    a = ap.parse_args()
    if not is_loopback(a.bind):
        refuse("--bind %s is not a loopback address; this benchmark only runs on loopback" % a.bind)
    if a.redis not in (None, "none"):
        host = a.redis.rsplit(":", 1)[0].strip("[]")
        if not is_loopback(host):
            refuse("--redis %s is not on loopback" % a.redis)
    if a.warmup is None:
        a.warmup = min(120.0, max(30.0, a.duration * 0.2))
    if a.warmup >= a.duration:
        refuse("--warmup must be shorter than --duration")
    return a


def main():
    a = parse_args()
    mp.set_start_method("fork")
    if not os.access(a.discoveryd, os.X_OK):
        print("soak: %s not built (cmake --build build --target discoveryd)" % a.discoveryd, file=sys.stderr)
        return 2
    out_dir = a.out or os.path.join(ROOT, "bench", "results", "soak-" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="soak.")
    children = []  # (name, Popen)
    mp_children = []
    try:
        return run(a, out_dir, tmp, children, mp_children)
    finally:
        for p in mp_children:
            if p.is_alive():
                p.kill()
                p.join(5)
        for name, p in reversed(children):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for log in ("daemon.log", "redis.log"):
            if os.path.exists(os.path.join(tmp, log)):
                shutil.copy(os.path.join(tmp, log), out_dir)
        if a.keep:
            print("soak: kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(a, out_dir, tmp, children, mp_children):
    log = lambda *x: print(time.strftime("%H:%M:%S"), *x, flush=True)  # noqa: E731
    # a second octet nothing else on this machine uses, so every instance has its
    # own loopback address (127.OCTET.service.k) and all listen on port 8080
    octet = None
    for candidate in random.Random().sample(range(100, 250), 40):
        try:
            with socket.socket() as s:
                s.bind(("127.%d.0.1" % candidate, 8080))
            octet = candidate
            break
        except OSError:
            continue
    if octet is None:
        log("soak: no free 127.x.0.1:8080")
        return 2
    layout_args = (a.services, a.per_service, octet)
    layout = Layout(*layout_args)

    # Redis
    redis_addr = None
    redis_pid = None
    if a.redis == "none":
        redis_spec = "none"
    elif a.redis:
        host, port = a.redis.rsplit(":", 1)
        redis_addr = (host.strip("[]"), int(port))
        redis_command(redis_addr, "FLUSHALL")
        redis_spec = a.redis
    else:
        port = free_port()
        p = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                              "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
                              "--dir", tmp, "--logfile", os.path.join(tmp, "redis.log")])
        children.append(("redis", p))
        redis_addr = ("127.0.0.1", port)
        redis_pid = p.pid
        for _ in range(100):
            try:
                if redis_command(redis_addr, "PING") == "PONG":
                    break
            except OSError:
                time.sleep(0.1)
        else:
            log("soak: redis-server did not start")
            return 2
        redis_spec = "127.0.0.1:%d" % port

    # discoveryd
    db = os.path.join(tmp, "soak.db")
    conf = os.path.join(tmp, "discoveryd.toml")
    with open(conf, "w") as f:
        f.write('# written by bench/soak/soak.py\n[store]\nsynchronous = "%s"\n' % a.synchronous)
    ready = os.path.join(tmp, "ready.json")
    cmd = shlex.split(a.wrapper) + [a.discoveryd, "--config", conf, "--db", db, "--redis", redis_spec,
           "--http-listen", "%s:0" % a.bind, "--dns-listen", "%s:0" % a.bind,
           "--zones", os.path.join(ROOT, "zones"), "--log-level", "info", "--ready-file", ready,
           "--check-interval", a.check_interval, "--check-timeout", a.check_timeout,
           "--check-failures", str(a.check_failures)]
    daemon_log = open(os.path.join(tmp, "daemon.log"), "w")
    daemon = subprocess.Popen(cmd, stdout=daemon_log, stderr=subprocess.STDOUT)
    children.append(("discoveryd", daemon))
    deadline = time.monotonic() + 30
    while not os.path.exists(ready):
        if daemon.poll() is not None or time.monotonic() > deadline:
            log("soak: discoveryd did not start; log:")
            print(open(os.path.join(tmp, "daemon.log")).read()[-3000:])
            return 2
        time.sleep(0.1)
    endpoints = json.load(open(ready))
    pid = int(endpoints.get("pid", daemon.pid))  # not the wrapper's

    def split(hp):
        host, port = hp.rsplit(":", 1)
        return host.strip("[]"), int(port)

    http_addr, dns_addr = split(endpoints["http"]), split(endpoints["dns"])
    for host in (http_addr[0], dns_addr[0]):
        if not is_loopback(host):
            log("soak: the daemon bound %s, not loopback; refusing to load it" % host)
            return 2
    api = HttpClient(http_addr, 10)
    if redis_addr:
        deadline = time.monotonic() + 30
        while True:
            status, data = api.request("GET", "/v1/status")
            if json.loads(data).get("cache", {}).get("redis_trusted"):
                break
            if time.monotonic() > deadline:
                log("soak: the daemon never trusted Redis: " + data.decode()[:500])
                return 2
            time.sleep(0.2)
    log("discoveryd pid %d http %s dns %s redis %s; %s" % (pid, endpoints["http"], endpoints["dns"], redis_spec, a.discoveryd))

    # health targets, then the registrations
    targets = Targets(layout_args)
    mp_children.append(targets.proc)
    log("targets: %d listeners on 127.%d.*.*:8080" % (targets.count, octet))
    t = time.monotonic()
    for inst in layout.instances:
        status, data = api.request("PUT", "/v1/services/%s/instances/%s" % (inst["service"], inst["id"]),
                                   registration_body(inst))
        if status != 201:
            log("soak: registering %s: HTTP %d %s" % (inst["id"], status, data[:300]))
            return 2
    log("registered %d instances of %d services in %.1f s (%d probed: %d tcp, %d http; %d ttl; %d flapping)" % (
        len(layout.instances), len(layout.services), time.monotonic() - t, len(layout.probed()),
        sum(1 for i in layout.probed() if i["check"]["type"] == "tcp"),
        sum(1 for i in layout.probed() if i["check"]["type"] == "http"),
        sum(1 for i in layout.instances if i["role"] == "ttl"), len(layout.flapping())))

    # load
    t0 = time.monotonic()
    cfg = {"layout": layout_args, "t0": t0, "window": a.sample, "dns": dns_addr, "http": http_addr,
           "dns_rate": a.dns_rate / a.dns_procs, "dns_tcp_rate": a.dns_tcp_rate, "dns_timeout": a.dns_timeout,
           "nx_random": a.nx_random, "http_rate": a.http_rate, "http_workers": a.http_workers,
           "http_timeout": a.http_timeout, "flap_up": a.flap_up, "service_churn": a.service_churn}
    results = mp.Queue()
    stop = mp.Event()
    for n in range(a.dns_procs):
        p = mp.Process(target=dns_udp_main, args=(cfg, results, stop, 1000 + n), name="soak-dns-%d" % n)
        p.start()
        mp_children.append(p)
    p = mp.Process(target=load_main, args=(cfg, results, stop, 2000), name="soak-load")
    p.start()
    mp_children.append(p)
    thread_stop = threading.Event()
    main_stats = LockedStats(WindowedStats("main", results, t0, a.sample))
    flapper = Flapper(cfg, layout, targets, main_stats, thread_stop)
    flap_threads = [threading.Thread(target=flapper.run, daemon=True) for _ in range(a.flaps)]
    for th in flap_threads:
        th.start()

    windows = collections.defaultdict(dict)  # index -> {kind: Stat}
    client_notes = Stat()

    def drain(block_until=None):
        while True:
            timeout = None if block_until is None else block_until - time.monotonic()
            try:
                if timeout is None:
                    src, index, stats = results.get_nowait()
                else:
                    if timeout <= 0:
                        return
                    src, index, stats = results.get(timeout=timeout)
            except queue.Empty:
                return
            for kind, s in stats.items():
                if kind == "client":
                    client_notes.merge(s)
                    continue
                windows[index].setdefault(kind, Stat()).merge(s)

    samples = []
    events_seen = {}  # (id, at) -> event
    unexpected_removals = []
    prev_cpu = (time.monotonic(), proc_cpu_seconds(pid))
    printed = -1
    header = ("%7s %7s %5s %4s %6s %8s %6s %6s | %7s %5s %6s %6s %7s | %5s %4s %6s %6s | %4s %5s" % (
        "t", "rss_MB", "fds", "thr", "cpu%", "wal_KB", "rkeys", "near",
        "dns/s", "err", "p50ms", "p99ms", "p999ms", "http/s", "err", "p50ms", "p99ms", "rem", "load"))
    print(header, flush=True)
    index = 0
    daemon_died = False
    while True:
        index += 1
        t_sample = t0 + index * a.sample
        end = t_sample >= t0 + a.duration - 1e-6
        drain(block_until=t_sample)
        if daemon.poll() is not None:
            daemon_died = True
            log("soak: discoveryd exited with %s during the run" % daemon.returncode)
            break
        sample = take_sample(pid, db, redis_addr, redis_pid, api, prev_cpu)
        prev_cpu = (sample["mono"], sample["cpu_s"])
        sample["t"] = round(sample["mono"] - t0, 1)
        samples.append(sample)
        # removal events must all be instances we took down
        try:
            status, data = api.request("GET", "/v1/events")
            for e in json.loads(data)["events"]:
                key = (e["id"], e["at"])
                if key in events_seen:
                    continue
                events_seen[key] = e
                if e["id"] not in flapper.downs:
                    unexpected_removals.append(e)
        except Exception as e:  # noqa: BLE001
            main_stats.stat("sampler").add(None, "events-" + e.__class__.__name__)
        # print the window before last: its stats have all arrived by now
        while printed < index - 2:
            printed += 1
            print_window(printed, a.sample, windows.get(printed, {}), samples[printed] if printed < len(samples) else None)
        main_stats.tick()
        if end:
            break
    stop.set()
    thread_stop.set()
    for th in flap_threads:
        th.join(a.http_timeout + 10)
    main_stats.flush()
    # drain while the load processes flush and exit (a process with queued
    # results does not exit until they are read)
    deadline = time.monotonic() + a.dns_timeout + a.http_timeout + 15
    while any(p.is_alive() for p in mp_children[1:]) and time.monotonic() < deadline:
        drain(block_until=time.monotonic() + 0.2)
    drain(block_until=time.monotonic() + 0.5)
    while printed < len(samples) - 1:
        printed += 1
        print_window(printed, a.sample, windows.get(printed, {}), samples[printed])
    # idle sample after the load stopped (for the report only)
    idle = None
    if not daemon_died:
        time.sleep(min(5.0, a.sample))
        idle = take_sample(pid, db, redis_addr, redis_pid, api, prev_cpu)
        idle["t"] = round(idle["mono"] - t0, 1)

    # final consistency: every stable instance is still registered
    missing = []
    if not daemon_died:
        for s, name in enumerate(layout.services):
            status, data = api.request("GET", "/v1/services/" + name)
            got = {i["id"] for i in json.loads(data)["instances"]} if status == 200 else set()
            missing += [i["id"] for i in layout.by_service[name] if not i["role"].startswith("flap") and i["id"] not in got]
        final_status = json.loads(api.request("GET", "/v1/status")[1])
    else:
        final_status = {}
    census = {}
    if redis_addr:
        try:
            census = redis_census(redis_addr)
        except (OSError, RuntimeError) as e:
            census = {"error": repr(e)}
    target_hits = targets.call("stats") if targets.proc.is_alive() else {}
    api.close()
    targets.stop()

    # shutdown
    shutdown = {}
    if not daemon_died:
        t = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        try:
            shutdown["exit_code"] = daemon.wait(30)
        except subprocess.TimeoutExpired:
            shutdown["exit_code"] = "hung"
            daemon.kill()
            daemon.wait()
        shutdown["seconds"] = round(time.monotonic() - t, 2)
    else:
        shutdown["exit_code"] = daemon.returncode
    daemon_log_path = os.path.join(tmp, "daemon.log")
    log_levels = collections.Counter()
    warnings = collections.Counter()
    with open(daemon_log_path, errors="replace") as f:
        for line in f:
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("trace", "debug", "info", "warning", "error", "critical"):
                log_levels[parts[1]] += 1
                if parts[1] in ("warning", "error", "critical"):
                    # the message without its variable parts
                    shape = re.sub(r"=\S+|\d+", "#", parts[3].strip())[:110]
                    warnings[parts[1] + " " + shape] += 1

    report = build_report(a, layout, windows, samples, idle, client_notes, flapper, unexpected_removals,
                          events_seen, missing, final_status, target_hits, shutdown, log_levels, daemon_died)
    report["redis_key_families"] = census
    report["daemon_warnings"] = dict(warnings.most_common(20))
    write_outputs(out_dir, report, samples, windows, a.sample)
    print_report(report)
    print("results:", out_dir)
    return 0 if report["verdict"]["pass"] else 1


def take_sample(pid, db, redis_addr, redis_pid, api, prev_cpu):
    now = time.monotonic()
    st = proc_status(pid)
    cpu = proc_cpu_seconds(pid)
    s = {"mono": now, "rss_kb": st.get("VmRSS"), "hwm_kb": st.get("VmHWM"), "anon_kb": st.get("RssAnon"),
         "threads": st.get("Threads"), "fds": fd_count(pid), "cpu_s": cpu,
         "cpu_pct": round(100 * (cpu - prev_cpu[1]) / max(1e-6, now - prev_cpu[0]), 1),
         "db_bytes": file_size(db), "wal_bytes": file_size(db + "-wal"), "shm_bytes": file_size(db + "-shm"),
         "loadavg1": float(open("/proc/loadavg").read().split()[0])}
    try:
        # read-only and instant: never holds a read transaction that would stall
        # the daemon's checkpoints
        with sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=1) as c:
            s["services_rows"] = c.execute("SELECT count(*) FROM services").fetchone()[0]
            s["instances_rows"] = c.execute("SELECT count(*) FROM instances").fetchone()[0]
        c.close()
    except sqlite3.Error:
        pass
    if redis_addr:
        try:
            info = redis_command(redis_addr, "INFO", "memory")
            fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
            s["redis_used_memory"] = int(fields["used_memory"])
            s["redis_keys"] = redis_command(redis_addr, "DBSIZE")
        except (OSError, RuntimeError, KeyError):
            s["redis_used_memory"] = s["redis_keys"] = None
    if redis_pid:
        try:
            s["redis_rss_kb"] = proc_status(redis_pid).get("VmRSS")
        except OSError:
            pass
    try:
        st = json.loads(api.request("GET", "/v1/status")[1])
        s["near_entries"] = st.get("cache", {}).get("near_entries")
        s["probes_started"] = st.get("health", {}).get("probes_started")
        s["probes_failed"] = st.get("health", {}).get("probes_failed")
        s["removals"] = st.get("health", {}).get("removals")
        s["health_instances"] = st.get("health", {}).get("instances")
        s["http_open"] = st.get("http", {}).get("open_connections")
        s["dns_tcp_open"] = st.get("dns", {}).get("tcp_connections_open")
    except Exception:  # noqa: BLE001
        api.close()
    return s


def print_window(i, width, w, sample):
    dns = Stat()
    for k in ("dns", "dns-tcp"):
        if k in w:
            dns.merge(w[k])
    h = w.get("http", Stat())
    s = sample or {}

    def ms(x):
        return "-" if x is None else ("%.2f" % x if x < 100 else "%.0f" % x)

    print("%7.0f %7.1f %5s %4s %6s %8.0f %6s %6s | %7.0f %5d %6s %6s %7s | %5.0f %4d %6s %6s | %4s %5s" % (
        (i + 1) * width, (s.get("rss_kb") or 0) / 1024, s.get("fds"), s.get("threads"), s.get("cpu_pct"),
        (s.get("wal_bytes") or 0) / 1024, s.get("redis_keys"), s.get("near_entries"),
        dns.n / width, sum(dns.errors.values()), ms(dns.percentile_ms(50)), ms(dns.percentile_ms(99)),
        ms(dns.percentile_ms(99.9)), h.n / width, sum(h.errors.values()), ms(h.percentile_ms(50)),
        ms(h.percentile_ms(99)), s.get("removals"), s.get("loadavg1")), flush=True)


def growth(samples, key, t_start):
    pts = [(s["t"], s[key]) for s in samples if s["t"] >= t_start and s.get(key) is not None]
    if len(pts) < 4:
        return None
    steady = pts[-1][0] - pts[0][0]
    half = [p for p in pts if p[0] >= pts[0][0] + steady / 2]
    q = max(1, len(pts) // 4)
    first, last = [y for _, y in pts[:q]], [y for _, y in pts[-q:]]
    slope = slope_per_s(half)
    return {"start": pts[0][1], "end": pts[-1][1], "min": min(y for _, y in pts), "max": max(y for _, y in pts),
            "first_quarter_max": max(first), "last_quarter_min": min(last),
            "slope_second_half_per_s": slope, "slope_all_per_s": slope_per_s(pts),
            "projected_over_steady": slope * steady, "steady_seconds": steady}


def build_report(a, layout, windows, samples, idle, client_notes, flapper, unexpected_removals, events_seen,
                 missing, final_status, target_hits, shutdown, log_levels, daemon_died):
    total = collections.defaultdict(Stat)
    steady_stats = collections.defaultdict(Stat)
    n_windows = int(math.ceil(a.duration / a.sample))
    for i, w in windows.items():
        for kind, s in w.items():
            total[kind].merge(s)
            if (i + 1) * a.sample > a.warmup:
                steady_stats[kind].merge(s)
    dns_all = Stat()
    for k in ("dns", "dns-tcp"):
        dns_all.merge(total[k])
    g = {k: growth(samples, k, a.warmup) for k in
         ("rss_kb", "fds", "threads", "db_bytes", "wal_bytes", "redis_used_memory", "redis_keys", "near_entries",
          "services_rows", "instances_rows")}
    fails = []
    # errors: anything but timeouts fails; timeouts up to a small fraction (a loaded machine)
    for kind in sorted(total):
        s = total[kind]
        for err, count in sorted(s.errors.items()):
            if err == "timeout" and count <= a.max_timeout_fraction * s.n:
                continue
            fails.append("%s: %d x %s" % (kind, count, err))
    removed = collections.Counter(e["id"] for e in events_seen.values())
    for ident, count in sorted(removed.items()):
        if ident in flapper.downs and count > flapper.downs[ident]:
            unexpected_removals.append({"id": ident, "reason": "removed %d times, taken down %d times"
                                        % (count, flapper.downs[ident])})
    if unexpected_removals:
        fails.append("%d removals of instances that were never taken down: %s" % (
            len(unexpected_removals), ", ".join(e["id"] for e in unexpected_removals[:10])))
    if missing:
        fails.append("stable instances missing at the end: " + ", ".join(missing[:10]))
    if daemon_died:
        fails.append("discoveryd died during the run")
    if shutdown.get("exit_code") != 0:
        fails.append("discoveryd exit code on SIGTERM: %s" % shutdown.get("exit_code"))
    if g["rss_kb"] and g["rss_kb"]["projected_over_steady"] / 1024 > a.max_rss_growth_mb:
        fails.append("RSS grows: %.0f KB/s over the second half, %.1f MB projected over the steady state (limit %.1f)"
                     % (g["rss_kb"]["slope_second_half_per_s"], g["rss_kb"]["projected_over_steady"] / 1024, a.max_rss_growth_mb))
    for key in ("fds", "threads"):
        x = g[key]
        slack = a.max_fd_growth if key == "fds" else 0
        if x and x["last_quarter_min"] > x["first_quarter_max"] + slack:
            fails.append("%s grow: floor of the last quarter %d > ceiling of the first quarter %d + %d"
                         % (key, x["last_quarter_min"], x["first_quarter_max"], slack))
    if g["wal_bytes"] and g["wal_bytes"]["max"] > a.max_wal_mb * 1e6:
        fails.append("WAL reached %.1f MB (limit %.0f)" % (g["wal_bytes"]["max"] / 1e6, a.max_wal_mb))
    if g["db_bytes"] and g["db_bytes"]["end"] - g["db_bytes"]["start"] > a.max_db_growth_mb * 1e6:
        fails.append("database file grew %.1f MB in the steady state" % ((g["db_bytes"]["end"] - g["db_bytes"]["start"]) / 1e6))
    if g["redis_used_memory"] and g["redis_used_memory"]["projected_over_steady"] > a.max_redis_growth_mb * 1048576:
        fails.append("Redis used_memory grows: %.1f MB projected" % (g["redis_used_memory"]["projected_over_steady"] / 1048576))
    flap = total.get("flap", Stat())
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "args": vars(a),
        "host": {"nproc": os.cpu_count(), "loadavg_during": [s["loadavg1"] for s in samples],
                 "kernel": os.uname().release},
        "layout": {"services": len(layout.services), "instances": len(layout.instances),
                   "probed": len(layout.probed()), "ttl": sum(1 for i in layout.instances if i["role"] == "ttl"),
                   "flapping": len(layout.flapping())},
        "windows": n_windows,
        "totals": {k: v.summary() for k, v in sorted(total.items())},
        "steady": {k: v.summary() for k, v in sorted(steady_stats.items())},
        "dns_all": dns_all.summary(),
        "rates": {"dns_udp_per_s": rnd(total["dns"].n / a.duration, 1),
                  "dns_tcp_per_s": rnd(total["dns-tcp"].n / a.duration, 1),
                  "http_per_s": rnd(total["http"].n / a.duration, 1),
                  "removals_per_s": rnd(flap.ok / a.duration, 2),
                  "probes_per_s": rnd(((samples[-1].get("probes_started") or 0) - (samples[0].get("probes_started") or 0))
                                      / max(1, samples[-1]["t"] - samples[0]["t"]), 1) if samples else None},
        "removal_seen_s": flap.summary(),
        "removal_events": len(events_seen),
        "unexpected_removals": unexpected_removals[:50],
        "client_notes": dict(client_notes.errors),
        "growth": g,
        "first_sample": samples[0] if samples else None,
        "steady_start_sample": next((s for s in samples if s["t"] >= a.warmup), None),
        "last_sample": samples[-1] if samples else None,
        "idle_sample": idle,
        "final_status": final_status,
        "target_hits": target_hits,
        "shutdown": shutdown,
        "daemon_log_levels": dict(log_levels),
        "verdict": {"pass": not fails, "failures": fails},
    }


def write_outputs(out_dir, report, samples, windows, width):
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    keys = ["t", "rss_kb", "hwm_kb", "anon_kb", "fds", "threads", "cpu_pct", "db_bytes", "wal_bytes", "shm_bytes",
            "redis_used_memory", "redis_keys", "redis_rss_kb", "near_entries", "services_rows", "instances_rows", "health_instances", "probes_started",
            "probes_failed", "removals", "http_open", "dns_tcp_open", "loadavg1"]
    with open(os.path.join(out_dir, "samples.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys + ["dns_n", "dns_errors", "dns_p50_ms", "dns_p99_ms", "dns_p999_ms", "dns_max_ms",
                           "http_n", "http_errors", "http_p50_ms", "http_p99_ms", "http_max_ms"])
        for i, s in enumerate(samples):
            win = windows.get(i, {})
            d = Stat()
            for k in ("dns", "dns-tcp"):
                if k in win:
                    d.merge(win[k])
            h = win.get("http", Stat())
            w.writerow([s.get(k) for k in keys] + [
                d.n, sum(d.errors.values()), rnd(d.percentile_ms(50)), rnd(d.percentile_ms(99)),
                rnd(d.percentile_ms(99.9)), rnd(d.max * 1000),
                h.n, sum(h.errors.values()), rnd(h.percentile_ms(50)), rnd(h.percentile_ms(99)), rnd(h.max * 1000)])
    with open(os.path.join(out_dir, "report.txt"), "w") as f:
        print_report(report, f)


def print_report(r, f=sys.stdout):
    p = lambda *x: print(*x, file=f)  # noqa: E731
    a = r["args"]
    p("\n=== discoveryd soak report, %s ===" % r["date"])
    p("run: %.0f s (warm-up %.0f s), %d services x %d instances (%d probed every %s, %d ttl, %d flapping), "
      "redis %s, synchronous=%s" % (a["duration"], a["warmup"], r["layout"]["services"], a["per_service"],
                                     r["layout"]["probed"], a["check_interval"], r["layout"]["ttl"],
                                     r["layout"]["flapping"], a["redis"] or "own", a["synchronous"]))
    la = r["host"]["loadavg_during"]
    if la:
        p("machine: %d CPUs, load average during the run %.1f to %.1f (median %.1f)" % (
            r["host"]["nproc"], min(la), max(la), sorted(la)[len(la) // 2]))
    rt = r["rates"]
    p("achieved rates: DNS UDP %s/s, DNS TCP %s/s, HTTP %s/s, removals %s/s, health probes %s/s" % (
        rt["dns_udp_per_s"], rt["dns_tcp_per_s"], rt["http_per_s"], rt["removals_per_s"], rt["probes_per_s"]))
    p("\n%-22s %9s %8s %8s %8s %8s %9s  %s" % ("operation", "count", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "errors", "by kind"))
    for kind, s in r["totals"].items():
        errs = sum(s["errors"].values())
        p("%-22s %9d %8s %8s %8s %8s %9d  %s" % (kind, s["n"], s["p50_ms"], s["p99_ms"], s["p999_ms"], s["max_ms"],
                                                errs, ", ".join("%s %d" % kv for kv in sorted(s["errors"].items()))))
    p("(flap: from the target going down to the instance gone from GET /v1/services; "
      "%d removal events, %d unexpected)" % (r["removal_events"], len(r["unexpected_removals"])))
    if r["client_notes"]:
        p("driver notes (not daemon errors): %s" % r["client_notes"])
    p("\n%-18s %12s %12s %12s %12s %14s" % ("resource", "first", "steady start", "end", "max", "trend 2nd half"))
    first, steady, last = r["first_sample"] or {}, r["steady_start_sample"] or {}, r["last_sample"] or {}
    units = {"rss_kb": ("RSS MB", 1 / 1024, "KB/s", 1), "fds": ("open fds", 1, "/min", 60),
             "threads": ("threads", 1, "/min", 60), "db_bytes": ("DB MB", 1e-6, "KB/min", 60 / 1e3),
             "wal_bytes": ("WAL MB", 1e-6, "KB/min", 60 / 1e3),
             "redis_used_memory": ("Redis used MB", 1 / 1048576, "KB/min", 60 / 1024),
             "redis_keys": ("Redis keys", 1, "/min", 60), "near_entries": ("near entries", 1, "/min", 60),
             "services_rows": ("services rows", 1, "/min", 60), "instances_rows": ("instances rows", 1, "/min", 60)}
    for key, (label, scale, unit, uscale) in units.items():
        g = r["growth"].get(key)
        if not g:
            continue
        fmt = lambda v: "-" if v is None else ("%.1f" % (v * scale) if scale != 1 else "%d" % v)  # noqa: E731
        p("%-18s %12s %12s %12s %12s %9.1f %s" % (label, fmt(first.get(key)), fmt(steady.get(key)), fmt(last.get(key)),
                                                  fmt(g["max"]), g["slope_second_half_per_s"] * uscale, unit))
    idle = r["idle_sample"]
    if idle:
        p("after the load stopped: RSS %.1f MB, %d fds, %d threads" % (idle["rss_kb"] / 1024, idle["fds"], idle["threads"]))
    fam = r.get("redis_key_families") or {}
    if fam and "error" not in fam:
        p("Redis keys at the end by shape: " + "; ".join(
            "%s %d (%d without TTL)" % (k, v["keys"], v["no_ttl"]) for k, v in list(fam.items())[:8]))
    c = (r.get("final_status") or {}).get("cache") or {}
    if c:
        p("cache at the end: near hits %s, redis hits %s, db reads %s, fallbacks to SQLite %s, redis errors %s, "
          "invalidation failures %s, outbox replays %s" % tuple(c.get(k) for k in (
              "near_hits", "redis_hits", "db_reads", "fallbacks", "redis_errors", "invalidation_failures",
              "outbox_replays")))
    for msg, count in (r.get("daemon_warnings") or {}).items():
        p("  daemon log %5d x %s" % (count, msg))
    p("shutdown on SIGTERM: %s; daemon log lines by level: %s" % (r["shutdown"], r["daemon_log_levels"]))
    v = r["verdict"]
    p("\nVERDICT: %s" % ("PASS" if v["pass"] else "FAIL"))
    for x in v["failures"]:
        p("  - " + x)


if __name__ == "__main__":
    sys.exit(main())
