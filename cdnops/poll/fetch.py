"""Lean HTTP/1.1 keep-alive GET client for health polls, one connection pool per host and port."""

# aiohttp's ClientSession costs far more CPU per request than a whole poll may take, so health
# GETs use pre-built request bytes on `asyncio.Protocol` connections reused across polls.
# Completion is a callback, not a Task; only opening a connection runs a coroutine.

from __future__ import annotations

import asyncio
import errno
import ssl
from collections import deque
from dataclasses import dataclass
from functools import partial

from cdnops.poll.connection import MAX_OPENING_PER_HOST, Connection, Pool
from cdnops.poll.wire import CONNECTION, REFUSED, TIMEOUT, Done, Endpoint

_NO_CONNECTION_IN_TIME = "no connection free before the deadline"


@dataclass(slots=True)
class FetchStats:
    """Connection counters (reuse shows keep-alive working)."""

    opened: int = 0
    reused: int = 0
    retried: int = 0  # requests re-sent after a kept-alive connection turned out closed


class HealthFetcher:
    """GETs with a deadline each, over pooled keep-alive connections, body capped.

    Args:
        timeout_s: whole-request deadline (connect, send, complete answer).
        connect_timeout_s: cap on opening a connection, inside the deadline.
        max_body_bytes: bodies over this are TOO_LARGE, detected as early as possible.
        max_per_host: open connections per (host, port); requests beyond wait for one.
    """

    def __init__(
        self,
        *,
        timeout_s: float,
        connect_timeout_s: float,
        max_body_bytes: int,
        max_per_host: int,
    ) -> None:
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_body_bytes = max_body_bytes
        self.max_per_host = max_per_host
        self.stats = FetchStats()
        self._loop = asyncio.get_running_loop()
        self._pools: dict[tuple[str, int, bool], Pool] = {}
        self._conns: set[Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._tls: ssl.SSLContext | None = None
        self._closed = False
        # Deadlines in a FIFO swept by one timer rather than a TimerHandle per request: with
        # a fixed timeout, requests expire in the order they started, and a heap of thousands
        # of handles costs more than the whole parse. A request expires at most
        # `_granularity` after its deadline.
        self.deadlines: deque[tuple[float, Connection, int]] = deque()
        self.sweeper: asyncio.TimerHandle | None = None
        self._granularity = min(0.05, timeout_s / 10)
        self.now = self._loop.time

    def get(self, ep: Endpoint, done: Done) -> None:
        """Start a GET; `done` is called later (never from inside this call)."""
        if self._closed:
            raise RuntimeError("HealthFetcher is closed")
        pool = self._pools.get(ep.key)
        if pool is None:
            pool = self._pools[ep.key] = Pool(ep)
        deadline = self._loop.time() + self.timeout_s
        idle = pool.idle
        if idle and not idle[-1].closed:  # the usual case, without the general path's call
            self.stats.reused += 1
            idle.pop().start(ep, done, deadline, reused=True)
            return
        self._dispatch(pool, ep, done, deadline)

    def _dispatch(self, pool: Pool, ep: Endpoint, done: Done, deadline: float) -> None:
        idle = pool.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                self.stats.reused += 1
                conn.start(ep, done, deadline, reused=True)
                return
        if self._may_open(pool):
            self._open(pool, ep, done, deadline)
        else:
            pool.waiting.append((ep, done, deadline))

    def _open(self, pool: Pool, ep: Endpoint, done: Done, deadline: float) -> None:
        pool.total += 1
        pool.opening += 1
        task = self._loop.create_task(self._connect(pool, ep, done, deadline))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, pool: Pool, ep: Endpoint, done: Done, deadline: float) -> None:
        budget = min(self.connect_timeout_s, deadline - self._loop.time())
        tls = self._tls_context() if pool.tls else None
        try:
            async with asyncio.timeout(budget):
                _, conn = await self._loop.create_connection(
                    partial(Connection, self, pool), pool.host, pool.port, ssl=tls
                )
        except TimeoutError:
            failure, detail = TIMEOUT, f"connect timeout after {max(budget, 0.0):.3g}s"
        except OSError as exc:
            failure, detail = _classify(exc), f"connect failed: {exc}"
        else:
            pool.opening -= 1
            self.stats.opened += 1
            conn.start(ep, done, deadline, reused=False)
            self.pump(pool)
            return
        pool.opening -= 1
        pool.total -= 1
        self.pump(pool)
        done(failure, None, detail)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def watch_from(self, deadline: float) -> None:
        """Arm the sweep for the first entry of `deadlines` (a connection appended it)."""
        self.sweeper = self._loop.call_at(deadline, self._sweep)

    def _sweep(self) -> None:
        self.sweeper = None
        now = self._loop.time()
        watch = self.deadlines
        while watch and watch[0][0] <= now:
            _, conn, request = watch.popleft()
            conn.expire(request)
        if watch:
            when = max(watch[0][0], now + self._granularity)
            self.sweeper = self._loop.call_at(when, self._sweep)

    def release(self, conn: Connection) -> None:
        """A connection finished a response cleanly: hand it to a waiter or keep it idle."""
        pool = conn.pool
        while pool.waiting:
            ep, done, deadline = pool.waiting.popleft()
            if deadline <= self.now():
                self._loop.call_soon(done, TIMEOUT, None, _NO_CONNECTION_IN_TIME)
                continue
            self.stats.reused += 1
            conn.start(ep, done, deadline, reused=True)
            return
        pool.idle.append(conn)

    def retry(self, pool: Pool, ep: Endpoint, done: Done, deadline: float) -> None:
        """Re-send on a fresh connection: a kept-alive one was closed by the peer meanwhile."""
        self.stats.retried += 1
        if self._closed:
            done(CONNECTION, None, "client closed")
        elif self._may_open(pool):
            self._open(pool, ep, done, deadline)
        else:
            pool.waiting.appendleft((ep, done, deadline))

    def pump(self, pool: Pool) -> None:
        """A connection slot freed up: start waiting requests (failing those past deadline)."""
        now = self._loop.time()
        while pool.waiting and not self._closed and (pool.idle or self._may_open(pool)):
            ep, done, deadline = pool.waiting.popleft()
            if deadline <= now:
                self._loop.call_soon(done, TIMEOUT, None, _NO_CONNECTION_IN_TIME)
            else:
                self._dispatch(pool, ep, done, deadline)

    def _may_open(self, pool: Pool) -> bool:
        return pool.total < self.max_per_host and pool.opening < MAX_OPENING_PER_HOST

    def track(self, conn: Connection, alive: bool) -> None:
        """Keep the set of open connections, to close them all on `aclose`."""
        if alive:
            self._conns.add(conn)
        else:
            self._conns.discard(conn)

    @property
    def open_connections(self) -> int:
        """Connections currently open, idle or busy."""
        return len(self._conns)

    async def aclose(self) -> None:
        """Abort every connection; requests still running complete as CONNECTION failures."""
        self._closed = True
        if self.sweeper is not None:
            self.sweeper.cancel()
            self.sweeper = None
        self.deadlines.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in list(self._conns):
            conn.abort()
        for pool in self._pools.values():
            pool.waiting.clear()
            pool.idle.clear()


def _classify(exc: OSError) -> int:
    # Resolving to several addresses makes asyncio raise a plain OSError listing them all.
    if isinstance(exc, ConnectionRefusedError) or f"[Errno {errno.ECONNREFUSED}]" in str(exc):
        return REFUSED
    return CONNECTION
