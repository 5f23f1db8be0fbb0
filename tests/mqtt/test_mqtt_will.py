"""The last will: a daemon that dies without a goodbye is marked offline by the broker."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from mqtt_broker import Broker, Collector, body

CHILD = Path(__file__).with_name("mqtt_child.py")


async def test_unclean_death_publishes_the_retained_offline_will(
    tmp_path: Path, broker: Broker
) -> None:
    async with Collector(broker.port, "cdnops/child/status") as sub:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(CHILD), str(tmp_path / "child.db"), str(broker.port),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert line == b"connected\n"
            online = await sub.wait_for(lambda ms: len(ms) >= 1)
            assert body(online[0])["state"] == "online"
        finally:
            proc.kill()  # SIGKILL: no DISCONNECT, no offline of its own
            await proc.wait()
        messages = await sub.wait_for(lambda ms: len(ms) >= 2)
    will = body(messages[1])
    assert will["state"] == "offline"
    assert will["instance"] == "child"
    async with Collector(broker.port, "cdnops/child/status", identifier="late") as late:
        retained = await late.wait_for(lambda ms: len(ms) == 1)
    assert retained[0].retain
    assert body(retained[0])["state"] == "offline"
