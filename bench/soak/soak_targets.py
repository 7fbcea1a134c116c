"""Soak benchmark, the registered world and its health targets (see soak.py):
the Layout every process derives from the same arguments (services, instances,
their loopback addresses and checks), the registration body, and the process
that runs one listener per probed instance (targets_main), driven from the
main process through a pipe (Targets)."""
import asyncio
import collections
import json
import multiprocessing as mp
import signal
import socket
import threading

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


class TargetServer:
    """The targets process's state: its listeners, which instances are down, and
    counts of what the health checker did to them."""

    def __init__(self, layout_args, control):
        layout = Layout(*layout_args)
        self.control = control
        self.insts = {i["id"]: i for i in layout.probed()}
        self.down = set()
        self.servers = {}
        self.hits = collections.Counter()

    async def handle_tcp(self, reader, writer):
        self.hits["tcp"] += 1
        writer.close()

    async def handle_http(self, reader, writer, ident):
        self.hits["http"] += 1
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            if ident in self.down:
                self.hits["http_503"] += 1
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n"
                             b"Connection: close\r\n\r\ndown")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except Exception:  # noqa: BLE001 - the checker may reset the connection first
            self.hits["http_aborted"] += 1
        writer.close()

    async def open_listener(self, inst):
        if inst["check"]["type"] == "tcp":
            handler = self.handle_tcp
        else:
            ident = inst["id"]
            handler = lambda r, w, ident=ident: self.handle_http(r, w, ident)  # noqa: E731
        self.servers[inst["id"]] = await asyncio.start_server(
            handler, inst["address"], inst["port"], reuse_address=True, backlog=64)

    async def command(self, msg):
        op, ident = msg
        try:
            if op == "down":
                inst = self.insts[ident]
                if inst["check"]["type"] == "tcp":
                    server = self.servers.pop(ident)
                    server.close()
                    await server.wait_closed()
                else:
                    self.down.add(ident)
            elif op == "up":
                inst = self.insts[ident]
                if inst["check"]["type"] == "tcp":
                    await self.open_listener(inst)
                else:
                    self.down.discard(ident)
            elif op == "stats":
                self.control.send(("ok", dict(self.hits)))
                return
            self.control.send(("ok", None))
        except Exception as e:  # noqa: BLE001
            self.control.send(("error", repr(e)))

    async def main(self):
        loop = asyncio.get_running_loop()
        for inst in self.insts.values():
            await self.open_listener(inst)
        stop = loop.create_future()

        def on_control():
            try:
                msg = self.control.recv()
            except EOFError:
                msg = None
            if msg is None or msg == "stop":
                if not stop.done():
                    stop.set_result(None)
                return
            loop.create_task(self.command(msg))

        loop.add_reader(self.control.fileno(), on_control)
        self.control.send(("ready", len(self.servers)))
        await stop
        for server in self.servers.values():
            server.close()


def targets_main(layout_args, control):
    """The targets process (multiprocessing target)."""
    server = TargetServer(layout_args, control)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(server.main())


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

