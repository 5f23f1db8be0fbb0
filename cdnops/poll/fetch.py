"""Lean HTTP/1.1 keep-alive GET client for health polls, one connection pool per host and port.

aiohttp's ClientSession costs far more CPU per request than a whole poll may take, so health
GETs use pre-built request bytes on `asyncio.Protocol` connections that are reused across
polls. Completion is a callback, not a Task, to keep per-poll overhead low; only opening a
connection runs a coroutine.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit

from cdnops import __version__
from cdnops.model import PollFailure
from cdnops.poll.http1 import (
    FRAMING_FIELDS,
    MAX_HEAD_BYTES,
    BodyTooLargeError,
    ChunkedReader,
    Head,
    ProtocolError,
    parse_head,
)

# (PollFailure, body when OK, detail when not); called exactly once per `get`.
Done = Callable[[int, bytes | None, str], None]

_OK = int(PollFailure.OK)
_TIMEOUT = int(PollFailure.TIMEOUT)
_REFUSED = int(PollFailure.REFUSED)
_CONNECTION = int(PollFailure.CONNECTION)
_HTTP_STATUS = int(PollFailure.HTTP_STATUS)
_TOO_LARGE = int(PollFailure.TOO_LARGE)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One GET target: where to connect and the request bytes, built once per appliance."""

    host: str
    port: int
    tls: bool
    request: bytes
    url: str
    key: tuple[str, int, bool]  # the connection pool this endpoint uses


def endpoint(url: str, accept: str = "application/json") -> Endpoint:
    """Build the GET for an absolute http(s) URL; raises ValueError if it cannot be polled."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    netloc = parts.netloc.rpartition("@")[2]
    head = (
        f"GET {target} HTTP/1.1\r\nHost: {netloc}\r\nUser-Agent: cdnops/{__version__}\r\n"
        f"Accept: {accept}\r\n\r\n"
    )
    try:
        request = head.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"URL is not ASCII (percent-encode it): {url!r}") from None
    return Endpoint(parts.hostname, port, tls, request, url, (parts.hostname, port, tls))


@dataclass(slots=True)
class FetchStats:
    """Connection counters (reuse shows keep-alive working)."""

    opened: int = 0
    reused: int = 0
    retried: int = 0  # requests re-sent after a kept-alive connection turned out closed


# Connections of one pool being opened at once. Above this, a request waits for one to be
# released or opened: a burst of polls to one host (a simulator, a load balancer) then
# reuses a few warm connections instead of opening hundreds at once.
MAX_OPENING_PER_HOST = 8


class _Pool:
    __slots__ = ("host", "idle", "opening", "port", "tls", "total", "waiting")

    def __init__(self, ep: Endpoint) -> None:
        self.host, self.port, self.tls = ep.host, ep.port, ep.tls
        self.idle: list[_Conn] = []
        self.total = 0  # open or opening connections
        self.opening = 0
        self.waiting: deque[tuple[Endpoint, Done, float]] = deque()


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
        self._pools: dict[tuple[str, int, bool], _Pool] = {}
        self._conns: set[_Conn] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._tls: ssl.SSLContext | None = None
        self._closed = False
        # Deadlines in a FIFO swept by one timer rather than a TimerHandle per request: with
        # a fixed timeout, requests expire in the order they started, and a heap of thousands
        # of handles costs more than the whole parse. A request expires at most
        # `_granularity` after its deadline.
        self._watch: deque[tuple[float, _Conn, int]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._granularity = min(0.05, timeout_s / 10)
        self.now = self._loop.time

    def get(self, ep: Endpoint, done: Done) -> None:
        """Start a GET; `done` is called later (never from inside this call)."""
        if self._closed:
            raise RuntimeError("HealthFetcher is closed")
        pool = self._pools.get(ep.key)
        if pool is None:
            pool = self._pools[ep.key] = _Pool(ep)
        self._dispatch(pool, ep, done, self._loop.time() + self.timeout_s)

    def _dispatch(self, pool: _Pool, ep: Endpoint, done: Done, deadline: float) -> None:
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

    def _open(self, pool: _Pool, ep: Endpoint, done: Done, deadline: float) -> None:
        pool.total += 1
        pool.opening += 1
        task = self._loop.create_task(self._connect(pool, ep, done, deadline))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, pool: _Pool, ep: Endpoint, done: Done, deadline: float) -> None:
        budget = min(self.connect_timeout_s, deadline - self._loop.time())
        tls = self._tls_context() if pool.tls else None
        try:
            async with asyncio.timeout(budget):
                _, conn = await self._loop.create_connection(
                    partial(_Conn, self, pool), pool.host, pool.port, ssl=tls
                )
        except TimeoutError:
            failure, detail = _TIMEOUT, f"connect timeout after {max(budget, 0.0):.3g}s"
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

    def watch(self, deadline: float, conn: _Conn, request: int) -> None:
        """Expire `conn`'s request number `request` at `deadline` unless it completed."""
        self._watch.append((deadline, conn, request))
        if self._sweeper is None:
            self._sweeper = self._loop.call_at(deadline, self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = self._loop.time()
        watch = self._watch
        while watch and watch[0][0] <= now:
            _, conn, request = watch.popleft()
            conn.expire(request)
        if watch:
            when = max(watch[0][0], now + self._granularity)
            self._sweeper = self._loop.call_at(when, self._sweep)

    def release(self, conn: _Conn) -> None:
        """A connection finished a response cleanly: hand it to a waiter or keep it idle."""
        pool = conn.pool
        if pool.waiting:
            ep, done, deadline = pool.waiting.popleft()
            self.stats.reused += 1
            conn.start(ep, done, deadline, reused=True)
        else:
            pool.idle.append(conn)

    def retry(self, pool: _Pool, ep: Endpoint, done: Done, deadline: float) -> None:
        """Re-send on a fresh connection: a kept-alive one was closed by the peer meanwhile."""
        self.stats.retried += 1
        if self._closed:
            done(_CONNECTION, None, "client closed")
        elif self._may_open(pool):
            self._open(pool, ep, done, deadline)
        else:
            pool.waiting.appendleft((ep, done, deadline))

    def pump(self, pool: _Pool) -> None:
        """A connection slot freed up: start waiting requests (failing those past deadline)."""
        now = self._loop.time()
        while pool.waiting and not self._closed and (pool.idle or self._may_open(pool)):
            ep, done, deadline = pool.waiting.popleft()
            if deadline <= now:
                self._loop.call_soon(done, _TIMEOUT, None, "no connection free before the deadline")
            else:
                self._dispatch(pool, ep, done, deadline)

    def _may_open(self, pool: _Pool) -> bool:
        return pool.total < self.max_per_host and pool.opening < MAX_OPENING_PER_HOST

    def track(self, conn: _Conn, alive: bool) -> None:
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
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._watch.clear()
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
        return _REFUSED
    return _CONNECTION


class _Conn(asyncio.Protocol):
    """One keep-alive connection; at most one request at a time (no pipelining)."""

    __slots__ = (
        "_buf",
        "_chunks",
        "_deadline",
        "_done",
        "_end",
        "_ep",
        "_fetcher",
        "_head",
        "_request",
        "_reused",
        "_start",
        "_transport",
        "closed",
        "pool",
    )

    def __init__(self, fetcher: HealthFetcher, pool: _Pool) -> None:
        self._fetcher = fetcher
        self.pool = pool
        self.closed = False
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._done: Done | None = None
        self._ep: Endpoint | None = None
        self._deadline = 0.0
        self._request = 0  # number of the current request, so a stale expiry is ignored
        self._head: Head | None = None
        self._chunks: ChunkedReader | None = None
        self._start = 0
        self._end = 0
        self._reused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._fetcher.track(self, alive=True)

    def start(self, ep: Endpoint, done: Done, deadline: float, *, reused: bool) -> None:
        """Send one GET; the answer goes to `done`."""
        assert self._transport is not None
        self._ep, self._done, self._deadline, self._reused = ep, done, deadline, reused
        self._request += 1
        fetcher = self._fetcher
        fetcher.watch(deadline, self, self._request)
        self._transport.write(ep.request)

    def data_received(self, data: bytes) -> None:
        if self._done is None:
            self.abort()  # an idle connection must stay silent; this one cannot be trusted
            return
        if not self._buf and self._fast(data):
            return
        buf = self._buf
        buf += data
        try:
            body = self._read(buf)
        except BodyTooLargeError as exc:
            self._finish(_TOO_LARGE, None, str(exc), reusable=False)
        except ProtocolError as exc:
            self._finish(_CONNECTION, None, f"invalid HTTP response: {exc}", reusable=False)
        else:
            if body is not None:
                reusable = self._head is not None and self._head.keep_alive
                self._deliver(body, reusable and self._end == len(buf))

    def _fast(self, data: bytes) -> bool:
        """The common answer, whole in one read: 200, Content-Length, keep-alive, no extras.

        Anything else (or anything unsure) returns False for the general path.
        """
        if data[:13] != b"HTTP/1.1 200 ":
            return False
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return False
        fields = FRAMING_FIELDS.findall(data, 12, end)
        if len(fields) != 1 or len(fields[0][0]) != 14:  # only Content-Length
            return False
        value = fields[0][1].strip()
        if not value.isdigit() or end + 4 + int(value) != len(data):
            return False
        if int(value) > self._fetcher.max_body_bytes:
            return False
        self._finish(_OK, data[end + 4 :], "", reusable=True)
        return True

    def _read(self, buf: bytearray) -> bytes | None:
        head = self._head
        cap = self._fetcher.max_body_bytes
        if head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    raise ProtocolError(f"response head over {MAX_HEAD_BYTES} bytes")
                return None
            head = self._head = parse_head(bytes(buf[:end]))
            self._start = end + 4
            if head.length > cap:
                raise BodyTooLargeError(f"Content-Length {head.length} over {cap} bytes")
            if head.chunked:
                self._chunks = ChunkedReader(self._start, cap)
        if self._chunks is not None:
            body = self._chunks.feed(buf)
            self._end = self._chunks.end
            return body
        if head.length >= 0:
            end = self._start + head.length
            if len(buf) < end:
                return None
            self._end = end
            return bytes(buf[self._start : end])
        if len(buf) - self._start > cap:
            raise BodyTooLargeError(f"body over {cap} bytes")
        return None  # delimited by the end of the connection

    def _deliver(self, body: bytes, reusable: bool) -> None:
        assert self._head is not None
        status = self._head.status
        if status == 200:
            self._finish(_OK, body, "", reusable)
        else:
            self._finish(_HTTP_STATUS, None, f"HTTP {status}", reusable)

    def _finish(self, failure: int, body: bytes | None, detail: str, reusable: bool) -> None:
        done = self._done
        if done is None:
            return
        self._done = None
        if self._head is not None:
            self._head = None
            self._chunks = None
        if self._buf:
            self._buf.clear()
        if reusable and not self.closed:
            self._fetcher.release(self)
        else:
            self.abort()
        done(failure, body, detail)

    def _reset(self) -> None:
        self._done = None
        self._head = None
        self._chunks = None
        self._buf.clear()

    def expire(self, request: int) -> None:
        """The deadline of request number `request` passed: fail it if still running."""
        if request != self._request or self._done is None:
            return
        timeout_s = self._fetcher.timeout_s
        self._finish(_TIMEOUT, None, f"no complete answer within {timeout_s:g}s", reusable=False)

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost settles the request

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.total -= 1
        self._fetcher.track(self, alive=False)
        if self._done is not None:
            self._settle_on_close(exc)
        self._fetcher.pump(self.pool)

    def _settle_on_close(self, exc: Exception | None) -> None:
        head = self._head
        if head is not None and head.length < 0 and self._chunks is None and exc is None:
            self._deliver(bytes(self._buf[self._start :]), reusable=False)
        elif self._reused and not self._buf and self._ep is not None:
            ep, done, deadline = self._ep, self._done, self._deadline
            assert done is not None
            self._reset()
            self._fetcher.retry(self.pool, ep, done, deadline)
        else:
            why = f"connection closed before a complete answer{f': {exc}' if exc else ''}"
            self._finish(_CONNECTION, None, why, reusable=False)

    def abort(self) -> None:
        """Drop the connection now (connection_lost follows)."""
        if self._transport is not None and not self.closed:
            self._transport.abort()
