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
# The driver is split into sibling modules, imported as plain modules (this file
# is run as a script, so its directory is on sys.path; made explicit below):
# soak_stats (latency histograms, per-window stats), soak_targets (the registered
# layout and the health-target process), soak_dns (the DNS query mix, checker and
# clients), soak_http (the HTTP load, flapping), soak_system (Redis, /proc,
# helpers) and soak_report (samples, growth, the report and its verdict). This
# file holds the options and the run itself, step by step (class Soak). The load
# runs in multiprocessing children started with "fork" (main()); their targets
# (targets_main, dns_udp_main, load_main) are module-level functions.
import argparse
import json
import multiprocessing as mp
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ left in bench/soak by a run

from soak_dns import dns_udp_main  # noqa: E402
from soak_http import Flapper, HttpClient, load_main  # noqa: E402
from soak_report import build_report, print_report, print_window, scan_daemon_log, take_sample, write_outputs  # noqa: E402
from soak_stats import Collector, LockedStats, WindowedStats  # noqa: E402
from soak_system import free_port, is_loopback, proc_cpu_seconds, redis_census, redis_command  # noqa: E402
from soak_targets import Layout, Targets, registration_body  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


# ---------------------------------------------------------------------------
# Options, and the run.


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


def log(*x):
    print(time.strftime("%H:%M:%S"), *x, flush=True)


class SetupError(Exception):
    """A set-up step failed and said why: the run exits 2."""


def setup_failed(message):
    log(message)
    raise SetupError(message)


def split_host_port(hp):
    host, port = hp.rsplit(":", 1)
    return host.strip("[]"), int(port)


WINDOW_HEADER = ("%7s %7s %5s %4s %6s %8s %6s %6s | %7s %5s %6s %6s %7s | %5s %4s %6s %6s | %4s %5s" % (
    "t", "rss_MB", "fds", "thr", "cpu%", "wal_KB", "rkeys", "near",
    "dns/s", "err", "p50ms", "p99ms", "p999ms", "http/s", "err", "p50ms", "p99ms", "rem", "load"))


class Soak:
    """One run, step by step: the attributes are what the steps so far have
    started or measured. children and mp_children belong to main(), which stops
    whatever is still running when the run ends, however it ends."""

    def __init__(self, a, tmp, children, mp_children):
        self.a, self.tmp, self.children, self.mp_children = a, tmp, children, mp_children
        self.db = os.path.join(tmp, "soak.db")

    def pick_octet(self):
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
            setup_failed("soak: no free 127.x.0.1:8080")
        self.octet = octet
        self.layout_args = (self.a.services, self.a.per_service, octet)
        self.layout = Layout(*self.layout_args)

    def start_redis(self):
        a, tmp = self.a, self.tmp
        self.redis_addr = None
        self.redis_pid = None
        if a.redis == "none":
            self.redis_spec = "none"
        elif a.redis:
            host, port = a.redis.rsplit(":", 1)
            self.redis_addr = (host.strip("[]"), int(port))
            redis_command(self.redis_addr, "FLUSHALL")
            self.redis_spec = a.redis
        else:
            port = free_port()
            p = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                  "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
                                  "--dir", tmp, "--logfile", os.path.join(tmp, "redis.log")])
            self.children.append(("redis", p))
            self.redis_addr = ("127.0.0.1", port)
            self.redis_pid = p.pid
            for _ in range(100):
                try:
                    if redis_command(self.redis_addr, "PING") == "PONG":
                        break
                except OSError:
                    time.sleep(0.1)
            else:
                setup_failed("soak: redis-server did not start")
            self.redis_spec = "127.0.0.1:%d" % port

    def start_daemon(self):
        a, tmp = self.a, self.tmp
        conf = os.path.join(tmp, "discoveryd.toml")
        with open(conf, "w") as f:
            f.write('# written by bench/soak/soak.py\n[store]\nsynchronous = "%s"\n' % a.synchronous)
        ready = os.path.join(tmp, "ready.json")
        cmd = shlex.split(a.wrapper) + [a.discoveryd, "--config", conf, "--db", self.db, "--redis", self.redis_spec,
               "--http-listen", "%s:0" % a.bind, "--dns-listen", "%s:0" % a.bind,
               "--zones", os.path.join(ROOT, "zones"), "--log-level", "info", "--ready-file", ready,
               "--check-interval", a.check_interval, "--check-timeout", a.check_timeout,
               "--check-failures", str(a.check_failures)]
        self.daemon_log = open(os.path.join(tmp, "daemon.log"), "w")
        self.daemon = subprocess.Popen(cmd, stdout=self.daemon_log, stderr=subprocess.STDOUT)
        self.children.append(("discoveryd", self.daemon))
        deadline = time.monotonic() + 30
        while not os.path.exists(ready):
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                log("soak: discoveryd did not start; log:")
                print(open(os.path.join(tmp, "daemon.log")).read()[-3000:])
                raise SetupError("discoveryd did not start")
            time.sleep(0.1)
        self.endpoints = json.load(open(ready))
        self.pid = int(self.endpoints.get("pid", self.daemon.pid))  # not the wrapper's

    def connect(self):
        """Refuses a daemon not bound to loopback; waits until it trusts Redis."""
        endpoints = self.endpoints
        self.http_addr, self.dns_addr = split_host_port(endpoints["http"]), split_host_port(endpoints["dns"])
        for host in (self.http_addr[0], self.dns_addr[0]):
            if not is_loopback(host):
                setup_failed("soak: the daemon bound %s, not loopback; refusing to load it" % host)
        self.api = HttpClient(self.http_addr, 10)
        if self.redis_addr:
            deadline = time.monotonic() + 30
            while True:
                status, data = self.api.request("GET", "/v1/status")
                if json.loads(data).get("cache", {}).get("redis_trusted"):
                    break
                if time.monotonic() > deadline:
                    setup_failed("soak: the daemon never trusted Redis: " + data.decode()[:500])
                time.sleep(0.2)
        log("discoveryd pid %d http %s dns %s redis %s; %s" % (
            self.pid, endpoints["http"], endpoints["dns"], self.redis_spec, self.a.discoveryd))

    def register(self):
        """Health targets, then the registrations."""
        layout = self.layout
        self.targets = Targets(self.layout_args)
        self.mp_children.append(self.targets.proc)
        log("targets: %d listeners on 127.%d.*.*:8080" % (self.targets.count, self.octet))
        t = time.monotonic()
        for inst in layout.instances:
            status, data = self.api.request("PUT", "/v1/services/%s/instances/%s" % (inst["service"], inst["id"]),
                                            registration_body(inst))
            if status != 201:
                setup_failed("soak: registering %s: HTTP %d %s" % (inst["id"], status, data[:300]))
        log("registered %d instances of %d services in %.1f s (%d probed: %d tcp, %d http; %d ttl; %d flapping)" % (
            len(layout.instances), len(layout.services), time.monotonic() - t, len(layout.probed()),
            sum(1 for i in layout.probed() if i["check"]["type"] == "tcp"),
            sum(1 for i in layout.probed() if i["check"]["type"] == "http"),
            sum(1 for i in layout.instances if i["role"] == "ttl"), len(layout.flapping())))

    def start_load(self):
        """The UDP client processes, the HTTP + DNS-over-TCP process, the flappers."""
        a = self.a
        self.t0 = t0 = time.monotonic()
        cfg = {"layout": self.layout_args, "t0": t0, "window": a.sample, "dns": self.dns_addr, "http": self.http_addr,
               "dns_rate": a.dns_rate / a.dns_procs, "dns_tcp_rate": a.dns_tcp_rate, "dns_timeout": a.dns_timeout,
               "nx_random": a.nx_random, "http_rate": a.http_rate, "http_workers": a.http_workers,
               "http_timeout": a.http_timeout, "flap_up": a.flap_up, "service_churn": a.service_churn}
        results = mp.Queue()
        self.stop = mp.Event()
        for n in range(a.dns_procs):
            p = mp.Process(target=dns_udp_main, args=(cfg, results, self.stop, 1000 + n), name="soak-dns-%d" % n)
            p.start()
            self.mp_children.append(p)
        p = mp.Process(target=load_main, args=(cfg, results, self.stop, 2000), name="soak-load")
        p.start()
        self.mp_children.append(p)
        self.thread_stop = threading.Event()
        self.main_stats = LockedStats(WindowedStats("main", results, t0, a.sample))
        self.flapper = Flapper(cfg, self.layout, self.targets, self.main_stats, self.thread_stop)
        self.flap_threads = [threading.Thread(target=self.flapper.run, daemon=True) for _ in range(a.flaps)]
        for th in self.flap_threads:
            th.start()
        self.collector = Collector(results)

    def sample_loop(self):
        """A sample every --sample seconds until --duration, or until the daemon dies."""
        a = self.a
        self.samples = []
        self.events_seen = {}  # (id, at) -> event
        self.unexpected_removals = []
        self.prev_cpu = (time.monotonic(), proc_cpu_seconds(self.pid))
        self.printed = -1
        print(WINDOW_HEADER, flush=True)
        index = 0
        self.daemon_died = False
        while True:
            index += 1
            t_sample = self.t0 + index * a.sample
            end = t_sample >= self.t0 + a.duration - 1e-6
            self.collector.drain(block_until=t_sample)
            if self.daemon.poll() is not None:
                self.daemon_died = True
                log("soak: discoveryd exited with %s during the run" % self.daemon.returncode)
                break
            sample = self.take_sample()
            self.prev_cpu = (sample["mono"], sample["cpu_s"])
            self.samples.append(sample)
            self.check_events()
            # print the window before last: its stats have all arrived by now
            self.print_windows(index - 2)
            self.main_stats.tick()
            if end:
                break

    def take_sample(self):
        sample = take_sample(self.pid, self.db, self.redis_addr, self.redis_pid, self.api, self.prev_cpu)
        sample["t"] = round(sample["mono"] - self.t0, 1)
        return sample

    def check_events(self):
        """Removal events must all be of instances we took down."""
        try:
            status, data = self.api.request("GET", "/v1/events")
            for e in json.loads(data)["events"]:
                key = (e["id"], e["at"])
                if key in self.events_seen:
                    continue
                self.events_seen[key] = e
                if e["id"] not in self.flapper.downs:
                    self.unexpected_removals.append(e)
        except Exception as e:  # noqa: BLE001
            self.main_stats.stat("sampler").add(None, "events-" + e.__class__.__name__)

    def print_windows(self, last):
        """Prints the windows not printed yet, up to index last."""
        while self.printed < last:
            self.printed += 1
            i = self.printed
            print_window(i, self.a.sample, self.collector.windows.get(i, {}),
                         self.samples[i] if i < len(self.samples) else None)

    def stop_load(self):
        a = self.a
        self.stop.set()
        self.thread_stop.set()
        for th in self.flap_threads:
            th.join(a.http_timeout + 10)
        self.main_stats.flush()
        # drain while the load processes flush and exit (a process with queued
        # results does not exit until they are read)
        deadline = time.monotonic() + a.dns_timeout + a.http_timeout + 15
        while any(p.is_alive() for p in self.mp_children[1:]) and time.monotonic() < deadline:
            self.collector.drain(block_until=time.monotonic() + 0.2)
        self.collector.drain(block_until=time.monotonic() + 0.5)
        self.print_windows(len(self.samples) - 1)
        # idle sample after the load stopped (for the report only)
        self.idle = None
        if not self.daemon_died:
            time.sleep(min(5.0, a.sample))
            self.idle = self.take_sample()

    def final_checks(self):
        """Every stable instance is still registered; the daemon's last status, the
        Redis key census, the targets' counts. Then stops the targets."""
        self.missing = []
        if not self.daemon_died:
            for s, name in enumerate(self.layout.services):
                status, data = self.api.request("GET", "/v1/services/" + name)
                got = {i["id"] for i in json.loads(data)["instances"]} if status == 200 else set()
                self.missing += [i["id"] for i in self.layout.by_service[name]
                                 if not i["role"].startswith("flap") and i["id"] not in got]
            self.final_status = json.loads(self.api.request("GET", "/v1/status")[1])
        else:
            self.final_status = {}
        self.census = {}
        if self.redis_addr:
            try:
                self.census = redis_census(self.redis_addr)
            except (OSError, RuntimeError) as e:
                self.census = {"error": repr(e)}
        self.target_hits = self.targets.call("stats") if self.targets.proc.is_alive() else {}
        self.api.close()
        self.targets.stop()

    def stop_daemon(self):
        """SIGTERM; the daemon must exit with 0 within 30 s."""
        shutdown = {}
        if not self.daemon_died:
            t = time.monotonic()
            os.kill(self.pid, signal.SIGTERM)
            try:
                shutdown["exit_code"] = self.daemon.wait(30)
            except subprocess.TimeoutExpired:
                shutdown["exit_code"] = "hung"
                self.daemon.kill()
                self.daemon.wait()
            shutdown["seconds"] = round(time.monotonic() - t, 2)
        else:
            shutdown["exit_code"] = self.daemon.returncode
        self.shutdown = shutdown

    def judge(self, out_dir):
        """The report, its outputs and the exit status (0 pass, 1 fail)."""
        a = self.a
        log_levels, warnings = scan_daemon_log(os.path.join(self.tmp, "daemon.log"))
        report = build_report(a, self.layout, self.collector.windows, self.samples, self.idle,
                              self.collector.client_notes, self.flapper, self.unexpected_removals, self.events_seen,
                              self.missing, self.final_status, self.target_hits, self.shutdown, log_levels,
                              self.daemon_died)
        report["redis_key_families"] = self.census
        report["daemon_warnings"] = dict(warnings.most_common(20))
        write_outputs(out_dir, report, self.samples, self.collector.windows, a.sample)
        print_report(report)
        print("results:", out_dir)
        return 0 if report["verdict"]["pass"] else 1


def run(a, out_dir, tmp, children, mp_children):
    soak = Soak(a, tmp, children, mp_children)
    try:
        soak.pick_octet()
        soak.start_redis()
        soak.start_daemon()
        soak.connect()
        soak.register()
    except SetupError:
        return 2
    soak.start_load()
    soak.sample_loop()
    soak.stop_load()
    soak.final_checks()
    soak.stop_daemon()
    return soak.judge(out_dir)


if __name__ == "__main__":
    sys.exit(main())
