"""Health answers per second of the simulator over keep-alive connections."""

# The simulator runs in a child process; client processes open keep-alive connections and
# send sequential (not pipelined) GETs to appliances spread over the fleet. Besides the
# wall-clock rate it reports answers per CPU second of the simulator process, the figure
# that says what one core sustains even when the client, not the server, is the limit.
# `--baseline` serves a fixed answer instead: the floor of any asyncio server here.
#
#     python bench/sim_throughput.py --appliances 5000 --connections 300 --duration 10
#     python bench/sim_throughput.py --baseline --duration 10

from __future__ import annotations

import argparse
import asyncio
import functools
import multiprocessing as mp
import os
import random
import time
from multiprocessing.connection import Connection

TOKEN = "bench-token"


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_FIXED = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 520\r\n\r\n"


class _Fixed(asyncio.Protocol):
    """The floor: answers every read with the same health-sized response, no parsing."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(_FIXED + b"x" * 520)


def _serve_fixed(conn: Connection) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Fixed, "127.0.0.1", 0)
        conn.send((server.sockets[0].getsockname()[1], 0.0))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(main())


def _serve(appliances: int, sites: int, conn: Connection) -> None:
    from cdnops.sim import SimServer, SimSpec

    async def main() -> None:
        t0 = time.perf_counter()
        async with SimServer(SimSpec(appliances=appliances, sites=sites), token=TOKEN) as sim:
            conn.send((sim.port, time.perf_counter() - t0))
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(main())


class _Client(asyncio.Protocol):
    """Sends one GET, waits for the whole answer, sends the next; stops when `stop[0]`."""

    def __init__(self, requests: list[bytes], stop: list[bool], done: asyncio.Future[int]) -> None:
        self.requests, self.stop, self.done = requests, stop, done
        self.count, self.buf, self.i = 0, b"", random.randrange(len(requests))
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.i = (self.i + 7919) % len(self.requests)
        self.transport.write(self.requests[self.i])

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            self.buf = buf
            return
        i = buf.find(b"Content-Length: ", 0, end)
        length = int(buf[i + 16 : buf.find(b"\r", i)])
        if len(buf) < end + 4 + length:
            self.buf = buf
            return
        if not buf.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected answer {buf[:40]!r}")
        self.buf = buf[end + 4 + length :]
        self.count += 1
        if not self.stop[0]:
            self._send()
        elif not self.done.done():
            self.done.set_result(self.count)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.count)


def _clients(
    port: int,
    server_pid: int,
    ids: list[str],
    connections: int,
    duration: float,
    q: mp.Queue,  # type: ignore[type-arg]
) -> None:
    """Run the clients; report answers and simulator CPU seconds over the measured window."""

    async def run() -> tuple[int, float, float]:
        loop = asyncio.get_running_loop()
        requests = [b"GET /a/%s/health HTTP/1.1\r\nHost: sim\r\n\r\n" % i.encode() for i in ids]
        stop = [False]
        clients, futures = [], []
        for _ in range(connections):
            done: asyncio.Future[int] = loop.create_future()
            futures.append(done)
            _, client = await loop.create_connection(
                functools.partial(_Client, requests, stop, done), "127.0.0.1", port
            )
            clients.append(client)
        # The window starts once every connection is up, so setup does not count.
        count0, cpu0, t0 = sum(c.count for c in clients), _cpu_s(server_pid), time.perf_counter()
        await asyncio.sleep(duration)
        count1, cpu1, t1 = sum(c.count for c in clients), _cpu_s(server_pid), time.perf_counter()
        stop[0] = True
        await asyncio.gather(*futures)
        return count1 - count0, cpu1 - cpu0, t1 - t0

    q.put(asyncio.run(run()))


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appliances", type=int, default=5000)
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--client-procs", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="measure a fixed-answer asyncio server instead: the floor on this machine",
    )
    return parser.parse_args()


def main() -> None:
    args = _parse_args()
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    if args.baseline:
        server = ctx.Process(target=_serve_fixed, args=(child,))
    else:
        server = ctx.Process(target=_serve, args=(args.appliances, args.sites, child))
    server.start()
    port, start_s = parent.recv()
    from cdnops.sim.topology import SimSpec, build_topology

    ids = list(build_topology(SimSpec(appliances=args.appliances, sites=args.sites)).ids)
    q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    per_proc = max(1, args.connections // args.client_procs)
    pid = server.pid or 0
    procs = [
        ctx.Process(target=_clients, args=(port, pid, ids, per_proc, args.duration, q))
        for _ in range(args.client_procs)
    ]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    parent.send("stop")
    server.join()
    total = sum(r[0] for r in results)
    cpu = max(r[1] for r in results)  # every client process watched the same server
    wall = max(r[2] for r in results)
    print(
        f"server={'baseline' if args.baseline else 'sim'} "
        f"appliances={args.appliances} connections={per_proc * len(procs)} start_s={start_s:.2f} "
        f"responses={total} window_s={wall:.1f} rate={total / wall:.0f}/s "
        f"server_cpu_s={cpu:.1f} per_server_cpu_s={total / max(cpu, 1e-9):.0f}/s"
    )


if __name__ == "__main__":
    main()
