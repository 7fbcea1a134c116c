"""Soak benchmark, statistics (see soak.py): per-operation counts, errors and
log-bucket latency histograms (Stat), their per-window collection in a worker
(WindowedStats, LockedStats for threads) and, in the main process, the merge of
what the workers ship (Collector). Plain dicts so they pickle cheaply between
the load processes and the driver."""
import collections
import math
import queue
import threading
import time

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



class Collector:
    """The main process's side of the results queue: every worker's windows
    merged by index ({index: {kind: Stat}}), and the driver's own notes."""

    def __init__(self, results):
        self.results = results
        self.windows = collections.defaultdict(dict)  # index -> {kind: Stat}
        self.client_notes = Stat()

    def drain(self, block_until=None):
        while True:
            timeout = None if block_until is None else block_until - time.monotonic()
            try:
                if timeout is None:
                    src, index, stats = self.results.get_nowait()
                else:
                    if timeout <= 0:
                        return
                    src, index, stats = self.results.get(timeout=timeout)
            except queue.Empty:
                return
            for kind, s in stats.items():
                if kind == "client":
                    self.client_notes.merge(s)
                    continue
                self.windows[index].setdefault(kind, Stat()).merge(s)
