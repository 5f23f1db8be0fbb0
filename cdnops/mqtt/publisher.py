"""The publisher: drains the outbox to the broker in order, reconnecting with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import NoReturn

import aiomqtt

from cdnops import __version__
from cdnops.errors import StoreError
from cdnops.mqtt.connection import Connection
from cdnops.mqtt.metrics import MqttMetrics
from cdnops.mqtt.outbox import Outbox
from cdnops.mqtt.payloads import status_payload, wire
from cdnops.store.db import OutboxRow

log = logging.getLogger("cdnops.mqtt")

BATCH = 50  # events in flight at once; paho sends 20 at a time and queues the rest in order
STOP_DRAIN_S = 2.0  # on stop, how long the last events get to go out before `offline`

MessageHandler = Callable[[aiomqtt.Client, aiomqtt.Message], Awaitable[None]]


class State(enum.Enum):
    """Lifecycle of a Publisher."""

    NEW = "new"
    RUNNING = "running"
    STOPPED = "stopped"


class Publisher:
    """Async context manager: while entered, events in the outbox go to the broker.

    The connection loop: connect, publish the retained `online` status, subscribe to the
    command topic if a handler is given, then drain the outbox oldest first with QoS 1,
    deleting each event once the broker acknowledges it. A lost connection (seen at
    once through the client's message stream) or a failed publish ends the session;
    the loop waits a capped, fully jittered backoff and connects again, and the events
    not acknowledged go out again, in order: at least once, duplicates carrying the
    same `event_id` and `seq`. Entering never waits for the broker: the daemon runs on
    while it is away and the outbox keeps the events.
    """

    def __init__(
        self,
        connection: Connection,
        outbox: Outbox,
        *,
        metrics: MqttMetrics | None = None,
        on_message: MessageHandler | None = None,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.connection = connection
        self.outbox = outbox
        self.topics = outbox.topics
        self.metrics = metrics or outbox.metrics
        self.on_message = on_message
        self.connected = asyncio.Event()  # set while a session is up (tests wait on it)
        self.failed = asyncio.Event()  # set after a failed attempt or a lost session, until up
        self.state = State.NEW
        self._rng = rng
        self._clock = clock
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failures = 0  # consecutive failed attempts: the backoff's exponent

    async def __aenter__(self) -> Publisher:
        if self.state is not State.NEW:
            raise RuntimeError(f"a Publisher is entered once, this one is {self.state.value}")
        self.state = State.RUNNING
        self._task = asyncio.create_task(self._run(), name="cdnops.mqtt.publisher")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Publish what is left (briefly), then `offline`, and disconnect cleanly."""
        if self.state is not State.RUNNING:
            return
        self.state = State.STOPPED
        self._stop.set()
        self.outbox.flush()
        assert self._task is not None
        budget = STOP_DRAIN_S + self.connection.config.publish_timeout_s + 1.0
        try:
            await asyncio.wait_for(asyncio.shield(self._task), budget)
        except TimeoutError:
            log.warning("mqtt publisher did not stop within %.0f s; cancelled", budget)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def backoff_s(self, failures: int) -> float:
        """Full jitter between the minimum and an exponentially growing, capped ceiling."""
        c = self.connection.config
        ceiling = min(c.backoff_max_s, c.backoff_min_s * 2.0 ** min(failures - 1, 30))
        return c.backoff_min_s + (ceiling - c.backoff_min_s) * self._rng()

    async def _run(self) -> None:
        while not self._stop.is_set():
            client = self.connection.client(self._will())
            client.pending_calls_threshold = BATCH + 10  # a full batch in flight is normal
            try:
                async with client:
                    await self._session(client)
            except aiomqtt.MqttError as exc:
                self._down(f"{exc}")
            except StoreError as exc:
                self._down(f"outbox: {exc}")
            except Exception as exc:  # a bug here must not end publishing for good
                log.exception("mqtt session failed")
                self._down(f"{type(exc).__name__}: {exc}")
            finally:
                self.connected.clear()
                self.metrics.connected.set(0)
            if self._stop.is_set():
                break
            self._failures += 1
            self.metrics.reconnects.inc()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.backoff_s(self._failures))

    def _up(self) -> None:
        failures, self._failures = self._failures, 0
        self.failed.clear()
        self.connected.set()
        self.metrics.connected.set(1)
        after = f" after {failures} failed attempts" if failures else ""
        log.info(
            "mqtt connected to %s%s; %d events waiting in the outbox",
            self.connection.describe(),
            after,
            len(self.outbox),
        )

    def _down(self, reason: str) -> None:
        failures = self._failures
        self.failed.set()
        # log the transition, not every failed attempt of an outage
        if self.connected.is_set():
            log.warning("mqtt connection to %s lost: %s", self.connection.describe(), reason)
        elif failures == 0:
            log.warning(
                "mqtt broker %s unreachable: %s; retrying with backoff, events wait in the outbox",
                self.connection.describe(),
                reason,
            )
        else:
            log.debug("mqtt attempt %d failed: %s", failures + 1, reason)

    async def _session(self, client: aiomqtt.Client) -> None:
        await client.publish(self.topics.status, self._status("online"), qos=1, retain=True)
        if self.on_message is not None:
            await client.subscribe(self.topics.commands, qos=1)
        self._up()
        stop = asyncio.create_task(self._stop.wait(), name="cdnops.mqtt.stop")
        drain = asyncio.create_task(self._drain(client), name="cdnops.mqtt.drain")
        listen = asyncio.create_task(self._listen(client), name="cdnops.mqtt.listen")
        tasks = (stop, drain, listen)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for t in (drain, listen):
            if t in done and not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]  # checked not None just above
        # stopping: the last events get a moment, then the status says offline
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drain_all(client), STOP_DRAIN_S)
        await client.publish(self.topics.status, self._status("offline"), qos=1, retain=True)
        log.info("mqtt disconnected; %d events left in the outbox", len(self.outbox))

    async def _drain(self, client: aiomqtt.Client) -> NoReturn:
        while True:
            self.outbox.changed.clear()
            rows = self.outbox.peek(BATCH)
            if not rows:
                await self.outbox.changed.wait()
                continue
            await self._publish(client, rows)

    async def _drain_all(self, client: aiomqtt.Client) -> None:
        while rows := self.outbox.peek(BATCH):
            await self._publish(client, rows)

    async def _publish(self, client: aiomqtt.Client, rows: Sequence[OutboxRow]) -> None:
        acked: list[int] = []
        timeout = self.connection.config.publish_timeout_s

        async def one(row: OutboxRow) -> None:
            try:
                payload = wire(row.seq, row.payload)
            except ValueError as exc:  # a damaged row must not hold up every later event
                log.error("mqtt outbox: dropped unreadable event: %s", exc)
                self.outbox.count_dropped(1)
                acked.append(row.seq)
                return
            await client.publish(row.topic, payload, qos=1, timeout=timeout)
            acked.append(row.seq)

        # created in seq order, each task hands its message to paho before its first
        # await, so the messages go out on the wire in seq order
        results: list[BaseException | None] = []
        try:
            results = await asyncio.gather(*(one(r) for r in rows), return_exceptions=True)
        finally:
            # also when cancelled by a lost connection: what the broker has is not re-sent
            self.outbox.ack(acked)
            self.metrics.published.inc(len(acked))
        for result in results:
            if isinstance(result, Exception):
                raise result

    async def _listen(self, client: aiomqtt.Client) -> None:
        # Iterating the messages is also how a lost connection is seen at once: the
        # iterator raises MqttError, which ends the session even while the drain waits.
        async for message in client.messages:
            if self.on_message is not None:
                try:
                    await self.on_message(client, message)
                except aiomqtt.MqttError:
                    raise
                except Exception:
                    log.exception("mqtt message handler failed on %s", message.topic)

    def _status(self, state: str) -> bytes:
        return status_payload(
            self.outbox.instance,
            state,
            self._clock(),
            version=__version__,
            outbox=len(self.outbox),
            dropped=self.outbox.dropped_total,
        )

    def _will(self) -> aiomqtt.Will:
        return aiomqtt.Will(self.topics.status, self._status("offline"), qos=1, retain=True)
