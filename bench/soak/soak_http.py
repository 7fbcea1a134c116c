"""Soak benchmark, HTTP load (see soak.py): a keep-alive client (HttpClient),
the paced mix of heartbeats, registrations, deregistrations and reads shared by
a few worker threads (HttpLoad) in the second load process (load_main, which
also runs the DNS-over-TCP client), and the flapping threads of the main
process (Flapper)."""
import collections
import http.client
import json
import random
import signal
import socket
import threading
import time

from soak_dns import dns_tcp_loop
from soak_stats import LockedStats, WindowedStats
from soak_targets import Layout, registration_body

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


