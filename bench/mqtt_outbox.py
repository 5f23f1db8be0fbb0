"""Benchmark: the MQTT outbox. Events appended from the incident bus (the store commit
included) while no broker runs, then drained in order to a real mosquitto on 127.0.0.1
with QoS 1 (each deleted after its PUBACK).

Run: python bench/mqtt_outbox.py [--events 5000] [--per-turn 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "mqtt")]
from mqtt_broker import Broker
from mqtt_events import rig


async def measure(folder: Path, events: int, per_turn: int) -> tuple[float, float]:
    r = rig(folder)
    # appended: the bus hands each event to the outbox, which commits once per loop turn
    t0 = time.perf_counter()
    for start in range(0, events, per_turn):
        for n in range(start, min(start + per_turn, events)):
            r.opened(n)
        await asyncio.sleep(0)  # end of the loop turn: the outbox commits its batch
    r.outbox.flush()
    append_s = time.perf_counter() - t0
    assert len(r.outbox) == events, len(r.outbox)
    broker = Broker(folder)
    broker.start()
    try:
        t0 = time.perf_counter()
        async with r.publisher(broker.port):
            while len(r.outbox) > 0:  # noqa: ASYNC110 - a benchmark polls the drain
                await asyncio.sleep(0.01)
        drain_s = time.perf_counter() - t0
    finally:
        broker.stop()
        r.store.close()
    return append_s, drain_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--per-turn", type=int, default=50, help="events per loop turn")
    args = parser.parse_args()
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        print("mosquitto is not installed (apt-get install mosquitto)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        append_s, drain_s = asyncio.run(measure(Path(tmp), args.events, args.per_turn))
    print(
        f"# python {platform.python_version()}, {os.cpu_count()} cores, {args.events} incident "
        f"events, {args.per_turn} per loop turn, mosquitto on 127.0.0.1"
    )
    print(
        f"append (bus -> payload -> SQLite outbox)  {append_s * 1e6 / args.events:6.0f} us "
        f"per event  ({args.events / append_s:,.0f} events/s)"
    )
    print(
        f"drain (outbox -> broker, QoS 1, deleted after PUBACK)  "
        f"{args.events / drain_s:,.0f} events/s  ({drain_s:.2f} s, connect included)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
