"""A real `cdnops run` tells a notify socket what systemd needs: ready, watchdog, reload, stop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import yaml

import cdnops.app
from cdnops.sim.server import SimServer, SimSpec

TOKEN = "test-token-not-a-secret"

pytestmark = pytest.mark.skipif(
    "cdnops.sdnotify" not in Path(cdnops.app.__file__).read_text(),
    reason="cdnops.app does not send sd_notify messages yet",
)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    yield str(path), sock
    sock.close()


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(SimSpec(appliances=8, sites=2), token=TOKEN) as s:
        yield s


@pytest.fixture
async def daemon(
    sim: SimServer, tmp_path: Path, notify_socket: tuple[str, socket.socket]
) -> AsyncIterator[asyncio.subprocess.Process]:
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump({"appliances": sim.inventory()}))
    config = {
        "inventory": "inventory.yaml",
        "state_dir": "state",
        "appliance_token": {"env": "CDNOPS_TEST_TOKEN"},
        "poll": {"interval_s": 0.5, "timeout_s": 0.4},
        "http": {"listen": "127.0.0.1", "port": 0},
    }
    (tmp_path / "cdnops.yaml").write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "CDNOPS_TEST_TOKEN": TOKEN,
        "NOTIFY_SOCKET": notify_socket[0],
        "WATCHDOG_USEC": "1000000",  # pings every 0.5 s
    }
    env.pop("WATCHDOG_PID", None)
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "cdnops", "run", "--config", str(tmp_path / "cdnops.yaml")),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    yield proc
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def next_message(
    sock: socket.socket, wanted: Callable[[bytes], bool], timeout_s: float = 15
) -> bytes:
    """The next datagram `wanted` accepts; others (status updates, pings) are skipped."""
    loop = asyncio.get_running_loop()

    async def receive() -> bytes:
        while not wanted(data := await loop.sock_recv(sock, 65536)):
            pass
        return data

    return await asyncio.wait_for(receive(), timeout_s)


async def test_ready_watchdog_reload_and_stop(
    daemon: asyncio.subprocess.Process, notify_socket: tuple[str, socket.socket]
) -> None:
    _, sock = notify_socket
    ready = await next_message(sock, lambda d: d.startswith(b"READY=1"))
    assert ready.startswith(b"READY=1\nSTATUS=")
    assert await next_message(sock, lambda d: d == b"WATCHDOG=1") == b"WATCHDOG=1"

    daemon.send_signal(signal.SIGHUP)
    reloading = await next_message(sock, lambda d: d.startswith(b"RELOADING=1"))
    assert reloading.startswith(b"RELOADING=1\nMONOTONIC_USEC=")
    await next_message(sock, lambda d: d.startswith(b"READY=1"))

    daemon.send_signal(signal.SIGTERM)
    assert await next_message(sock, lambda d: d.startswith(b"STOPPING=1")) == b"STOPPING=1"
    assert await asyncio.wait_for(daemon.wait(), 15) == 0
