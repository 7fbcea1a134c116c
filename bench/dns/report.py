#!/usr/bin/python3
"""Tables for bench/dns/run.sh from anchors.sh result directories.

Usage: bench/dns/report.py latency RAWFILE...      -> one TSV line per file (percentiles)
       bench/dns/report.py split   DIR             -> server CPU split daemon/Redis, cache counters
       bench/dns/report.py open    DIR [DIR...]    -> open-loop latency table (needs DIR/latency.tsv)

latency: reads dnsperf -v output ("> RCODE NAME TYPE SECONDS" per response, "> T ..." per
timeout) and prints file, answered, timeouts, avg, p50, p90, p99, p99.9, max (ms).
split:   reads DIR/serve-reports/serve-*.txt written by bench/dns/serve.sh (its "cpu_ticks daemon=..
         redis=.." and "status: {...}" lines, cumulative over the server's life: check, warm-up and the
         measured run) and DIR/results.tsv, and prints per server the median srv CPU us/query,
         the share of it spent in redis-server, and where lookups were answered.
open:    median over repetitions of every column of DIR/latency.tsv joined with results.tsv.
"""
import csv
import glob
import json
import os
import re
import statistics
import sys

ORDER = ["echo-mmsg", "echo-simple", "nsd", "knot", "pdns", "pdns-nocache",
         "discoveryd-a-redis", "discoveryd-b-noredis", "discoveryd-c-redis-nonear",
         "discoveryd-d-cold", "discoveryd-e-sqlite"]


def order(s):
    return (ORDER.index(s) if s in ORDER else len(ORDER), s)


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def f(x, fmt="%.3f"):
    return "n/a" if x is None else fmt % x


def pct(sorted_v, p):
    if not sorted_v:
        return None
    k = min(len(sorted_v) - 1, max(0, int(round(p / 100.0 * len(sorted_v) + 0.5)) - 1))
    return sorted_v[k]


def latency(files):
    print("file\tanswered\ttimeouts\tavg_ms\tp50_ms\tp90_ms\tp99_ms\tp999_ms\tmax_ms")
    for path in files:
        lat = []
        timeouts = 0
        with open(path, errors="replace") as fh:
            for line in fh:
                if not line.startswith("> "):
                    continue
                parts = line.split()
                if parts[1] == "T":
                    timeouts += 1
                    continue
                try:
                    lat.append(float(parts[-1]) * 1000.0)
                except ValueError:
                    pass
        lat.sort()
        avg = sum(lat) / len(lat) if lat else None
        print("%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s" % (
            os.path.basename(path), len(lat), timeouts, f(avg), f(pct(lat, 50)), f(pct(lat, 90)),
            f(pct(lat, 99)), f(pct(lat, 99.9)), f(lat[-1] if lat else None)))


def rows(d):
    with open(os.path.join(d, "results.tsv")) as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def split(d):
    us = {}
    for r in rows(d):
        us.setdefault(r["server"], []).append(num(r["srv_us_q"]))
    share, counters, degraded = {}, {}, {}
    names = {"redis": "discoveryd-a-redis", "noredis": "discoveryd-b-noredis",
             "redis-nonear": "discoveryd-c-redis-nonear", "cold": "discoveryd-d-cold",
             "sqlite": "discoveryd-e-sqlite"}
    for rep in glob.glob(os.path.join(d, "serve-reports", "serve-*.txt")):
        srv = names.get(re.match(r"serve-(.*)\.txt$", os.path.basename(rep)).group(1))
        for block in open(rep, errors="replace").read().split("stop: ")[1:]:
            t = re.search(r"cpu_ticks daemon=(\d+) redis=(\d*)", block)
            if t:
                dt, rt = int(t.group(1)), int(t.group(2) or 0)
                if dt + rt > 0:
                    share.setdefault(srv, []).append(100.0 * rt / (dt + rt))
            s = re.search(r"^status: (\{.*\})\s*$", block, re.M)
            if s:
                try:
                    j = json.loads(s.group(1))
                    counters.setdefault(srv, []).append((j["cache"], j["dns"]))
                except (ValueError, KeyError):
                    pass
            if "cache degraded" in block:
                degraded[srv] = degraded.get(srv, 0) + 1
    print("| server | srv CPU us/q (all procs) | of which redis-server | daemon us/q | redis us/q | "
          "answers from near cache | Redis hits | Redis misses | SQLite reads | coalesced | fallbacks to SQLite | Redis errors | runs with \"cache degraded\" |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for srv in sorted(us, key=order):
        if srv not in share:
            continue
        u = med(us[srv])
        sh = med(share[srv])
        cs = counters.get(srv, [])
        if cs:
            # per run (cumulative: check + warm-up + measured run), summed over runs
            q = sum(dns["udp_queries"] + dns["tcp_queries"] for _, dns in cs)
            def tot(k):
                return sum(c[k] for c, _ in cs)
            near = "%.1f%%" % (100.0 * tot("near_hits") / q) if q else "n/a"
            cnt = [near] + ["%d" % (tot(k) / len(cs)) for k in
                            ("redis_hits", "redis_misses", "db_reads", "coalesced", "fallbacks", "redis_errors")]
        else:
            cnt = ["n/a"] * 7
        cnt.append("%d of %d" % (degraded.get(srv, 0), len(cs)))
        print("| %s | %s | %s | %s | %s | %s |" % (
            srv, f(u, "%.2f"), f(sh, "%.0f%%"),
            f(u * (1 - sh / 100.0) if u is not None and sh is not None else None, "%.2f"),
            f(u * sh / 100.0 if u is not None and sh is not None else None, "%.2f"),
            " | ".join(cnt)))
    print("\nCounters are per server start (mean over runs), cumulative over the check, the warm-up "
          "and the measured run; \"answers from near cache\" is near-cache hits / DNS queries.")


def open_loop(dirs):
    print("| server | rate q/s | runs | achieved QPS | lost | avg ms | p50 ms | p90 ms | p99 ms (median of runs) | "
          "p99 ms worst run | p99.9 ms | max ms | srv CPU us/q |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for d in dirs:
        lat = {}
        lt = os.path.join(d, "latency.tsv")
        if os.path.exists(lt):
            with open(lt) as fh:
                for r in csv.DictReader(fh, delimiter="\t"):
                    lat[r["file"]] = r
        groups = {}
        for r in rows(d):
            key = (r["rate"], r["server"])
            raw = "%s-%s-%s-%s.txt" % (r["mode"], r["server"], r["qfile"], r["rep"])
            groups.setdefault(key, []).append((r, lat.get(raw, {})))
        for (rate, srv) in sorted(groups, key=lambda k: (num(k[0]) or 0, order(k[1]))):
            g = groups[(rate, srv)]
            col = lambda k: [num(l.get(k)) for _, l in g]  # noqa: E731
            p99s = [x for x in col("p99_ms") if x is not None]
            print("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                srv, rate, len(g), f(med([num(r["qps"]) for r, _ in g]), "%.0f"),
                f(med([num(r["lost"]) for r, _ in g]), "%.0f"),
                f(med(col("avg_ms"))), f(med(col("p50_ms"))), f(med(col("p90_ms"))),
                f(med(p99s)), f(max(p99s) if p99s else None), f(med(col("p999_ms"))),
                f(med(col("max_ms")), "%.1f"), f(med([num(r["srv_us_q"]) for r, _ in g]), "%.2f")))


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "latency":
        latency(args)
    elif cmd == "split":
        split(args[0])
    elif cmd == "open":
        open_loop(args)
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
