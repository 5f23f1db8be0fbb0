"""A publisher in its own process, for the last-will test: `python mqtt_child.py DB PORT`.

Prints `connected` once its session is up, then runs until killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from cdnops.config.mqtt import MqttConfig
from cdnops.mqtt.connection import Connection
from cdnops.mqtt.outbox import Outbox
from cdnops.mqtt.publisher import Publisher
from cdnops.mqtt.topics import Topics
from cdnops.store.db import Store


async def main(db: Path, port: int) -> None:
    """Connect, say so, and wait to be killed."""
    config = MqttConfig(port=port)
    outbox = Outbox(Store(db), Topics("cdnops/child"), "child")
    async with Publisher(Connection.from_config(config, "child"), outbox) as pub:
        await pub.connected.wait()
        print("connected", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
