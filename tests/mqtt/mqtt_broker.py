"""A real mosquitto on a free 127.0.0.1 port, and a test subscriber that survives restarts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

START_TIMEOUT_S = 10.0
WAIT_S = 20.0
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """`mosquitto -c <conf>` in a tmp folder; stop and start keep the port and the
    persistence file, so sessions and queued messages survive a restart."""

    def __init__(self, folder: Path, *, extra_conf: str = "") -> None:
        self.folder = folder
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        self.log = folder / "mosquitto.log"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            # run as root (a container), mosquitto would switch to the `mosquitto` user
            # and could not write its log and sessions into the test's folder
            f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
            "persistence true\n"
            f"persistence_location {folder}/\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            + (extra_conf or "allow_anonymous true\n")
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start and wait until the port accepts connections."""
        assert self.proc is None, "already running"
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:  # an external process: poll with a deadline
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited {self.proc.returncode}: {err}{self.logs()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.logs()}")

    def stop(self) -> None:
        """SIGTERM (mosquitto saves its sessions) and wait for the exit."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def logs(self) -> str:
        """The broker's log, for failure messages."""
        return self.log.read_text() if self.log.exists() else ""


class Collector:
    """Subscribes to `topic_filter` with a persistent session and keeps every message,
    reconnecting after a broker restart (the session, saved by the broker, keeps what
    was published meanwhile)."""

    def __init__(
        self,
        port: int,
        topic_filter: str,
        *,
        identifier: str = "test-collector",
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.username = username
        self.password = password
        self.port = port
        self.topic_filter = topic_filter
        self.identifier = identifier
        self.messages: list[aiomqtt.Message] = []
        self.subscribed = asyncio.Event()
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Collector:
        self._task = asyncio.create_task(self._run(), name="test.collector")
        await asyncio.wait_for(self.subscribed.wait(), START_TIMEOUT_S)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        props = properties(PacketTypes.CONNECT, SessionExpiryInterval=3600)
        while True:
            client = aiomqtt.Client(
                "127.0.0.1",
                self.port,
                identifier=self.identifier,
                username=self.username,
                password=self.password,
                protocol=aiomqtt.ProtocolVersion.V5,
                clean_start=False,
                properties=props,
                timeout=5,
            )
            try:
                async with client:
                    await client.subscribe(self.topic_filter, qos=1)
                    self.subscribed.set()
                    async for message in client.messages:
                        async with self._changed:
                            self.messages.append(message)
                            self._changed.notify_all()
            except aiomqtt.MqttError:
                self.subscribed.clear()
                await asyncio.sleep(0.05)  # the broker is an external process: retry

    async def wait_for(
        self, predicate: Callable[[list[aiomqtt.Message]], bool]
    ) -> list[aiomqtt.Message]:
        """Wait until `predicate(messages)` holds (at most 20 s); returns the messages."""
        async with asyncio.timeout(WAIT_S), self._changed:
            await self._changed.wait_for(lambda: predicate(self.messages))
        return list(self.messages)

    def on(self, suffix: str) -> list[aiomqtt.Message]:
        """The messages whose topic ends with `suffix`."""
        return [m for m in self.messages if str(m.topic).endswith(suffix)]


def properties(packet: int, **values: object) -> Properties:
    """MQTT 5 properties of a packet type (paho's class is untyped)."""
    props = Properties(packet)  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(props, name, value)
    return props


def prop(message: aiomqtt.Message, name: str) -> object:
    """A received message's MQTT 5 property, or None."""
    return getattr(message.properties, name, None)


def body(message: aiomqtt.Message) -> dict[str, object]:
    """A message's JSON payload."""
    assert isinstance(message.payload, bytes | bytearray)
    result = orjson.loads(message.payload)
    assert isinstance(result, dict)
    return result
