"""Soak benchmark, the system side (see soak.py): free ports, a minimal Redis
client (redis_command, Resp) and the key census, /proc readers for the daemon's
memory, CPU, threads and fds, file sizes, the loopback check and the
least-squares slope the growth verdict uses."""
import ipaddress
import os
import re
import socket

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

