"""Benchmark: CPU per poll, polls per second and tick lag of the poller against 5,000 appliances.

The fleet runs in its own process (the simulator, `cdnops simulate`, or with `--server mini`
a minimal contract server defined here); the poller runs in this process, so the CPU
figures are the poller's alone. Usage:

    python bench/poll.py [--appliances 5000] [--interval 1.0] [--ticks 10] [--server sim|mini]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import logging
import os
import platform
import pstats
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import yaml

from cdnops.model import Appliance, Inventory, PollFailure
from cdnops.poll.poller import Poller, PollerOptions

TOKEN_ENV = "CDNOPS_BENCH_TOKEN"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}"


def sim_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("cdnops.sim.cli") is not None


@contextlib.contextmanager
def fleet_process(kind: str, n: int, port: int, inventory: Path) -> Iterator[None]:
    """Run the fleet in a child process until the block ends."""
    if kind == "sim":
        cmd = [sys.executable, "-m", "cdnops", "simulate", "--appliances", str(n)]
        cmd += ["--port", str(port), "--inventory-out", str(inventory), "--token-env", TOKEN_ENV]
    else:
        cmd = [sys.executable, __file__, "--serve", str(n), str(port), str(inventory)]
    env = {**os.environ, TOKEN_ENV: "bench-token"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    procs = [proc]
    if kind == "mini":  # a second worker on the same port (SO_REUSEPORT)
        second = [sys.executable, __file__, "--serve", str(n), str(port), "-"]
        procs.append(subprocess.Popen(second, env=env, stdout=subprocess.DEVNULL))
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):  # the child has no way to signal readiness but its port
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"fleet process did not start: {' '.join(cmd)}")
            time.sleep(0.05)
        while not inventory.exists() or inventory.stat().st_size == 0:
            time.sleep(0.05)
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def load_inventory(path: Path) -> Inventory:
    doc = yaml.safe_load(path.read_text())
    return Inventory(
        tuple(Appliance(str(e["id"]), str(e["site"]), str(e["url"])) for e in doc["appliances"])
    )


async def measure(inventory: Inventory, args: argparse.Namespace) -> dict[str, float]:
    """Run the cadence loop; measure CPU, polls and lag over `args.ticks` full ticks."""
    opts = PollerOptions(interval_s=args.interval, timeout_s=args.timeout)
    profiler = cProfile.Profile() if args.profile else None
    deadline = args.interval * 5
    async with Poller(inventory, opts) as poller:
        for _ in range(args.warmup + 1):  # the first frame is partial: started mid-interval
            await asyncio.wait_for(poller.frames.get(), deadline)
        before = poller.stats
        cpu0, wall0 = time.process_time(), time.perf_counter()
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        if profiler:
            profiler.enable()
        lags, not_polled = [], 0
        for _ in range(args.ticks):
            frame = await asyncio.wait_for(poller.frames.get(), deadline)
            lags.append(time.time() - frame.ts)  # how late the frame reached its consumer
            not_polled += int(np.count_nonzero(frame.failure == PollFailure.NOT_POLLED))
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        after = poller.stats
    polls = sum(after.polls.values()) - sum(before.polls.values())
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return {
        "cpu_us_per_poll": cpu / max(polls, 1) * 1e6,
        "user_us_per_poll": (usage1.ru_utime - usage0.ru_utime) / max(polls, 1) * 1e6,
        "sys_us_per_poll": (usage1.ru_stime - usage0.ru_stime) / max(polls, 1) * 1e6,
        "polls_per_s": polls / wall,
        "polls": polls,
        "failed": polls - (after.polls["ok"] - before.polls["ok"]),
        "not_polled_cells": not_polled,
        "lag_p50_ms": float(np.percentile(lags, 50)) * 1e3,
        "lag_p99_ms": float(np.percentile(lags, 99)) * 1e3,
        "wall_s": wall,
        "cpu_s": cpu,
        "connections_opened": after.connections_opened,
    }


class _BareClient(asyncio.Protocol):
    """The floor: send a GET, count any answer bytes as a response, send again."""

    def __init__(self, request: bytes, left: list[int], done: asyncio.Future[None]) -> None:
        self.request, self.left, self.done = request, left, done
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.left[0] -= 1
        if self.left[0] <= 0:
            if not self.done.done():
                self.done.set_result(None)
        elif self.transport is not None:
            self.transport.write(self.request)


async def baseline(inventory: Inventory, requests: int = 20_000, connections: int = 16) -> float:
    """CPU per request of a bare asyncio keep-alive GET loop (no parsing): this machine's floor.

    Assumes each answer arrives in one read, as it does for small bodies on loopback.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    left = [requests]
    first = inventory.appliances[0]
    parts = first.url.split("/", 3)
    host, port = parts[2].rsplit(":", 1)
    request = f"GET /{parts[3]}/health HTTP/1.1\r\nHost: {parts[2]}\r\n\r\n".encode()
    cpu0 = time.process_time()
    transports = []
    for _ in range(connections):
        t, _ = await loop.create_connection(
            lambda: _BareClient(request, left, done), host, int(port)
        )
        transports.append(t)
    await asyncio.wait_for(done, 60)
    cpu = time.process_time() - cpu0
    for t in transports:
        t.close()
    return cpu / requests * 1e6


# The minimal fleet server (`--server mini`): the contract's health JSON, nothing else.
# Bodies are pre-rendered templates and the socket is shared by two worker processes
# (SO_REUSEPORT), so that the server is not what limits the poller being measured.
# Counters derive from the wall clock so every worker reports the same monotonic value.

_TEMPLATE = (
    '{"appliance":"%(id)s","site":"%(site)s","ts":%%.3f,"uptime_s":86400.0,'
    '"state":"serving","services":{"nginx":"running","cache":"running","bgp":"established"},'
    '"metrics":{"cpu_util":0.42,"mem_util":0.63,"egress_gbps":38.2,'
    '"active_connections":51234,"cache_hit_ratio":0.97,"http_5xx_ratio":0.0004,'
    '"origin_latency_p99_ms":84.0,"tcp_retransmit_ratio":0.0021,"temperature_c":51.5,'
    '"requests_total":%%d,"disk_errors_total":3,"nic_errors_total":0}}'
)


class _MiniProtocol(asyncio.Protocol):
    def __init__(self, bodies: dict[bytes, bytes]) -> None:
        self.bodies = bodies
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            head, self.buf = self.buf[:end], self.buf[end + 4 :]
            path = head.split(b" ", 2)[1]
            template = self.bodies.get(path.rsplit(b"/", 1)[0])
            assert self.transport is not None
            if template is None:
                self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                continue
            now = time.time()
            body = template % (now, int(now * 1000))
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )


def serve_mini(n: int, port: int, inventory: Path | None) -> None:
    """Serve `n` appliances at /a/<id>/health on 127.0.0.1:port (a port shared with the
    other workers); the worker given an inventory path writes it once listening."""
    ids = [(f"site{i % 50:02d}-oca-{i:05d}", f"site{i % 50:02d}") for i in range(n)]
    bodies = {
        f"/a/{aid}".encode(): (_TEMPLATE % {"id": aid, "site": site}).encode() for aid, site in ids
    }
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    if inventory is not None:
        entries = [{"id": a, "site": s, "url": f"http://127.0.0.1:{port}/a/{a}"} for a, s in ids]
        tmp = inventory.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump({"appliances": entries}))
        tmp.rename(inventory)  # listening already: the backlog holds early connections

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _MiniProtocol(bodies), sock=sock)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appliances", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=0.5)
    parser.add_argument("--ticks", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1, help="full ticks before measuring")
    parser.add_argument("--server", choices=["auto", "sim", "mini"], default="auto")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the ticks")
    parser.add_argument("--serve", nargs=3, metavar=("N", "PORT", "INVENTORY"), help="internal")
    args = parser.parse_args()
    if args.serve:
        path = None if args.serve[2] == "-" else Path(args.serve[2])
        serve_mini(int(args.serve[0]), int(args.serve[1]), path)
        return 0
    kind = args.server if args.server != "auto" else ("sim" if sim_available() else "mini")
    logging.basicConfig(level=logging.WARNING)
    # Transitions would print a line per appliance on a bad run; the counts below suffice.
    logging.getLogger("cdnops.poll").setLevel(logging.ERROR)
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}  (fleet: {kind})")
    with tempfile.TemporaryDirectory() as tmp:
        inventory_path = Path(tmp) / "inventory.yaml"
        with fleet_process(kind, args.appliances, free_port(), inventory_path):
            inventory = load_inventory(inventory_path)
            floor_us = asyncio.run(baseline(inventory))
            result = asyncio.run(measure(inventory, args))
    print(
        f"appliances={len(inventory.appliances)} interval_s={args.interval} ticks={args.ticks}\n"
        f"cpu_us_per_poll={result['cpu_us_per_poll']:.1f} "
        f"(user {result['user_us_per_poll']:.1f} + system {result['sys_us_per_poll']:.1f}) "
        f"polls_per_s={result['polls_per_s']:.0f} "
        f"tick_lag_p50_ms={result['lag_p50_ms']:.1f} tick_lag_p99_ms={result['lag_p99_ms']:.1f}\n"
        f"polls={result['polls']} failed={result['failed']} "
        f"not_polled_cells={result['not_polled_cells']} cpu_s={result['cpu_s']:.2f} "
        f"wall_s={result['wall_s']:.2f} connections_opened={result['connections_opened']}\n"
        f"baseline: a bare asyncio keep-alive GET loop (no parsing) costs {floor_us:.1f} us CPU "
        "per request on this machine now"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
