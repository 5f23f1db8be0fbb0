"""HTTP/1.1 response framing for the health client: status line, headers, chunked bodies."""

from __future__ import annotations

import re
from typing import NamedTuple

MAX_HEAD_BYTES = 16 * 1024

# The three fields that frame a response, found in one C-level scan of the head.
FRAMING_FIELDS = re.compile(
    rb"\r\n(content-length|transfer-encoding|connection)[ \t]*:[ \t]*([^\r]*)", re.IGNORECASE
)


class ProtocolError(ValueError):
    """The peer did not speak HTTP/1.x."""


class BodyTooLargeError(ValueError):
    """The body is over the cap (known from Content-Length, a chunk size, or bytes read)."""


class Head(NamedTuple):
    """The response head: what is needed to read the body and reuse the connection."""

    status: int
    length: int  # Content-Length, -1 when absent
    chunked: bool
    keep_alive: bool


def parse_head(head: bytes) -> Head:
    """Parse the bytes before the blank line (status line and header fields).

    Headers are located with C-level searches over the lowercased head rather than a
    Python loop over every line: this runs once per poll.
    """
    eol = head.find(b"\r\n")
    line = head if eol < 0 else head[:eol]
    code = line[9:12]
    if line[:7] != b"HTTP/1." or line[8:9] != b" " or not code.isdigit():
        raise ProtocolError(f"bad status line {line[:60]!r}")
    status = int(code)
    keep_alive = line[7:8] == b"1"
    if eol < 0:
        return Head(status, 0 if status in (204, 304) else -1, False, keep_alive)
    if b":" not in head[eol + 2 :]:
        raise ProtocolError(f"bad header line {head[eol + 2 : eol + 62]!r}")
    length, chunked = -1, False
    for name, raw in FRAMING_FIELDS.findall(head, eol):
        value = raw.strip().lower()
        field = name.lower()
        if field == b"content-length":
            if not value.isdigit():
                raise ProtocolError(f"bad Content-Length {value[:30]!r}")
            length = int(value)
        elif field == b"transfer-encoding":
            chunked = value.endswith(b"chunked")
        else:
            keep_alive = value != b"close" and (keep_alive or value == b"keep-alive")
    if status in (204, 304):
        return Head(status, 0, False, keep_alive)
    if chunked:
        length = -1  # RFC 9112: Transfer-Encoding overrides Content-Length
    return Head(status, length, chunked, keep_alive)


class ChunkedReader:
    """Incremental decoder of a chunked body, enforcing the cap as sizes are announced."""

    __slots__ = ("_parts", "_pos", "_size", "cap", "end")

    def __init__(self, start: int, cap: int) -> None:
        self._pos = start
        self._parts: list[bytes] = []
        self._size = 0
        self.cap = cap
        self.end = -1  # offset just past the body once complete

    def feed(self, buf: bytearray) -> bytes | None:
        """Advance over `buf` (the whole receive buffer); the body once the last chunk is in."""
        pos = self._pos
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if len(buf) - pos > 1024:
                    raise ProtocolError("chunk size line too long")
                return None
            size = _chunk_size(bytes(buf[pos:eol]))
            if size == 0:
                return self._trailer(buf, eol)
            if self._size + size > self.cap:
                raise BodyTooLargeError(f"chunked body over {self.cap} bytes")
            data_end = eol + 2 + size
            if len(buf) < data_end + 2:
                return None
            if buf[data_end : data_end + 2] != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
            self._parts.append(bytes(buf[eol + 2 : data_end]))
            self._size += size
            pos = self._pos = data_end + 2

    def _trailer(self, buf: bytearray, eol: int) -> bytes | None:
        if buf[eol + 2 : eol + 4] == b"\r\n":
            self.end = eol + 4
        else:
            blank = buf.find(b"\r\n\r\n", eol)
            if blank < 0:
                return None
            self.end = blank + 4
        return b"".join(self._parts)


def _chunk_size(line: bytes) -> int:
    token = line.split(b";", 1)[0].strip()
    if not token or len(token) > 16 or token.strip(b"0123456789abcdefABCDEF"):
        raise ProtocolError(f"bad chunk size {token[:20]!r}")
    return int(token, 16)
