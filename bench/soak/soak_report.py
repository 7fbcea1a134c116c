"""Soak benchmark, samples and the report (see soak.py): one resource sample of
the daemon, database and Redis per window (take_sample), the per-window line,
the growth figures of the steady state, the report with its verdict
(build_report, judge), and its outputs (report.json, samples.csv, report.txt)."""
import collections
import csv
import json
import math
import os
import re
import sqlite3
import sys
import time

from soak_stats import Stat, rnd
from soak_system import fd_count, file_size, proc_cpu_seconds, proc_status, redis_command, slope_per_s

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


GROWTH_KEYS = ("rss_kb", "fds", "threads", "db_bytes", "wal_bytes", "redis_used_memory", "redis_keys", "near_entries",
               "services_rows", "instances_rows")


def aggregate(a, windows):
    """The windows' stats merged: over the whole run, over the steady state, and
    DNS over UDP and TCP together."""
    total = collections.defaultdict(Stat)
    steady_stats = collections.defaultdict(Stat)
    for i, w in windows.items():
        for kind, s in w.items():
            total[kind].merge(s)
            if (i + 1) * a.sample > a.warmup:
                steady_stats[kind].merge(s)
    dns_all = Stat()
    for k in ("dns", "dns-tcp"):
        dns_all.merge(total[k])
    return total, steady_stats, dns_all


def error_failures(a, total, flapper, unexpected_removals, events_seen, missing, shutdown, daemon_died):
    """Failures from errors: anything but timeouts fails; timeouts up to a small
    fraction (a loaded machine). Appends over-removed instances to unexpected_removals."""
    fails = []
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
    return fails


def growth_failures(a, g):
    """Failures from resources that grow during the steady state."""
    fails = []
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
    return fails


def rates(a, total, samples):
    flap = total.get("flap", Stat())
    return {"dns_udp_per_s": rnd(total["dns"].n / a.duration, 1),
            "dns_tcp_per_s": rnd(total["dns-tcp"].n / a.duration, 1),
            "http_per_s": rnd(total["http"].n / a.duration, 1),
            "removals_per_s": rnd(flap.ok / a.duration, 2),
            "probes_per_s": rnd(((samples[-1].get("probes_started") or 0) - (samples[0].get("probes_started") or 0))
                                / max(1, samples[-1]["t"] - samples[0]["t"]), 1) if samples else None}


def build_report(a, layout, windows, samples, idle, client_notes, flapper, unexpected_removals, events_seen,
                 missing, final_status, target_hits, shutdown, log_levels, daemon_died):
    total, steady_stats, dns_all = aggregate(a, windows)
    n_windows = int(math.ceil(a.duration / a.sample))
    g = {k: growth(samples, k, a.warmup) for k in GROWTH_KEYS}
    fails = error_failures(a, total, flapper, unexpected_removals, events_seen, missing, shutdown, daemon_died)
    fails += growth_failures(a, g)
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
        "rates": rates(a, total, samples),
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


def scan_daemon_log(path):
    """Lines of the daemon's log by level, and its warnings and errors by shape
    (the message without its variable parts)."""
    log_levels = collections.Counter()
    warnings = collections.Counter()
    with open(path, errors="replace") as f:
        for line in f:
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("trace", "debug", "info", "warning", "error", "critical"):
                log_levels[parts[1]] += 1
                if parts[1] in ("warning", "error", "critical"):
                    # the message without its variable parts
                    shape = re.sub(r"=\S+|\d+", "#", parts[3].strip())[:110]
                    warnings[parts[1] + " " + shape] += 1
    return log_levels, warnings


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
