"""A small HTTP/1.1 server on asyncio.Protocol: keep-alive, Content-Length bodies, no chunking."""

# aiohttp.web spends most of a tiny health answer in its own machinery; this parser does
# only what the appliance contract needs, so that the simulator is never the bottleneck
# of a poller benchmark.

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

import orjson

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024
# The hot path in one C-level match: one whole GET of /a/..., valid header lines
# (token, colon, value), nothing after the blank line.
_SIMPLE_GET = re.compile(
    rb"GET (/a/[\x21-\x3e\x40-\x7e]+)(?:\?[\x21-\x7e]*)? HTTP/1\.1\r\n"
    rb"(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[^\r\n]*\r\n)*\r\n"
)
# `*+` is possessive: no backtracking into the spaces to dodge the keep-alive look-ahead.
_NOT_SIMPLE = re.compile(
    rb"\n(?:content-length:|transfer-encoding:|connection:[ \t]*+(?!keep-alive\r))", re.I
)
MAX_BODY_BYTES = 64 * 1024
JSON = b"application/json"


@dataclass(slots=True)
class Request:
    """One parsed request; header names are lower-case bytes."""

    method: str
    path: str
    headers: dict[bytes, bytes]
    body: bytes


@dataclass(slots=True)
class Response:
    """An answer; `content_type` is sent as is."""

    status: int
    body: bytes
    content_type: bytes = JSON


# A handler answers now, later (awaitable), or not at all (None: close the connection).
Answer = Response | Awaitable[Response | None] | None
Handler = Callable[[Request], Answer]
# The hot path: a plain keep-alive GET; returns the whole encoded answer, or None to
# let `Handler` deal with it.
FastGet = Callable[[str], bytes | None]


def json_response(status: int, doc: object) -> Response:
    """A JSON answer."""
    return Response(status, orjson.dumps(doc))


def error(status: int, message: str) -> Response:
    """The contract's error body: `{"error": "..."}`."""
    return Response(status, orjson.dumps({"error": message}))


_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


def encode(resp: Response, close: bool) -> bytes:
    """Status line, headers and body as one buffer."""
    reason = _REASONS.get(resp.status, b"Unknown")
    conn = b"Connection: close\r\n" if close else b""
    head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
        resp.status,
        reason,
        resp.content_type,
        len(resp.body),
        conn,
    )
    return head + resp.body


class BadRequestError(Exception):
    """The bytes received are not a request this server accepts; answer with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_head(head: bytes) -> tuple[str, str, bool, dict[bytes, bytes]]:
    """Method, path (query dropped), HTTP/1.1 or not, headers of one request head."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[1].startswith(b"/"):
        raise BadRequestError(400, "malformed request line")
    method, target, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise BadRequestError(505 if version.startswith(b"HTTP/") else 400, "bad HTTP version")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise BadRequestError(400, "malformed header line")
        headers[name.lower()] = value.strip()
    try:
        path = target.split(b"?", 1)[0].decode("ascii")
        verb = method.decode("ascii")
    except UnicodeDecodeError as exc:
        raise BadRequestError(400, "non-ASCII request line") from exc
    return verb, path, version == b"HTTP/1.1", headers


def simple_get_path(data: bytes) -> str | None:
    """The path of `data` if it is exactly one plain keep-alive GET of `/a/...`, else None.

    Anything that needs the full parser (a body, closing, pipelining, a bad header line)
    gets None.
    """
    match = _SIMPLE_GET.fullmatch(data)
    if match is None or _NOT_SIMPLE.search(data) is not None:
        return None
    return match.group(1).decode("ascii")


def body_length(headers: dict[bytes, bytes]) -> int:
    """The Content-Length of a request (0 if absent)."""
    if b"transfer-encoding" in headers:
        raise BadRequestError(501, "chunked request bodies are not supported")
    raw = headers.get(b"content-length", b"0")
    if not raw.isdigit():
        raise BadRequestError(400, "bad Content-Length")
    length = int(raw)
    if length > MAX_BODY_BYTES:
        raise BadRequestError(413, "request body too large")
    return length


class HttpProtocol(asyncio.Protocol):
    """One connection: requests are answered in order, one at a time."""

    def __init__(
        self, handler: Handler, live: set[asyncio.Transport], fast_get: FastGet | None = None
    ) -> None:
        self._handler = handler
        self._fast_get = fast_get
        self._live = live
        self._transport: asyncio.Transport | None = None  # None once closing
        self._own: asyncio.Transport | None = None
        self._buf = b""
        self._pending: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = self._own = transport
        self._live.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._own is not None:
            self._live.discard(self._own)
        self._transport = None
        if self._pending is not None:
            self._pending.cancel()

    def pause_writing(self) -> None:
        # A slow reader of big bodies: stop taking requests until its buffer drains.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if not self._buf and self._pending is None and self._fast(data):
            return
        self._buf += data
        if self._pending is None:
            self._drain_buffer()

    def _fast(self, data: bytes) -> bool:
        """Answer one complete, simple HTTP/1.1 GET of an appliance; False: not that case."""
        if self._fast_get is None or self._transport is None:
            return False
        path = simple_get_path(data)
        if path is None:
            return False
        try:
            out = self._fast_get(path)
        except Exception:
            log.exception("fast path failed path=%s", path)
            return False  # the general route answers, with a 500 if it fails too
        if out is None:
            return False
        self._transport.write(out)
        return True

    def _drain_buffer(self) -> None:
        while self._buf and self._pending is None and self._transport is not None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > MAX_HEAD_BYTES:
                    self._reply(error(431, "request head too large"), close=True)
                return
            try:
                method, path, http11, headers = parse_head(self._buf[:end])
                length = body_length(headers)
            except BadRequestError as exc:
                self._reply(error(exc.status, str(exc)), close=True)
                return
            start = end + 4
            if len(self._buf) < start + length:
                return
            body, self._buf = self._buf[start : start + length], self._buf[start + length :]
            conn = headers.get(b"connection", b"").lower()
            close = conn == b"close" or (not http11 and conn != b"keep-alive")
            self._dispatch(Request(method, path, headers, body), close)

    def _dispatch(self, request: Request, close: bool) -> None:
        try:
            answer = self._handler(request)
        except Exception:
            log.exception("handler failed path=%s", request.path)
            answer = error(500, "internal error")
        if answer is None or isinstance(answer, Response):
            self._reply(answer, close)
            return
        self._pending = asyncio.ensure_future(self._later(answer, close))

    async def _later(self, answer: Awaitable[Response | None], close: bool) -> None:
        try:
            resp = await answer
        except Exception:
            log.exception("deferred handler failed")
            resp = error(500, "internal error")
        self._pending = None
        self._reply(resp, close)
        self._drain_buffer()

    def _reply(self, resp: Response | None, close: bool) -> None:
        t = self._transport
        if t is None:
            return
        if resp is None:
            t.close()
            self._transport = None
            return
        t.write(encode(resp, close))
        if close:
            t.close()
            self._transport = None
