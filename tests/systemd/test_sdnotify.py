"""sd_notify client against a real AF_UNIX datagram socket."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdnops.sdnotify import Notifier, watchdog_interval_s, watchdog_loop


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A bound datagram socket standing in for systemd's notify socket."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield str(path), sock
    sock.close()


def test_ready_with_status_is_one_datagram(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    notifier = Notifier(path)
    assert notifier.ready("polling 3 appliances\nin 1 site")
    assert sock.recv(4096) == b"READY=1\nSTATUS=polling 3 appliances in 1 site"
    notifier.close()


def test_each_state_message_exactly(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    notifier = Notifier(path)
    assert notifier.ready()
    assert notifier.status("tick 7, 0 anomalies")
    assert notifier.stopping()
    assert notifier.watchdog()
    assert [sock.recv(4096) for _ in range(4)] == [
        b"READY=1",
        b"STATUS=tick 7, 0 anomalies",
        b"STOPPING=1",
        b"WATCHDOG=1",
    ]
    notifier.close()


def test_reloading_carries_the_monotonic_time(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    notifier = Notifier(path)
    before = time.monotonic_ns() // 1000
    assert notifier.reloading()
    after = time.monotonic_ns() // 1000
    match = re.fullmatch(rb"RELOADING=1\nMONOTONIC_USEC=(\d+)", sock.recv(4096))
    assert match is not None
    assert before <= int(match.group(1)) <= after
    notifier.close()


def test_abstract_namespace_socket() -> None:
    name = f"cdnops-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        notifier = Notifier("@" + name)
        assert notifier.ready("up")
        assert sock.recv(4096) == b"READY=1\nSTATUS=up"
        notifier.close()


def test_no_socket_means_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier.from_env()
    assert not notifier.enabled
    assert not notifier.ready("up")
    assert not notifier.watchdog()
    assert notifier.failures == 0


def test_from_env_reads_notify_socket(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    notifier.close()


def test_send_failure_never_raises_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(str(tmp_path / "nobody-listens.sock"))
    with caplog.at_level(logging.WARNING, logger="cdnops.sdnotify"):
        assert not notifier.ready("up")
        assert not notifier.watchdog()
        assert not notifier.stopping()
    assert notifier.failures == 3
    warnings = [r for r in caplog.records if r.name == "cdnops.sdnotify"]
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith("sd_notify failed, further failures are not logged")
    notifier.close()


def test_full_socket_does_not_block(listener: tuple[str, socket.socket]) -> None:
    # nobody reads: the receive queue fills up and sends must fail fast instead of blocking
    path, _ = listener
    notifier = Notifier(path)
    results = [notifier.status("x" * 1024) for _ in range(5000)]
    assert results[0]
    assert not all(results)
    assert notifier.failures == results.count(False)
    notifier.close()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "30s"}, None),
        ({"WATCHDOG_USEC": ""}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval_s(env) == expected


def test_watchdog_interval_from_process_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "500000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval_s() == 0.5


async def test_watchdog_loop_pings_at_half_the_interval(
    listener: tuple[str, socket.socket],
) -> None:
    path, sock = listener
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    notifier = Notifier(path)
    interval_s = 1.0
    task = asyncio.create_task(watchdog_loop(notifier, interval_s), name="cdnops.watchdog")
    try:
        first = await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout=5)
        started = time.monotonic()
        second = await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout=5)
        gap_s = time.monotonic() - started
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        notifier.close()
    assert first == second == b"WATCHDOG=1"
    # the second ping comes half an interval later: well before the watchdog would fire
    assert interval_s / 2 * 0.8 <= gap_s < interval_s


async def test_stalled_loop_stops_the_pings(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    notifier = Notifier(path)
    task = asyncio.create_task(watchdog_loop(notifier, 0.1), name="cdnops.watchdog")
    try:
        assert await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout=5) == b"WATCHDOG=1"
        # block the loop itself for four ping periods: the pings must stop with it.
        # This blocking call is the stall under test, not a wait for an event.
        time.sleep(0.2)  # noqa: ASYNC251
        with pytest.raises(BlockingIOError):
            sock.recv(4096)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        notifier.close()


async def test_watchdog_loop_rejects_a_bad_interval() -> None:
    with pytest.raises(ValueError, match="interval_s must be > 0, got 0"):
        await watchdog_loop(Notifier(None), 0)
