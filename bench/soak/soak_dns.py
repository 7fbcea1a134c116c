"""Soak benchmark, DNS load (see soak.py): name encoding, the query mix and its
answer checker (QueryMix), the open-loop UDP client process (dns_udp_main) and
the DNS-over-TCP client thread with churning connections (dns_tcp_loop)."""
import collections
import random
import selectors
import signal
import socket
import struct
import time

from soak_stats import WindowedStats
from soak_targets import Layout

DOMAIN = "discovery."

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


class UdpClient:
    """The UDP client's state: 4 connected sockets, the queries in flight by id
    (oldest first) and how many have been sent since the start."""

    def __init__(self, cfg, stats, seed):
        self.stats = stats
        self.mix = QueryMix(Layout(*cfg["layout"]), cfg["nx_random"], seed)
        host, port = cfg["dns"]
        self.socks = []
        for _ in range(4):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.connect((host, port))
            s.setblocking(False)
            self.socks.append(s)
        self.sel = selectors.DefaultSelector()
        for s in self.socks:
            self.sel.register(s, selectors.EVENT_READ)
        self.rate = cfg["dns_rate"]
        self.timeout = cfg["dns_timeout"]
        self.pending = collections.OrderedDict()  # id -> (sent_at, kind, expect)
        self.next_id = seed & 0xFFFF
        self.sent = 0
        self.start = time.monotonic()
        self.lag_max = 0.0

    def send_due(self):
        stats, pending = self.stats, self.pending
        now = time.monotonic()
        due = int((now - self.start) * self.rate) - self.sent
        if due > 200:
            # the driver itself fell behind (CPU starved): note it, do not burst
            self.lag_max = max(self.lag_max, due / self.rate)
            stats.stat("client").add(None, "send-lag")
            self.sent += due - 200
            due = 200
        for _ in range(due):
            kind, q, expect = self.mix.next()
            qid = self.next_id
            self.next_id = (self.next_id + 1) & 0xFFFF
            if qid in pending:  # 65536 queries ago and still unanswered: count it now
                t, k, _e = pending.pop(qid)
                stats.stat("dns", t).add(None, "timeout")
            msg = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 1) + q + EDNS_OPT
            sent_at = time.monotonic()
            try:
                self.socks[qid & 3].send(msg)
            except OSError as e:
                stats.stat("dns", sent_at).add(None, "send-" + (e.__class__.__name__))
                self.sent += 1
                continue
            pending[qid] = (sent_at, kind, expect)
            self.sent += 1

    def receive(self):
        """Receive until the next send is due (at most 5 ms, at least one poll)."""
        stats = self.stats
        wait = max(0.0, min(0.005, self.start + (self.sent + 1) / self.rate - time.monotonic()))
        for key, _ in self.sel.select(wait):
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
                entry = self.pending.pop(qid, None)
                if entry is None:
                    stats.stat("client").add(None, "late-or-unknown-id")
                    continue
                sent_at, kind, expect = entry
                stats.stat("dns", sent_at).add(got - sent_at, self.mix.check(kind, expect, msg))
                if len(msg) > 3 and msg[2] & 0x02:
                    # a big SRV answer cut at a whole record, as it should be; a real
                    # client retries over TCP, which the TCP client exercises anyway
                    stats.stat("client").add(None, "dns-udp-srv-truncated")

    def expire(self):
        pending = self.pending
        now = time.monotonic()
        while pending:
            qid, (sent_at, kind, expect) = next(iter(pending.items()))
            if now - sent_at < self.timeout:
                break
            pending.popitem(last=False)
            self.stats.stat("dns", sent_at).add(None, "timeout")

    def finish(self):
        """The last answers, then what is still unanswered counts as timeouts."""
        stats, pending = self.stats, self.pending
        deadline = time.monotonic() + self.timeout
        while pending and time.monotonic() < deadline:
            for key, _ in self.sel.select(0.05):
                try:
                    msg = key.fileobj.recv(4096)
                except OSError:
                    continue
                entry = pending.pop(struct.unpack_from("!H", msg)[0], None)
                if entry:
                    sent_at, kind, expect = entry
                    stats.stat("dns", sent_at).add(time.monotonic() - sent_at, self.mix.check(kind, expect, msg))
        for sent_at, kind, expect in pending.values():
            stats.stat("dns", sent_at).add(None, "timeout")
        if self.lag_max:
            stats.stat("client").add(None, "send-lag-max-%.1fs" % self.lag_max)
        stats.flush()


def dns_udp_main(cfg, out, stop, seed):
    """Open loop: queries leave at cfg.dns_rate whatever the answers do; each is
    matched by id, checked, timed; unanswered after cfg.dns_timeout: timeout.
    (A UDP load process: multiprocessing target.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    client = UdpClient(cfg, WindowedStats("dns-udp", out, cfg["t0"], cfg["window"]), seed)
    while not stop.is_set():
        client.send_due()
        client.receive()
        client.expire()
    client.finish()


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

