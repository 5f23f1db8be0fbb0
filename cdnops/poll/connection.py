"""One keep-alive HTTP/1.1 connection of the health client, and the pool it belongs to."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from cdnops.poll.http1 import (
    FRAMING_FIELDS,
    MAX_HEAD_BYTES,
    BodyTooLargeError,
    ChunkedReader,
    Head,
    ProtocolError,
    parse_head,
)
from cdnops.poll.wire import CONNECTION, HTTP_STATUS, OK, TIMEOUT, TOO_LARGE, Done, Endpoint

if TYPE_CHECKING:
    from cdnops.poll.fetch import HealthFetcher

# Connections of one pool being opened at once. Above this, a request waits for one to be
# released or opened: a burst of polls to one host (a simulator, a load balancer) then
# reuses a few warm connections instead of opening hundreds at once.
MAX_OPENING_PER_HOST = 8


class Pool:
    """The connections to one (host, port, TLS): idle ones, how many exist, who waits."""

    __slots__ = ("host", "idle", "opening", "port", "tls", "total", "waiting")

    def __init__(self, ep: Endpoint) -> None:
        self.host, self.port, self.tls = ep.host, ep.port, ep.tls
        self.idle: list[Connection] = []
        self.total = 0  # open or opening connections
        self.opening = 0
        self.waiting: deque[tuple[Endpoint, Done, float]] = deque()


class Connection(asyncio.Protocol):
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

    def __init__(self, fetcher: HealthFetcher, pool: Pool) -> None:
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
        fetcher.deadlines.append((deadline, self, self._request))
        if fetcher.sweeper is None:
            fetcher.watch_from(deadline)
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
            self._finish(TOO_LARGE, None, str(exc), reusable=False)
        except ProtocolError as exc:
            self._finish(CONNECTION, None, f"invalid HTTP response: {exc}", reusable=False)
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
        self._finish(OK, data[end + 4 :], "", reusable=True)
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
            self._finish(OK, body, "", reusable)
        else:
            self._finish(HTTP_STATUS, None, f"HTTP {status}", reusable)

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
        self._finish(TIMEOUT, None, f"no complete answer within {timeout_s:g}s", reusable=False)

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
            self._finish(CONNECTION, None, why, reusable=False)

    def abort(self) -> None:
        """Drop the connection now (connection_lost follows)."""
        if self._transport is not None and not self.closed:
            self._transport.abort()
